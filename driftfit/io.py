"""Small file helpers: every output is written whole or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def write_text(path: str | Path, text: str, fsync: bool = False) -> None:
    """Write to a temp file beside `path`, then rename it into place: readers see the old file or the new
    one, and an error leaves no temp file. `fsync`: on disk before the rename (for state that must survive a
    power cut, like the registry's pointer)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any, fsync: bool = False) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", fsync=fsync)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ---- temp folders that name their process, so a later run can tell a dead run's leftovers ---------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(folder: str | Path, prefix: str) -> list[str]:
    """Remove `<prefix><pid>-*` entries whose process is gone (a run killed with SIGKILL leaves them), and
    `<prefix>*` entries without a pid (made before temp names carried one). Live runs' entries stay."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.glob(f"{prefix}*"):
        pid = p.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def run_tempdir(kind: str) -> Path:
    """A new folder in the system temp dir, `driftfit-<kind>-<pid>-*`, after removing dead runs' ones."""
    remove_stale(tempfile.gettempdir(), f"driftfit-{kind}-")
    return Path(tempfile.mkdtemp(prefix=f"driftfit-{kind}-{os.getpid()}-"))


def _restore_interrupted_swap(target: Path) -> None:
    """A run killed between atomic_dir's two renames left the old folder as `.<name>.old-<pid>` and no
    target: put the old folder back (the new one never took its place), so nothing is lost."""
    if target.exists():
        return
    prefix = f".{target.name}.old-"
    for old in sorted(target.parent.glob(f"{prefix}*"), key=lambda p: p.stat().st_mtime, reverse=True):
        pid = old.name[len(prefix):].split("-", 1)[0]
        if old.is_dir() and not (pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid))):
            os.replace(old, target)
            return


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temp folder; on success it replaces `target`, on error it is removed.

    The temp folder is `.<name>.tmp-<pid>-*` beside the target; those of killed runs are removed first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _restore_interrupted_swap(target)
    remove_stale(target.parent, f".{target.name}.tmp-")
    remove_stale(target.parent, f".{target.name}.old-")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
