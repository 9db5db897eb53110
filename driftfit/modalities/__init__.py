"""What each modality (`task.modality`) runs: one entry per modality, everything about it in that entry.

The doors ask this table which function does a step: the CLI (what the DVC stages call) and the Prefect
tasks both call `step(name, params)`, so a step is dispatched in one place, never by matching the modality
in each step. Text runs the modules that always ran it, unchanged; images run the `image_*` modules, which
reuse what does not depend on the input (stratified splits, GX, the selector's rules, the gate, the
registry, the data memory). The strategies a modality supports are in driftfit.strategies (`modalities`).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Callable

from driftfit.errors import ConfigError, DriftfitError

# The steps in pipeline order (dvc.yaml's stages; `driftfit run` runs them in this order).
STEP_NAMES = ("default-data", "prepare", "validate", "remember", "augment", "measure-shift", "select-strategy",
              "tune", "train", "evaluate", "promote")

TEXT_STEPS = {
    "default-data": "driftfit.default_data",
    "prepare": "driftfit.prepare",
    "validate": "driftfit.validate",
    "remember": "driftfit.memory",
    "augment": "driftfit.augment",
    "measure-shift": "driftfit.shift",
    "select-strategy": "driftfit.strategy",
    "tune": "driftfit.search",
    "train": "driftfit.train",
    "evaluate": "driftfit.evaluate",
    "promote": "driftfit.promote",
}


@dataclass(frozen=True)
class ModalitySpec:
    name: str
    summary: str                      # one line: what it reads, with which model
    steps: dict[str, str]             # step -> the module whose run(params) does it
    shift_measures: tuple[str, ...]   # the sections of its shift report (README, tests)
    default_data: str = ""            # what `driftfit default-data` writes for it
    notes: tuple[str, ...] = field(default=())  # what it does not do (yet), in words


_ALL = [
    ModalitySpec(
        "text", "labelled texts (CSV/TSV/JSON Lines/Parquet, hf:<id>); a sentence encoder (all-MiniLM-L6-v2)",
        TEXT_STEPS,
        ("tokenizer", "embedding", "label_shift", "probe", "zero_shot", "data_size", "champion"),
        "chatterbot-corpus English dialogue by category"),
    ModalitySpec(
        "image", "labelled images (a folder per class, or a CSV/Parquet manifest path,label); EfficientNet-Lite0 or a "
        "local Hugging Face image model",
        {**TEXT_STEPS,
         "default-data": "driftfit.image_data",
         "prepare": "driftfit.image_prepare",
         "validate": "driftfit.image_validate",
         "augment": "driftfit.image_augment",
         "measure-shift": "driftfit.image_shift",
         "select-strategy": "driftfit.image_strategy",
         "train": "driftfit.image_train",
         "evaluate": "driftfit.image_evaluate"},
        ("embedding", "label_shift", "probe", "data_size", "champion"),
        "animal-mnist silhouettes (10 animals), a new label set far from ImageNet's photographs",
        ("no tokenizer fit and no zero-shot (no label-name embeddings)", "strategy.mode rules only",
         "no hyperparameter search")),
]
MODALITIES: dict[str, ModalitySpec] = {m.name: m for m in _ALL}


def spec(name: str) -> ModalitySpec:
    try:
        return MODALITIES[name]
    except KeyError:
        raise ConfigError(f"task.modality = '{name}': expected one of {', '.join(MODALITIES)}") from None


def step_function(step: str, modality: str = "text") -> Callable:
    """The `run(params)` of `step` for `modality` (imported only now: `driftfit prepare` never pays for torch).
    A file it may not read or write (a read-only registry or memory) is a one-line error naming the file."""
    run = getattr(importlib.import_module(spec(modality).steps[step]), "run")

    @functools.wraps(run)
    def permitted(params, *args, **kwargs):
        try:
            return run(params, *args, **kwargs)
        except PermissionError as err:
            where = err.filename or "a file it needs"
            raise DriftfitError(f"step '{step}': permission denied on '{where}' ({err.strerror}); give the user "
                                "running driftfit access to it and run the step again (its outputs are written "
                                "whole or not at all)") from None
    return permitted


def step(name: str, params) -> Callable:
    """The function that runs step `name` for these params' modality."""
    return step_function(name, params.task.modality)


def step_part(name: str, function: str, params) -> Callable:
    """Another function of the module that runs step `name` for these params' modality (e.g. evaluate's
    score_folder, which promote uses to re-score the serving champion)."""
    return getattr(importlib.import_module(spec(params.task.modality).steps[name]), function)


def runs_on(modality: str, step_name: str) -> Callable:
    """Mark a step module's `run(params)` as one modality's: called directly with another modality's params
    (a script, a notebook), it stops before reading or writing anything and names the function that runs
    that step for those params. The CLI and the flow dispatch through `step` and never trip it."""
    def wrap(run: Callable) -> Callable:
        @functools.wraps(run)
        def checked(params, *args, **kwargs):
            given = params.task.modality
            if given != modality:
                right = spec(given).steps[step_name]
                raise ConfigError(f"{run.__module__}.run runs the '{step_name}' step for task.modality '{modality}', "
                                  f"but these params have task.modality '{given}': call {right}.run, or "
                                  f"driftfit.modalities.step('{step_name}', params)(params), as `driftfit "
                                  f"{step_name}` and the Prefect flow do")
            return run(params, *args, **kwargs)
        return checked
    return wrap
