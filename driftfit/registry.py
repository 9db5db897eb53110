"""The champion registry: numbered versions under `paths.registry` and one pointer file.

  models/registry/
    v1/ v2/ ...        a promoted model each: the model files, MODEL_CARD.md and version.json
                       (data hashes, params, metrics, the gate's decision and why); never changed
    champion.json      the pointer: which version serves now, and the history of promotions and
                       rollbacks
    .lock              held while a promotion or rollback changes the registry

Atomicity: a version folder is assembled under a temp name and renamed in (one rename), and the
pointer is replaced with os.replace (atomic on POSIX), so a reader sees the old champion or the
new one, never half of either. A run killed between the two renames leaves a version that never
became champion; `clean_leftovers` (run at the start of the next promotion) removes it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from driftfit.config import Params
from driftfit.errors import DriftfitError

POINTER = "champion.json"
RECORD = "version.json"
CARD = "MODEL_CARD.md"


# ---- reading -------------------------------------------------------------------------------

def champion_info(registry: str | Path) -> dict | None:
    """The pointer (version, why, history), or None when nothing was promoted yet."""
    pointer = Path(registry) / POINTER
    return json.loads(pointer.read_text(encoding="utf-8")) if pointer.is_file() else None


def champion_dir(registry: str | Path) -> Path | None:
    """Folder of the current champion, or None when nothing was promoted yet."""
    info = champion_info(registry)
    path = Path(registry) / info["version"] if info else None
    return path if path is not None and path.is_dir() else None


def _number(name: str) -> int | None:
    return int(name[1:]) if name.startswith("v") and name[1:].isdigit() else None


def versions(registry: str | Path) -> list[str]:
    """Version folders, oldest first."""
    root = Path(registry)
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if p.is_dir() and _number(p.name) is not None), key=_number)


def version_record(registry: str | Path, version: str) -> dict:
    path = Path(registry) / version / RECORD
    if not path.is_file():
        known = ", ".join(versions(registry)) or "none"
        raise DriftfitError(f"registry {registry}: no version '{version}' (versions: {known})")
    return json.loads(path.read_text(encoding="utf-8"))


def list_versions(registry: str | Path) -> list[dict]:
    """One row per version: stage (champion / retired), when, strategy, new-data macro-F1, why."""
    info = champion_info(registry) or {}
    rows = []
    for name in versions(registry):
        rec = version_record(registry, name) if (Path(registry) / name / RECORD).is_file() else {}
        f1 = ((rec.get("metrics") or {}).get("candidate") or {}).get("test", {}).get("macro_f1")
        rows.append({"version": name, "stage": "champion" if name == info.get("version") else "retired",
                     "promoted_at": rec.get("promoted_at"), "strategy": rec.get("strategy"),
                     "macro_f1_new": f1, "data": rec.get("data"), "reason": rec.get("reason")})
    return rows


# ---- changing, atomically --------------------------------------------------------------------

@contextmanager
def lock(registry: str | Path) -> Iterator[None]:
    """One promotion or rollback at a time (an advisory file lock, released if the process dies)."""
    root = Path(registry)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ever_champion(info: dict | None) -> set[str]:
    if not info:
        return set()
    return {info["version"], *(h["version"] for h in info.get("history", []))}


def clean_leftovers(registry: str | Path) -> list[str]:
    """Remove what a killed run left: temp folders/files and versions that never became champion."""
    root = Path(registry)
    if not root.is_dir():
        return []
    promoted = [_number(v) for v in _ever_champion(champion_info(root))]
    newest = max((n for n in promoted if n is not None), default=0)
    removed = []
    for p in root.iterdir():
        n = _number(p.name)
        if p.name.startswith((".incoming-", ".champion-")) or (p.is_dir() and n is not None and n > newest):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p.name)
    return sorted(removed)


def next_version(registry: str | Path) -> str:
    return f"v{max((_number(v) for v in versions(registry)), default=0) + 1}"


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def add_version(registry: str | Path, version: str, model_dir: Path, record: dict, card: str) -> Path:
    """Copy the model in as `version` with its record and card: assembled under a temp name, then renamed."""
    root = Path(registry)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        (tmp / RECORD).write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        (tmp / CARD).write_text(card, encoding="utf-8")
        _fsync_tree(tmp)
        os.rename(tmp, root / version)  # fails if the version exists: versions are never overwritten
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / version


def set_champion(registry: str | Path, version: str, action: str, reason: str) -> dict:
    """Point the registry at `version` (one atomic rename) and append the change to the history."""
    root = Path(registry)
    record = version_record(root, version)  # fails for a missing or incomplete version
    old = champion_info(root)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    pointer = {
        "version": version, "since": now, "action": action, "reason": reason,
        "strategy": record.get("strategy"), "promoted_at": record.get("promoted_at"),
        "data": record.get("data"), "metrics": (record.get("metrics") or {}).get("candidate"),
        "previous": old["version"] if old else None,
        "history": [*((old or {}).get("history", [])),
                    {"version": version, "action": action, "at": now, "reason": reason}],
    }
    fd, tmp = tempfile.mkstemp(prefix=".champion-", suffix=".json", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(pointer, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / POINTER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return pointer


def rollback(params: Params, version: str | None = None) -> dict:
    """Make an earlier version champion again: `version`, or the one the current champion replaced."""
    root = Path(params.paths.registry)
    with lock(root):
        info = champion_info(root)
        if info is None:
            raise DriftfitError(f"registry {root}: no champion yet, nothing to roll back")
        current = info["version"]
        target = version or version_record(root, current).get("previous")
        if target is None:
            raise DriftfitError(f"registry {root}: {current} was the first champion, there is no earlier "
                                "version to return to")
        version_record(root, target)  # fails, listing the versions, if there is no such version
        if target not in _ever_champion(info):
            raise DriftfitError(f"registry {root}: {target} was never champion (champions so far: "
                                f"{', '.join(sorted(_ever_champion(info), key=_number))})")
        if target == current:
            raise DriftfitError(f"registry {root}: {target} is already the champion")
        reason = f"rolled back from {current} to {target}"
        set_champion(root, target, action="rollback", reason=reason)
    return {"champion": target, "previous": current, "reason": reason}
