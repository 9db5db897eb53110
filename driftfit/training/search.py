"""Hyperparameter search with Optuna over the `train.*` params declared in `search.space`.

Each trial trains the chosen strategy with the trial's params (real training, capped at
`search.max_steps`) and is scored by validation accuracy. Samplers: grid, random, TPE (Bayesian).
Bad trials are pruned: each time the Trainer logs (every `logging_steps`), the trial reports its training
loss, and Optuna's median pruner stops a trial whose loss is worse than the median of earlier trials at
the same step.

The search is driven with Optuna's ask/tell interface so a caller can run trials anywhere: `run`
runs them one after another (the DVC stage); the Prefect flow asks for `search.parallel` trials at
once and runs each as a Prefect task on a task runner (flows/tune.py: threads, or Dask workers; within
one process the training itself is serialised, see _ONE_TRAINER). Each trial trains through the modality's
recipe (the config lets only text search). The
values are drawn in the driving process; a trial elsewhere gets them plus a picklable handle and
reports its intermediate losses through the study's journal file (so workers must share that
filesystem: one machine, or a shared volume).

Outputs (paths.search): trials.json (one row per trial: number, params, state, value, seconds),
best.json (the best params as dotted train.* keys, which the final training applies), search.md.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from driftfit import modalities
from driftfit.config import Params, SearchConfig
from driftfit.errors import DataError
from driftfit.io import atomic_dir, read_json, write_json
from driftfit.strategies import spec
from driftfit.training.replay import training_inputs

log = logging.getLogger(__name__)



# ---- the study ------------------------------------------------------------------------------

def _grid(cfg: SearchConfig) -> dict[str, list]:
    import numpy as np

    grid: dict[str, list] = {}
    for key, dim in cfg.space.items():
        if dim.type == "categorical":
            grid[key] = list(dim.choices)
        elif dim.step is None:
            raise DataError(f"search.space.{key}: the grid sampler needs 'step' (or 'choices') for a {dim.type}")
        else:
            values = np.arange(dim.low, dim.high + dim.step / 2, dim.step)
            grid[key] = [int(v) for v in values] if dim.type == "int" else [float(v) for v in values]
    return grid


def make_study(cfg: SearchConfig, journal: Path | None = None):
    """An Optuna study; with `journal`, stored in that file so trials can run in other processes."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if cfg.sampler in ("grid", "random"):
        # Grid: every grid point is enqueued below (GridSampler stops the study from inside `tell`,
        # which the ask/tell loop cannot use); enqueued trials take their fixed values.
        sampler = optuna.samplers.RandomSampler(seed=cfg.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    storage = _journal(journal) if journal is not None else None
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=make_pruner(cfg), storage=storage,
                                study_name="driftfit")
    if cfg.sampler == "grid":
        for point in _grid_points(cfg):
            study.enqueue_trial(dict(zip(cfg.space, point)))
    return study


def make_pruner(cfg: SearchConfig):
    import optuna

    return (optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
            if cfg.pruner == "median" else optuna.pruners.NopPruner())


