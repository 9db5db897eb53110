"""Prefect tasks cached by DVC: DVC says whether a dvc.yaml stage is up to date, and a task that ran is
recorded in dvc.lock, as `dvc commit` would, so both doors share one record of what was built from what.

- Before a task runs, DVC checks its stage (deps, params and outputs against dvc.lock). Up to date: the
  cache key is the hash of the stage's dvc.lock entry, under which the run that recorded it stored its
  result, so Prefect returns that result ("Cached"). Anything else (an output deleted or edited, a dep or
  param changed, never recorded): a key never used before, and the task runs.
- After it ran, the stage is committed to dvc.lock and the result is stored under the new entry's hash.
- DVC knows params.yaml's values only. A flow run whose overrides change a path (`paths.*`, `data.*`) or
  one of the stage's params is not what dvc.lock describes: that stage runs and is not recorded.
No dvc.yaml beside the params file, or no DVC repo there: no caching, every task runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

from prefect import task
from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

from driftfit.config import Params, load_params
from driftfit.lock import Busy, project_lock

log = logging.getLogger(__name__)
logging.getLogger("dvc").setLevel(logging.WARNING)  # "Updating lock file" on every task: DVC's news, not the run's


# ---- DVC's view of one stage ---------------------------------------------------------------------

def _project(params_path: str | None) -> Path | None:
    if not params_path:
        return None
    root = Path(params_path).resolve().parent
    return root if (root / "dvc.yaml").is_file() and (root / ".dvc").is_dir() else None


_REPOS: dict[Path, Any] = {}  # one DVC Repo per project and process: opening one costs ~0.1 s, twice per task
_REPOS_LOCK = threading.Lock()


def _repo(root: Path):
    from dvc.repo import Repo

    if root not in _REPOS:
        _REPOS[root] = Repo(str(root))
    return _REPOS[root]


@contextmanager
def _stage(root: Path, name: str) -> Iterator[Any]:
    """The stage `name` as DVC reads it from dvc.yaml and dvc.lock now, with DVC's repo lock held (already held
    for the whole run when the flow took it: `hold_project`)."""
    with _REPOS_LOCK:
        repo = _repo(root)
        repo._reset()  # forget what it read before: dvc.yaml, dvc.lock and outputs may have changed since
        with nullcontext() if repo.lock.is_locked else repo.lock:
            (stage,) = repo.stage.collect(f"{root / 'dvc.yaml'}:{name}")  # a bare name resolves from the cwd
            yield repo, stage


@contextmanager
def hold_project(params: Params, params_path: str, what: str) -> Iterator[None]:
    """A flow run holds its project for its whole run: driftfit's project lock (driftfit.lock: no `driftfit`
    step meanwhile) and, in a DVC project, DVC's own repo lock (no `dvc repro` between two of its tasks)."""
    from dvc.lock import LockError

    with project_lock(params.project, what):
        root = _project(params_path)
        if root is None:
            yield
            return
        with _REPOS_LOCK:
            repo = _repo(root)
            try:
                repo.lock.lock()
            except LockError:
                raise Busy(f"project {root} is busy: DVC's lock is held (a `dvc repro` or another DVC command is "
                           "running in it); wait for it to finish") from None
        try:
            yield
        finally:
            with _REPOS_LOCK:
                repo.lock.unlock()


def _entry_key(name: str, stage) -> str:
    """The hash of the stage's dvc.lock entry (deps, params, outs with their hashes)."""
    from dvc.stage.serialize import to_single_stage_lockfile

    entry = json.dumps(to_single_stage_lockfile(stage), sort_keys=True, default=str)
    return f"driftfit-{name}-{hashlib.sha256(entry.encode()).hexdigest()[:32]}"


def _described_by_params_file(stage, params: Params, params_path: str) -> bool:
    """True when the run's paths, data sources and the stage's params equal params.yaml's: what DVC sees."""
    from dvc.dependency.param import ParamsDependency

    ours, file = params.model_dump(by_alias=True), load_params(params_path).model_dump(by_alias=True)
    keys = ["paths", "data"] + [k for d in stage.deps if isinstance(d, ParamsDependency) for k in d.params]
    for key in keys:
        a, b = ours, file
        for part in key.split("."):
            a, b = a.get(part) if isinstance(a, dict) else None, b.get(part) if isinstance(b, dict) else None
        if a != b:
            return False
    return True


# ---- the cache policy and the task decorator -----------------------------------------------------

class DvcStage(CachePolicy):
    """Cache key from DVC's verdict on the stage (see the module docstring). The task must take `params`."""

    def __init__(self, stage: str):
        self.stage = stage

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        params_path = flow_parameters.get("params_path")
        root = _project(params_path)
        if root is None or not isinstance(inputs.get("params"), Params):
            return None
        with _stage(root, self.stage) as (_, stage):
            if not _described_by_params_file(stage, inputs["params"], params_path):
                return None  # overrides DVC does not know: run, record nothing
            if stage.changed():
                return f"driftfit-{self.stage}-run-{uuid.uuid4().hex}"  # never used before: the task runs
            return _entry_key(self.stage, stage)


def record_stage(name: str, params: Params, params_path: str | None) -> str | None:
    """Commit the stage to dvc.lock (as `dvc commit` does); the new entry's cache key, or None when DVC does
    not describe this run (no DVC project, or overrides)."""
    root = _project(params_path)
    if root is None:
        return None
    with _stage(root, name) as (_, stage):
        if not _described_by_params_file(stage, params, params_path):
            return None
        stage.save(run_cache=False)  # the run-cache would resolve paths from the cwd; dvc repro keeps its own
        stage.commit()
        stage.dump(update_pipeline=False)
        return _entry_key(name, stage)


def _record(name: str, params: Params, result: Any) -> None:
    """After the task ran: record the stage, and store the result under the new entry's key for the next run."""
    from prefect.runtime import flow_run

    key = record_stage(name, params, (flow_run.parameters or {}).get("params_path"))
    context = TaskRunContext.get()
    if key is not None and context is not None and context.result_store is not None:
        context.result_store.write(obj=result, key=key)


def stage_task(stage: str, **options: Any) -> Callable:
    """`@task` for a function that runs dvc.yaml's stage `stage`: skipped while DVC says the stage is up to
    date, recorded in dvc.lock after it ran. `options` go to `@task` (name, retries, ...)."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run_and_record(params: Params, *args: Any, **kwargs: Any) -> Any:
            result = fn(params, *args, **kwargs)
            _record(stage, params, result)
            return result

        return task(cache_policy=DvcStage(stage), **options)(run_and_record)

    return decorate
