"""Task caching that follows dvc.yaml: a step is skipped when its stage's deps, params and code are
unchanged and the files it wrote last time are still there, untouched.

Each task names its DVC stage; the stage's `deps`, `params` and `outs` (with `${...}` filled in
from the run's params) are read from the dvc.yaml beside the flow's params file, so what a step
depends on is written once, for both doors. No dvc.yaml there: no caching.

Prefect keys a cached result by a string computed *before* the task runs, but whether the outputs
are intact is only known against what the last run wrote. So each stage keeps a small stamp,
{inputs: hash of deps+params, generation: random id, outputs: hash of what it wrote}:
  - same inputs and the outputs still match -> the same generation -> Prefect's cached result;
  - anything else -> a new generation (a key never used before) -> the task runs, and when its
    result is committed `record_outputs` stores the hash of what it wrote.
Outputs marked `persist: true` (the model registry: state, not a derived file) only need to exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect.cache_policies import CachePolicy
from prefect.settings import get_current_settings

log = logging.getLogger(__name__)
_HASHES: dict[tuple, str] = {}  # (path, size, mtime, inode) -> sha256: unchanged files are read once
_PENDING: dict[str, tuple] = {}  # transaction key -> (stamp file, stamp, outs)


# ---- hashing files ---------------------------------------------------------------------------

def file_hash(path: Path) -> str:
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if memo not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[memo] = h.hexdigest()
    return _HASHES[memo]


def path_hash(path: Path) -> str | None:
    """Content hash of a file or a whole folder (names + contents); None when it is missing."""
    if path.is_file():
        return file_hash(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{file_hash(p)}\n".encode())
    return h.hexdigest()


# ---- the stage, from dvc.yaml ----------------------------------------------------------------

@dataclass
class StageFiles:
    deps: list[Path]
    outs: list[Path]
    persist: list[Path]
    params: dict[str, Any]


def _lookup(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def stage_files(dvc_yaml: Path, stage: str, params) -> StageFiles:
    """The stage's deps, outs and param values, with `${...}` filled from `params`."""
    spec = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"][stage]
    values = params.model_dump(mode="json", by_alias=True)
    root = dvc_yaml.parent

    def fill(text: str) -> str:
        return re.sub(r"\$\{\s*([\w.]+)\s*\}", lambda m: str(_lookup(values, m.group(1))), text)

    def entries(items) -> list[tuple[str, dict]]:
        out = []
        for item in items or []:
            name, opts = (item, {}) if isinstance(item, str) else next(iter(item.items()))
            out.append((fill(name), opts or {}))
        return out

    outs = [(root / p, o) for p, o in entries(spec.get("outs", []) + spec.get("metrics", []))]
    return StageFiles(deps=[root / p for p, _ in entries(spec.get("deps"))],
                      outs=[p for p, o in outs if not o.get("persist")],
                      persist=[p for p, o in outs if o.get("persist")],
                      params={k: _lookup(values, k) for k in spec.get("params", []) if isinstance(k, str)})


# ---- the cache policy ------------------------------------------------------------------------

def _stamp_file(dvc_yaml: Path, stage: str) -> Path:
    project = hashlib.sha256(str(dvc_yaml.resolve()).encode()).hexdigest()[:16]
    return get_current_settings().results.local_storage_path / "driftfit-stamps" / f"{project}-{stage}.json"


def _outputs_hash(files: StageFiles) -> str | None:
    """Hash of the outputs; None if any is missing."""
    hashes = {}
    for p in files.outs:
        if (hashes.setdefault(str(p), path_hash(p))) is None:
            return None
    if not all(p.exists() for p in files.persist):
        return None
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


class StageCache(CachePolicy):
    """Cache a task by its DVC stage (see the module docstring). The task must take `params`."""

    def __init__(self, stage: str):
        self.stage = stage

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        params_path = flow_parameters.get("params_path")
        if params_path is None or "params" not in inputs:
            return None
        dvc_yaml = Path(params_path).resolve().parent / "dvc.yaml"
        if not dvc_yaml.is_file():
            return None
        try:
            files = stage_files(dvc_yaml, self.stage, inputs["params"])
        except (KeyError, TypeError, yaml.YAMLError) as err:  # dvc.yaml changed shape: run, don't guess
            log.warning("no caching for %s: cannot read its stage from %s (%r)", self.stage, dvc_yaml, err)
            return None
        deps = {str(p): path_hash(p) for p in files.deps}
        key = hashlib.sha256(json.dumps({"stage": self.stage, "deps": deps, "params": files.params},
                                        sort_keys=True, default=str).encode()).hexdigest()
        stamp_file = _stamp_file(dvc_yaml, self.stage)
        try:
            stamp = json.loads(stamp_file.read_text())
        except (OSError, ValueError):  # none yet, or cut short by a killed run
            stamp = {}
        intact = stamp.get("inputs") == key and stamp.get("outputs") is not None \
            and stamp["outputs"] == _outputs_hash(files)
        if not intact:  # a key never used before: the task runs and its outputs are recorded after
            stamp = {"stage": self.stage, "inputs": key, "generation": uuid.uuid4().hex, "outputs": None}
            stamp_file.parent.mkdir(parents=True, exist_ok=True)
            stamp_file.write_text(json.dumps(stamp))
        txn_key = f"driftfit-{self.stage}-{key[:24]}-{stamp['generation']}"
        _PENDING[txn_key] = (stamp_file, stamp, files)
        return txn_key


def record_outputs(txn) -> None:
    """on_commit hook: the task ran and succeeded; remember the hash of what it wrote."""
    pending = _PENDING.pop(txn.key, None)
    if pending is not None:
        stamp_file, stamp, files = pending
        stamp_file.write_text(json.dumps({**stamp, "outputs": _outputs_hash(files)}))


# Prefect logs two lines per hook run unless told not to (an undocumented switch; harmless if it goes)
record_outputs.log_on_run = False