def _journal(path: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def distributions(cfg: SearchConfig) -> dict:
    """The search space as Optuna distributions (dotted train.* keys)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for key, dim in cfg.space.items():
        if dim.type == "categorical":
            out[key] = CategoricalDistribution(dim.choices)
        elif dim.type == "int":
            out[key] = IntDistribution(int(dim.low), int(dim.high), log=dim.log,
                                       step=int(dim.step) if dim.step and not dim.log else 1)
        else:
            out[key] = FloatDistribution(dim.low, dim.high, log=dim.log, step=None if dim.log else dim.step)
    return out


def ask(study, cfg: SearchConfig) -> tuple[Any, dict]:
    """A new trial with every value drawn here (in the driving process): (trial, {dotted key: value})."""
    trial = study.ask(distributions(cfg))
    return trial, dict(trial.params)


def handle(study, trial, journal: Path) -> dict:
    """What another process needs to report to (and be pruned through) this trial: plain, picklable data."""
    return {"journal": str(journal), "study": study.study_name, "trial_id": trial._trial_id, "number": trial.number}


def _trial_from(h: dict, cfg: SearchConfig):
    import optuna

    study = optuna.load_study(study_name=h["study"], storage=_journal(Path(h["journal"])), pruner=make_pruner(cfg))
    return optuna.trial.Trial(study, h["trial_id"])


def with_values(params: Params, values: dict[str, Any]) -> Params:
    """params with dotted train.* values applied (validated like params.yaml)."""
    from driftfit.config import TrainConfig, set_dotted

    tree = {"train": params.train.model_dump()}
    for key, value in values.items():
        set_dotted(tree, key, value)
    return params.model_copy(update={"train": TrainConfig.model_validate(tree["train"])})


# ---- one trial ------------------------------------------------------------------------------

class Pruned(Exception):
    """Raised inside training when the pruner stops a trial."""


def run_trial(trial, values: dict[str, Any], train_df: pd.DataFrame, val_df: pd.DataFrame, strategy: str,
              params: Params, shift: dict | None = None) -> dict:
    """Train with the trial's values, through the modality's recipe; returns {number, params, value, state,
    seconds}. A pruned trial ends early and is reported, not raised. `trial` is an Optuna trial, or a `handle`
    (from another process). `shift`: the shift report, which a recipe may read (scratch's tokenizer)."""
    modality = modalities.get(params.task.modality)
    cfg = params.search
    if isinstance(trial, dict):
        trial = _trial_from(trial, cfg)
    trial_params = with_values(params, values)
    if cfg.max_steps > 0:
        trial_params = with_values(trial_params, {"train.max_steps": cfg.max_steps})

    def report(step: int, total: int, logs: dict) -> None:
        if "loss" in logs:
            trial.report(-float(logs["loss"]), step)  # higher is better, like the objective
            if trial.should_prune():
                raise Pruned(f"trial {trial.number} pruned at step {step}")

    start = time.perf_counter()
    state, value = "complete", None
    with tempfile.TemporaryDirectory(prefix=f"driftfit-trial-{trial.number}-") as tmp, _ONE_TRAINER:
        try:
            log_ = modality.train(trial_params, train_df, val_df, strategy, Path(tmp), progress=report, shift=shift)
            value = log_.get("val_accuracy")
        except Pruned:
            state = "pruned"
    return {"number": trial.number, "params": values, "state": state, "value": value,
            "seconds": round(time.perf_counter() - start, 2)}


def tell(study, trial, result: dict) -> None:
    import optuna

    if result["state"] == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif result["value"] is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, result["value"])


# ---- inputs and outputs ---------------------------------------------------------------------

def load_inputs(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, str, dict | None]:
    """(training rows, validation split, the decided strategy, the shift report if there is one)."""
    decision_path = Path(params.paths.decision)
    if not decision_path.is_file():
        raise DataError(f"decision record '{decision_path}' not found (run select-strategy first)")
    strategy = read_json(decision_path)["strategy"]
    shift = Path(params.paths.shift)
    train, val = training_inputs(params, modalities.get(params.task.modality), strategy)
    if len(val) == 0:
        raise DataError(f"'{params.paths.prepared}/val.parquet' is empty: trials are scored on it")
    return train, val, strategy, read_json(shift) if shift.is_file() else None


def summary(results: list[dict], strategy: str, cfg: SearchConfig, seconds: float) -> dict:
    done = [r for r in results if r["state"] == "complete" and r["value"] is not None]
    best = max(done, key=lambda r: r["value"]) if done else None
    return {"enabled": True, "strategy": strategy, "sampler": cfg.sampler, "pruner": cfg.pruner,
            "trials": len(results), "pruned": sum(r["state"] == "pruned" for r in results),
            "best_value": best["value"] if best else None, "best_trial": best["number"] if best else None,
            "best_params": best["params"] if best else {}, "seconds": round(seconds, 2)}


def markdown(result: dict, trials: list[dict]) -> str:
    keys = sorted({k for t in trials for k in t["params"]})
    lines = [f"# Hyperparameter search ({result['sampler']}, {result['trials']} trials, "
             f"{result['pruned']} pruned, {result['seconds']:.0f} s)", "",
             f"Strategy `{result['strategy']}`; best validation accuracy {result['best_value']} "
             f"(trial {result['best_trial']}).", "",
             "| trial | " + " | ".join(keys) + " | state | val accuracy | seconds |",
             "|---" * (len(keys) + 4) + "|"]
    for t in sorted(trials, key=lambda t: t["number"]):
        vals = " | ".join(f"{t['params'].get(k):.4g}" if isinstance(t["params"].get(k), float)
                          else str(t["params"].get(k)) for k in keys)
        value = "" if t["value"] is None else f"{t['value']:.4f}"
        lines.append(f"| {t['number']} | {vals} | {t['state']} | {value} | {t['seconds']} |")
    return "\n".join(lines) + "\n"


def write_outputs(params: Params, result: dict, trials: list[dict]) -> None:
    with atomic_dir(params.paths.search) as tmp:
        write_json(tmp / "best.json", result)
        write_json(tmp / "trials.json", trials)
        (tmp / "search.md").write_text(markdown(result, trials), encoding="utf-8")


def best_params(params: Params) -> Params:
    """params with the search's best train.* values applied, when the search is on and has a result."""
    path = Path(params.paths.search) / "best.json"
    if not params.search.enabled or not path.is_file():
        return params
    return with_values(params, read_json(path).get("best_params") or {})


# ---- the loop: ask a batch, run it (anywhere), tell the results --------------------------------

def optimise(params: Params, run_batch=None) -> dict:
    """Search and write paths.search. `run_batch(trials, train, val, strategy, params, shift) -> results` runs a
    batch of asked trials; by default one after another here, the flow runs them as parallel tasks.
    Disabled (search.enabled false) or for 'skip', it records that and trains nothing."""
    cfg = params.search
    empty = {"sampler": cfg.sampler, "pruner": cfg.pruner, "trials": 0, "pruned": 0, "best_value": None,
             "best_trial": None, "seconds": 0, "best_params": {}}
    if not cfg.enabled:
        write_outputs(params, {"enabled": False, "strategy": None, **empty}, [])
        return {"enabled": False, "best_params": {}}
    train, val, strategy, shift = load_inputs(params)
    if not spec(strategy).trains:
        result = {"enabled": True, "strategy": strategy, **empty}
        write_outputs(params, result, [])
        return result
    _warm_imports()
    run_batch = run_batch or (lambda batch, *args: [run_trial(t, v, *args) for t, v, _ in batch])
    budget = min(cfg.trials, len(_grid_points(cfg))) if cfg.sampler == "grid" else cfg.trials
    results, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="driftfit-study-") as work:
        journal = Path(work) / "study.journal"  # trials in other processes report through this file
        study = make_study(cfg, journal)
        while len(results) < budget:
            if cfg.timeout_s is not None and time.perf_counter() - start > cfg.timeout_s:
                log.info("search timeout (%s s) reached after %d trials", cfg.timeout_s, len(results))
                break
            batch = []
            for _ in range(min(cfg.parallel, budget - len(results))):
                trial, values = ask(study, cfg)
                batch.append((trial, values, handle(study, trial, journal)))
            for (trial, _, _), result in zip(batch, run_batch(batch, train, val, strategy, params, shift)):
                tell(study, trial, result)
                results.append(result)
                log.info("trial %d: %s %s", result["number"], result["state"], result["value"])
    out = summary(results, strategy, cfg, time.perf_counter() - start)
    write_outputs(params, out, results)
    return out


# Trainer keeps process-global state (accelerate's AcceleratorState): two Trainers in threads of one
# process reset it under each other. So within a process trials train one at a time; trials run in
# parallel in separate processes (Dask process workers, several Prefect workers, several machines).
_ONE_TRAINER = threading.Lock()


def _warm_imports() -> None:
    """Resolve transformers' lazy imports once, here: two trial threads resolving them at the same
    time can fail ("cannot import name 'set_seed'"), as the lazy module is not thread-safe."""
    import peft  # noqa: F401
    from transformers import (DataCollatorWithPadding, Trainer, TrainerCallback,  # noqa: F401
                              TrainingArguments, set_seed)



def _grid_points(cfg: SearchConfig) -> list:
    import itertools

    return list(itertools.product(*_grid(cfg).values()))
