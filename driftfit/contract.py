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


class TextRules(_Strict):
    min_chars: int = Field(1, ge=1, description="fewest characters once surrounding whitespace is stripped; "
                                                "a missing (null) text has 0 (error)")
    max_chars: int = Field(5000, gt=0, description="most characters once stripped (error)")
    numeric: Severity = Field("warning", description="a text that is only a number ('12345', '-3.5'): likely "
                                                     "the wrong column")
    nul: Severity = Field("error", description="a NUL character inside a text: a binary or broken file")
    control: Severity = Field("warning", description="another control character (not tab, line feed or "
                                                     "carriage return) inside a text")
    zero_width: Severity = Field("warning", description="a zero-width character (U+200B..U+200D, U+2060, "
                                                        "U+FEFF) inside a text: invisible, but a different text")


class LabelRules(_Strict):
    allowed: Literal["any", "reference"] | list[str] = Field(
        "any", description="any: labels seen in train; reference: labels the reference has; or a list")
    min_classes: int = Field(2, ge=1, description="fewest distinct labels in train (error)")
    min_rows_per_class: int = Field(3, ge=1, description="fewest training rows per label (error)")
    max_imbalance: float | None = Field(20.0, ge=1, description="largest / smallest train class above this: warning")
    max_divergence: float | None = Field(0.5, ge=0, le=1,
                                         description="total-variation distance of train's label mix from the "
                                                     "reference's above this: warning")

    @field_validator("allowed")
    @classmethod
    def _non_empty_list(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("an empty list allows no label; use 'any' or list the labels")
        return [str(x) for x in v] if isinstance(v, list) else v


class DuplicateRules(_Strict):
    max_share: float = Field(0.2, ge=0, le=1, description="near-duplicate share of a split above this: error; "
                                                          "any duplicate at all: warning")


class Contract(_Strict):
    version: Literal[1] = Field(1, description="contract format version")
    columns: dict[str, Literal["string", "integer"]] = Field(
        {"text": "string", "label": "string"}, description="text/label values: string, or integer (text of one)")
    text: TextRules = TextRules()
    labels: LabelRules = LabelRules()
    duplicates: DuplicateRules = DuplicateRules()
    leakage: Severity = Field("error", description="a train or reference_train (replayed) text found again "
                                                      "in val/test")

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
