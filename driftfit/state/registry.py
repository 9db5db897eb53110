"""The champion registry: numbered versions under `paths.registry` and one pointer file.

  models/registry/
    v1/ v2/ ...        a promoted model each: the model files, MODEL_CARD.md and version.json
                       (data hashes, params, metrics, the gate's decision and why); never changed
    champion.json      the pointer: which version serves now, and the history of promotions and
                       rollbacks
    .lock              held while a promotion or rollback changes the registry

What it guarantees:
- No version is lost. A version folder with a version.json is never deleted by driftfit. A registry
  whose pointer is missing or unreadable is an error (nothing is changed) until `driftfit registry
  repair` rebuilds the pointer from the versions' records.
- Nothing damaged serves. Each version records `model_sha256`, a digest of its model files; loading the
  champion (or any version), a rollback and a repair check it, and a mismatch is an error naming the
  version and the repair (`dvc checkout`, or a rollback to a sound version).
- An atomic switch. A version folder is assembled under a temp name and renamed in (one rename),
  and the pointer is replaced with os.replace (atomic on POSIX), so a reader sees the old champion or
  the new one, never half of either. A run killed between the two renames leaves a complete version
  that never served; the next promotion of the same candidate completes the switch.
- One writer at a time: promotions and rollbacks hold an advisory lock on `.lock`.
- A rollback sticks: a candidate that is already a version (same model files) is never added again,
  and one that served and was rolled back is not re-promoted by the next run (see driftfit.steps.promote).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from driftfit.config import Params
from driftfit.errors import DriftfitError
from driftfit.io import write_json

log = logging.getLogger(__name__)
POINTER = "champion.json"
RECORD = "version.json"
CARD = "MODEL_CARD.md"
TEMP_PREFIXES = (".incoming-", f".{POINTER}.", ".champion-")  # staged before a rename (.champion-: older runs)


class RegistryError(DriftfitError):
    """The registry's pointer is missing or broken: nothing is changed until it is repaired."""


def _repair_hint(root: Path) -> str:
    return (f"run 'driftfit registry repair --registry {root}' to rebuild it from the versions' records "
            "(it lists what it chose; --to vN picks the champion)")


# ---- reading -------------------------------------------------------------------------------

def champion_info(registry: str | Path) -> dict | None:
    """The pointer (version, why, history), or None when nothing was promoted yet.

    A registry holding versions but no pointer, or a pointer that is not a valid record, is an error:
    guessing would risk serving, or deleting, the wrong model.
    """
    root = Path(registry)
    pointer = root / POINTER
    if not pointer.is_file():
        recorded = [v for v in versions(root) if (root / v / RECORD).is_file()]
        if recorded:
            raise RegistryError(f"registry {root}: {POINTER} is missing but versions {_span(recorded)} exist; "
                                + _repair_hint(root))
        return None
    try:
        info = json.loads(pointer.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RegistryError(f"registry {root}: {pointer} is not valid JSON ({err}); "
                            + _repair_hint(root)) from None
    if isinstance(info, dict) and "version" in info and info["version"] is None:
        return None  # written before the first version: nothing has served yet
    if not isinstance(info, dict) or not isinstance(info.get("version"), str) or _number(info["version"]) is None:
        raise RegistryError(f"registry {root}: {pointer} has no 'version' naming a version folder (vN); "
                            + _repair_hint(root))
    if not (root / info["version"] / RECORD).is_file():
        raise RegistryError(f"registry {root}: {pointer} points at {info['version']}, which has no "
                            f"{RECORD}; " + _repair_hint(root))
    history = info.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) and isinstance(h.get("version"), str)
                                                for h in history):
        raise RegistryError(f"registry {root}: {pointer} has a 'history' that is not a list of entries naming a "
                            "version; " + _repair_hint(root))
    return info


def _span(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]} ({len(names)})"


