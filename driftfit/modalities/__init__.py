"""Modalities as plug-ins: what a classifier reads (texts, images), behind one interface the steps call.

Each modality is one package here (`text/`, `image/`) whose `__init__.py` ends with one `register_modality(...)`
call, as peft's tuners do: the steps (driftfit/steps/) hold each step's modality-free skeleton (read inputs,
call the modality, write outputs whole, return the record) and never name a modality. A modality supplies the
parts that depend on the input: reading a source into rows, checking them, augmenting, embedding and measuring
shift, building and training each strategy's model, scoring rows with a saved model. `task.modality` picks one.

A third modality is a third package (or any module that calls `register_modality`); its functions may import
whatever they need lazily (`lazy`), so `driftfit prepare` never pays for torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from driftfit.errors import ConfigError


class Scorer(Protocol):
    """A saved (or pretrained) model ready to score a modality's rows."""
    labels: list[str]
    folder: Path | None          # where it lies (None: nothing on disk, the untrained baseline)
    parameters: int

    def predict_proba(self, rows) -> Any:  # an (n rows, n labels) numpy array, columns in `labels` order
        ...

    def latency(self, rows, examples: int) -> dict:  # ms per row, p50/p95, at batch 1 and 32
        ...


@dataclass(frozen=True)
class Modality:
    """Everything the steps need to know about one kind of input. Functions take the run's Params."""
    name: str
    summary: str                                   # one line: what it reads, with which model
    default_data: str                              # what `driftfit default-data` writes for it
    shift_measures: tuple[str, ...]                # the sections of its shift report
    strategies: Mapping[str, Any]                  # strategy name -> how this modality builds it (what it runs)
    stores_files: bool                             # its rows name files (path, sha256) the memory keeps copies of
    check_params: Callable                         # (params, source) -> None, or a ConfigError naming the key
    write_default_data: Callable                   # (params, folder) -> what was written
    check_sources: Callable                        # (params) -> None: before any data is read (e.g. the contract)
    load: Callable                                 # (params, source, path=None) -> rows: label + content (+ line)
    source_digest: Callable                        # (path) -> the source's digest for the record
    stored: Callable                               # (params, rows) -> rows as splits keep them (portable)
    restored: Callable                             # (params, rows) -> rows as steps read them
    validate: Callable                             # (params, splits, docs_dir, sources) -> GX summary
    augment: Callable                              # (params, train, folder) -> (augmented rows, record)
    measure: Callable                              # (params, reference, reference_test, train, val, champion) -> report
    train: Callable                                # (params, train, val, strategy, folder, **context) -> log
    classifier: Callable                           # (params, folder) -> Scorer
    baseline: Callable                             # (params, labels) -> Scorer: the untrained pretrained model
    describe_input: Callable                       # (params, train_log) -> (input size, its limitation), words
    evaluation_extras: Callable | None = None      # (params, folder, splits, answers) -> extra evaluation files
    serving: str | None = None                     # its serving module (requests, torch scorer, ONNX graph)
    notes: tuple[str, ...] = field(default=())     # what it does not do (yet), in words


_REGISTERED: dict[str, Modality] = {}


def register_modality(modality: Modality) -> Modality:
    """Make `modality` available as task.modality: <its name> (a package's __init__ ends with this call)."""
    _REGISTERED[modality.name] = modality
    return modality


def available() -> tuple[str, ...]:
    """Every modality that can be named: the packages here, and any registered by other code."""
    here = [m.name for m in pkgutil.iter_modules(__path__) if m.ispkg]
    return tuple(dict.fromkeys([*here, *_REGISTERED]))


def get(name: str) -> Modality:
    """The modality called `name` (its package imported now), or a ConfigError listing the known ones."""
    if name not in _REGISTERED and name in available():
        importlib.import_module(f"{__name__}.{name}")
    try:
        return _REGISTERED[name]
    except KeyError:
        raise ConfigError(f"task.modality = '{name}': expected one of {', '.join(available())}") from None


def serving_parts(name: str):
    """The serving module of modality `name` (what driftfit.serving asks: REQUEST_KEY, INPUT_COLUMN,
    ITEMS_ARE_FILES, EXAMPLE, REQUEST_EXAMPLE, check_items, open_item, saved_scorer (the `torch` backend: the
    saved files as evaluation scored them), export_graph (ONNX; optional) and decode_request_item (when a request's
    strings are not scored as sent)."""
    modality = get(name)
    if not modality.serving:
        raise ConfigError(f"modality '{name}' has no serving module: its versions cannot be loaded, exported or "
                          "served")
    return importlib.import_module(modality.serving)


def lazy(module: str, function: str) -> Callable:
    """`module.function`, imported on the first call: a modality registers its parts without importing torch."""
    resolved: list[Callable] = []

    def call(*args, **kwargs):
        if not resolved:
            resolved.append(getattr(importlib.import_module(module), function))
        return resolved[0](*args, **kwargs)

    call.__name__ = call.__qualname__ = function
    call.__doc__ = f"{module}.{function}, imported when first called"
    call.target = (module, function)  # where it lives, for driftfit.pipeline.code_deps
    return call
