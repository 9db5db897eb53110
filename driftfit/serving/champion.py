"""A registry version, loaded to score: the champion (or any version), text or image, by torch or ONNX.

    from driftfit.serving import load
    clf = load("models/registry")                 # the champion; load("models/registry", version="v2")
    clf.predict(["who wrote hamlet?"])            # [{"label": "literature", "probability": 0.99}]

A version is read only after its model files match the SHA-256 recorded when it was promoted
(`model_sha256` in its version.json, checked by driftfit.state.registry): a damaged or changed version is refused,
never scored. It reads its
texts as it was trained (the max_seq_len in its version.json). Backends: `torch` (the saved safetensors,
what evaluation scored), `onnx` and `onnx_int8` (its export, see driftfit.serving.export).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from driftfit.state import registry
from driftfit.errors import DriftfitError
from driftfit.modalities import serving_parts

log = logging.getLogger(__name__)
BACKENDS = ("torch", "onnx", "onnx_int8")


class Champion:
    """A loaded version: `predict` gives a label and its probability per input; `predict_proba` every label's."""

    def __init__(self, version: str, labels: list[str], modality: str, backend: str,
                 proba: Callable[[list], np.ndarray], record: dict):
        self.version = version
        self.labels = labels
        self.modality = modality      # its modality's name (text, image, ...)
        self.parts = serving_parts(modality)  # what the modality says about serving (driftfit.modalities)
        self.backend = backend        # torch | onnx | onnx_int8
        self.record = record          # its version.json
        self._proba = proba

    def __repr__(self) -> str:
        return f"Champion({self.version}, {self.modality}, {len(self.labels)} labels, {self.backend})"

    def predict_proba(self, items: Sequence[Any]) -> np.ndarray:
        """Probabilities, one row per input (texts; or image paths, PIL images, H x W x 3 uint8 arrays), columns in
        `labels` order."""
        items = list(items)
        self.parts.check_items(items)
        if not items:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self._proba(items)

    def predict(self, items: Sequence[Any], all_probabilities: bool = False) -> list[dict]:
        """[{"label": ..., "probability": ...}, ...] per input; with all_probabilities also {"probabilities": {label: p}}."""
        return rows_of(self.predict_proba(items), self.labels, all_probabilities)


def rows_of(probs: np.ndarray, labels: list[str], all_probabilities: bool = False) -> list[dict]:
    rows = []
    for row in probs:
        best = int(row.argmax())
        out = {"label": labels[best], "probability": float(row[best])}
        if all_probabilities:
            out["probabilities"] = {label: float(p) for label, p in zip(labels, row)}
        rows.append(out)
    return rows


# ---- which version, checked ----------------------------------------------------------------------

def resolve(root: str | Path, version: str | None = None) -> tuple[str, dict]:
    """(version, its record): `version`, or the one champion.json points at. Errors name the registry."""
    if version is None:
        info = registry.champion_info(root)  # a missing or broken pointer is an error naming the repair
        if info is None:
            raise DriftfitError(f"registry {root}: no champion yet (nothing was promoted); run the pipeline first "
                                "(make run, or dvc repro)")
        version = info["version"]
    return version, registry.version_record(root, version)  # an unknown version lists the known ones


def verified_folder(root: str | Path, version: str) -> Path:
    """The version's folder, once its model files match the digest recorded at promotion (registry.version_dir):
    a damaged or changed version is an error naming the repair, never a model that scores."""
    return registry.version_dir(root, version)


def modality_of(folder: Path, record: dict) -> str:
    """The modality a version was trained for: its recorded params' task.modality; a record that predates it, by
    the folder (the image modality's classifier.json says so; else text)."""
    name = registry.recorded(record, "task.modality")
    if name:
        return str(name)
    meta = Path(folder) / "classifier.json"
    return "image" if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("modality") == "image" \
        else "text"


# ---- loading -----------------------------------------------------------------------------------

def load(registry_dir: str | Path = "models/registry", version: str | None = None, *, backend: str = "torch",
         device: str = "auto", batch_size: int = 64, exports: str | Path | None = None,
         trust_remote_code: bool = False, threads: int = 0) -> Champion:
    """The champion of `registry_dir` (or `version`), ready to score.

    backend: torch | onnx | onnx_int8 (the ONNX ones read the version's export: `driftfit export`; `exports`
    defaults to the folder `exports` beside the registry, as export.dir's default `models/exports`).
    device: the torch backend's (auto: CUDA when present). threads: intra-op threads (0: the library's default).
    """
    if backend not in BACKENDS:
        raise DriftfitError(f"backend = '{backend}': expected one of {', '.join(BACKENDS)}")
    root = Path(registry_dir)
    version, record = resolve(root, version)
    folder = verified_folder(root, version)
    if backend == "torch":
        champion = _torch_champion(folder, version, record, device, batch_size, trust_remote_code, threads)
    else:
        champion = _onnx_champion(root, version, record, backend, batch_size,
                                  Path(exports) if exports is not None else root.parent / "exports", threads)
    log.info("loaded %r", champion)
    return champion


def _torch_champion(folder: Path, version: str, record: dict, device: str, batch_size: int,
                    trust_remote_code: bool, threads: int) -> Champion:
    import torch

    from driftfit.training.device import pick_device

    if threads:
        torch.set_num_threads(threads)
    modality = modality_of(folder, record)
    labels, proba = serving_parts(modality).saved_scorer(folder, record, pick_device(device, "device"), batch_size,
                                                          trust_remote_code)
    return Champion(version, labels, modality, "torch", proba, record)


def _onnx_champion(root: Path, version: str, record: dict, backend: str, batch_size: int, exports: Path,
                   threads: int) -> Champion:
    from driftfit.serving.onnx_runner import find_export
    from driftfit.serving.onnx_runner import ExportError, OnnxClassifier

    folder = find_export(root, version, exports, record.get("model_sha256"))
    if folder is None:
        raise DriftfitError(f"registry {root}: {version} has no ONNX export made from its model files (looked in "
                            f"{root / version / 'onnx'} and {exports / version}); run 'driftfit export --version "
                            f"{version}'")
    try:
        onnx = OnnxClassifier(folder, int8=backend == "onnx_int8", threads=threads)
    except ExportError as err:
        raise DriftfitError(str(err)) from None
    open_item = serving_parts(onnx.modality).open_item

    def proba(items: list) -> np.ndarray:
        return onnx.predict_proba([open_item(x) for x in items], batch_size)

    return Champion(version, onnx.labels, onnx.modality, backend, proba, record)