def champion_dir(registry: str | Path) -> Path | None:
    """Folder of the current champion, its files checked against their recorded digest (`verified`), or None
    when nothing was promoted yet."""
    info = champion_info(registry)
    return version_dir(registry, info["version"]) if info else None


def version_dir(registry: str | Path, version: str) -> Path:
    """The folder of `version`, once its model files match the digest recorded when it was promoted: a
    damaged or replaced file is an error naming the version and the repair, never a model that serves."""
    version_record(registry, version)  # a missing or unreadable record stops here
    return verified(registry, version)


_VERIFIED: dict[tuple, str] = {}  # (folder, files with sizes and mtimes) -> digest: hashed once per process


def _signature(folder: Path) -> tuple:
    return (str(folder), *sorted((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                                 for p in folder.rglob("*") if p.is_file()))


def verified(registry: str | Path, version: str) -> Path:
    """Check `version`'s model files against the `model_sha256` its version.json recorded (see model_digest)."""
    root = Path(registry)
    folder = root / version
    recorded = version_record(root, version).get("model_sha256")
    if recorded is None:  # recorded by a driftfit older than the digests: nothing to check against
        log.warning("registry %s: %s records no model_sha256; its files cannot be verified", root, version)
        return folder
    key = _signature(folder)
    if key not in _VERIFIED:
        _VERIFIED[key] = model_digest(folder)
    if _VERIFIED[key] != recorded:
        raise RegistryError(f"registry {root}: {version}'s model files do not match the digest recorded when it was "
                            f"promoted ({recorded[:12]}...): a file was changed, replaced or removed. Restore them "
                            f"with 'dvc checkout {root}' (the registry is versioned with DVC), or serve another "
                            "version with 'driftfit rollback --to vN'")
    return folder


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
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RegistryError(f"registry {registry}: {path} is not valid JSON ({err}); restore it with "
                            f"'dvc checkout {registry}'") from None
    if not isinstance(record, dict):
        raise RegistryError(f"registry {registry}: {path} holds {type(record).__name__}, not a version record; "
                            f"restore it with 'dvc checkout {registry}'")
    return record


def recorded(record: dict, dotted: str, default=None):
    """A value of the params a version recorded at promotion (`dotted`, e.g. model.max_seq_len), or `default`
    for a record that predates it."""
    value = record.get("params") or {}
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return default if value is None else value


def model_digest(folder: str | Path) -> str:
    """SHA-256 over a model folder's files (names and contents), leaving out the registry's own
    version.json and MODEL_CARD.md: a candidate and the version made from it have the same digest."""
    root = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in (RECORD, CARD):
            continue
        h.update(rel.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def find_version(registry: str | Path, digest: str) -> str | None:
    """The version whose model files have this digest (recorded at promotion, else computed), if any."""
    root = Path(registry)
    for name in reversed(versions(root)):
        if not (root / name / RECORD).is_file():
            continue
        recorded = version_record(root, name).get("model_sha256")
        if (recorded or model_digest(root / name)) == digest:
            return name
    return None


def list_versions(registry: str | Path) -> list[dict]:
    """One row per version: stage (champion / retired / never served), when, strategy, new-data macro-F1, why."""
    info = champion_info(registry) or {}
    served = ever_champion(info)
    rows = []
    for name in versions(registry):
        rec = version_record(registry, name) if (Path(registry) / name / RECORD).is_file() else {}
        f1 = ((rec.get("metrics") or {}).get("candidate") or {}).get("test", {}).get("macro_f1")
        stage = "champion" if name == info.get("version") else "retired" if name in served else "never served"
        rows.append({"version": name, "stage": stage,
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


def ever_champion(info: dict | None) -> set[str]:
    """Every version that was champion at some time, from a pointer already read (its history)."""
    if not info:
        return set()
    return {info["version"], *(h["version"] for h in info.get("history", []))}


def clean_leftovers(registry: str | Path) -> list[str]:
    """Remove what a killed run left: the temp folders and files staged before a rename. Never a version:
    a complete version that never served (killed between the two renames) stays, listed as 'never served'."""
    root = Path(registry)
    if not root.is_dir():
        return []
    removed = []
    for p in root.iterdir():
        if p.name.startswith(TEMP_PREFIXES):
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
    if champion_info(root) is None and not (root / POINTER).is_file():
        # An empty pointer before the first version: from now on a missing pointer always means damage.
        write_json(root / POINTER, {"version": None, "history": []}, fsync=True)
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
    version_record(root, version)  # fails for a missing or incomplete version
    old = champion_info(root)
    return _write_pointer(root, version, action, reason, old["version"] if old else None,
                          (old or {}).get("history", []))


def _write_pointer(root: Path, version: str, action: str, reason: str, previous: str | None,
                   history: list[dict]) -> dict:
    record = version_record(root, version)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    pointer = {
        "version": version, "since": now, "action": action, "reason": reason,
        "strategy": record.get("strategy"), "promoted_at": record.get("promoted_at"),
        "data": record.get("data"), "metrics": (record.get("metrics") or {}).get("candidate"),
        "previous": previous,
        "history": [*history, {"version": version, "action": action, "at": now, "reason": reason}],
    }
    write_json(root / POINTER, pointer, fsync=True)  # fsynced, then renamed over the old pointer
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
        if target not in ever_champion(info):
            raise DriftfitError(f"registry {root}: {target} was never champion (champions so far: "
                                f"{', '.join(sorted(ever_champion(info), key=_number))})")
        if target == current:
            raise DriftfitError(f"registry {root}: {target} is already the champion")
        verified(root, target)  # a damaged version never becomes champion
        reason = f"rolled back from {current} to {target}"
        set_champion(root, target, action="rollback", reason=reason)
    return {"champion": target, "previous": current, "reason": reason}


def _is_sound(root: Path, version: str) -> bool:
    try:
        verified(root, version)
    except RegistryError:
        return False
    return True


def repair(registry: str | Path, version: str | None = None) -> dict:
    """Rebuild a missing or broken pointer from the versions' records: `version` serves, or the newest
    version whose files match their recorded digest. The history is rebuilt from each record's promotion time and predecessor
    (rollbacks are not in the records and cannot be recovered). A sound pointer is left alone."""
    root = Path(registry)
    with lock(root):
        try:
            info = champion_info(root)
        except RegistryError:
            info = None
        else:
            if info is not None:
                raise DriftfitError(f"registry {root}: {POINTER} is sound ({info['version']} serves); nothing to "
                                    "repair (use 'driftfit rollback --to vN' to change the champion)")
        recorded = [v for v in versions(root) if (root / v / RECORD).is_file()]
        if not recorded:
            raise DriftfitError(f"registry {root}: no version has a {RECORD}; nothing to rebuild the pointer from")
        if version is not None and version not in recorded:
            raise DriftfitError(f"registry {root}: no version '{version}' with a record (versions: "
                                f"{', '.join(recorded)})")
        sound = [v for v in recorded if _is_sound(root, v)]
        if version is not None:
            verified(root, version)  # the version asked for must be whole
        elif not sound:
            raise DriftfitError(f"registry {root}: no version's files match their recorded digest (versions: "
                                f"{', '.join(recorded)}); restore them with 'dvc checkout {root}'")
        target = version or sound[-1]
        broken = root / POINTER
        kept = None
        if broken.exists():  # keep the broken file for a person to look at, never delete it
            kept = root / f"{POINTER}.broken-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S')}"
            os.replace(broken, kept)
        history = []
        for name in recorded:
            rec = version_record(root, name)
            history.append({"version": name, "action": "promote", "at": rec.get("promoted_at"),
                            "reason": rec.get("reason")})
        previous = version_record(root, target).get("previous")
        pointer = _write_pointer(root, target, "repair", f"pointer rebuilt from the versions' records; {target} serves",
                                 previous, history)
    return {"champion": target, "versions": recorded, "broken_pointer_kept_as": kept and kept.name,
            "history": len(pointer["history"])}
