"""One run at a time per project: `driftfit <step>`, `dvc repro` and a Prefect flow run never interleave.

A step replaces its outputs whole, so two runs in one project would each see the other's half-finished week.
The project lock is an advisory lock (flock) on `.driftfit.lock` in the project folder (params.yaml's), held by
each `driftfit` step (the CLI, so each `dvc repro` stage too) and by a flow for its whole run; the flow also
holds DVC's own repo lock meanwhile (tasks/stage.py), so `dvc repro` cannot start between two of its tasks. A
second run is refused at once, naming the run that holds the lock. The lock is released when its process
ends, however it ends (a run killed with SIGKILL leaves no stale lock).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from driftfit.errors import DriftfitError

LOCK = ".driftfit.lock"


class Busy(DriftfitError):
    """Another driftfit run holds the project lock."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return "another driftfit run"
    return f"{info.get('what', 'a driftfit run')} (pid {info.get('pid', '?')}, since {info.get('since', '?')})"


def _a_later_rank() -> bool:
    """This process is a worker of a torchrun group other than rank 0 (which holds the lock for the group)."""
    try:
        return int(os.environ.get("WORLD_SIZE") or 1) > 1 and int(os.environ.get("RANK") or 0) != 0
    except ValueError:
        return False


@contextmanager
def project_lock(root: str | Path, what: str) -> Iterator[None]:
    """Hold the project's lock while the block runs, or raise Busy at once if another run holds it. In a
    multi-process run (torchrun: RANK and WORLD_SIZE set) rank 0 holds it for the whole group."""
    if _a_later_rank():
        yield
        return
    path = Path(root) / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise DriftfitError(f"cannot open the project lock {path} ({err.strerror}): the project folder must be "
                            "writable for a run") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"project {Path(root)} is busy: {_holder(fd)} is running in it; wait for it to finish "
                       "(steps, `dvc repro` and flow runs of one project run one at a time)") from None
        since = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"what": what, "pid": os.getpid(), "since": since}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
