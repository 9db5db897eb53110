"""The data contract: what every split must satisfy, read from a YAML file (`validate.contract`).

Users edit the contract, not code: each rule becomes one Great Expectations expectation (see
driftfit.gx_suite) or one check outside GX (driftfit.texts). A misspelt key or a bad value fails on
load, naming the file, the key and what is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from driftfit.config import StrictModel, ValidateConfig, explain, read_yaml_mapping
from driftfit.errors import ConfigError

REQUIRED_SPLITS = ("train", "val", "test")
REFERENCE_SPLITS = ("reference_train", "reference_test")

Severity = Literal["error", "warning"]


_Strict = StrictModel  # a misspelt key is an error, not ignored


class TextRules(_Strict):  # every rule is described once, in data/contract.yaml (a test checks it is there)
    min_chars: int = Field(1, ge=1)
    max_chars: int = Field(5000, gt=0)
    numeric: Severity = "warning"
    nul: Severity = "error"
    control: Severity = "warning"
    zero_width: Severity = "warning"


class LabelRules(_Strict):
    allowed: Literal["any", "reference"] | list[str] = "any"
    min_classes: int = Field(2, ge=1)
    min_rows_per_class: int = Field(3, ge=1)
    max_imbalance: float | None = Field(20.0, ge=1)
    max_divergence: float | None = Field(0.5, ge=0, le=1)

    @field_validator("allowed")
    @classmethod
    def _non_empty_list(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("an empty list allows no label; use 'any' or list the labels")
        return [str(x) for x in v] if isinstance(v, list) else v


class DuplicateRules(_Strict):
    max_share: float = Field(0.2, ge=0, le=1)


class Contract(_Strict):
    version: Literal[1] = 1
    columns: dict[str, Literal["string", "integer"]] = {"text": "string", "label": "string"}
    text: TextRules = TextRules()
    labels: LabelRules = LabelRules()
    duplicates: DuplicateRules = DuplicateRules()
    leakage: Severity = "error"

    @field_validator("columns")
    @classmethod
    def _text_and_label(cls, v):
        if set(v) != {"text", "label"}:
            raise ValueError(f"expected exactly the keys text and label (the prepared splits' columns), "
                             f"got {sorted(v)}")
        if v["text"] != "string":
            raise ValueError("text must be 'string'")
        return v


def contract_from_config(cfg: ValidateConfig) -> Contract:
    """The contract the `validate.*` keys describe (used when `validate.contract` is null)."""
    return Contract(text=TextRules(min_chars=cfg.min_text_chars, max_chars=cfg.max_text_chars),
                    labels=LabelRules(allowed=cfg.allowed_labels, min_rows_per_class=cfg.min_rows_per_class))


def load_contract(path: str | Path) -> Contract:
    """Read and check a contract YAML; a bad file or key fails naming the file, the key and what is accepted."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"validate.contract = '{path}': no such file (expected a data contract YAML, "
                          "e.g. data/contract.yaml)")
    raw = read_yaml_mapping(path, "contract")
    try:
        return Contract.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(explain(err, f"contract {path}", "data/contract.yaml")) from None


def contract_for(cfg: ValidateConfig) -> tuple[Contract, str]:
    """The contract in force and where it came from (for the summary)."""
    if cfg.contract:
        return load_contract(cfg.contract), str(cfg.contract)
    return contract_from_config(cfg), "validate.* keys in params.yaml"
