"""The `tune` flow: hyperparameter search with each trial a Prefect task, `search.parallel` at a time.

Trials run on the task runner `search.task_runner` names: threads in this process, or Dask workers
(a local cluster, or the scheduler at `search.dask_address`). The retrain flow calls it as a subflow
between select_strategy and train when `search.enabled`; it also runs alone on a prepared project:
python -m flows.tune [--params params.yaml]
"""

from __future__ import annotations

import argparse

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from driftfit.training import search
from driftfit.config import Params, load_params
from driftfit.io import read_json


@task(name="trial", task_run_name="trial {number}", cache_policy=NO_CACHE)
def trial_task(number: int, handle: dict, values: dict, train, val, strategy: str, params: Params,
               shift: dict | None = None) -> dict:
    """One real training run with the trial's values (pruned trials end early, not as failures).

    Everything it receives is plain data (the trial is a handle to the study's journal), so it can
    run in another process or on a Dask worker.
    """
    return search.run_trial(handle, values, train, val, strategy, params, shift)


def _run_batch(batch, train, val, strategy, params, shift):
    futures = [trial_task.submit(h["number"], h, values, train, val, strategy, params, shift)
               for _, values, h in batch]
    return [f.result() for f in futures]


@flow(name="tune")
def _tune(params: Params) -> dict:
    result = search.optimise(params, run_batch=_run_batch)
    if result.get("enabled") and result.get("trials"):
        with open(f"{params.paths.search}/search.md", encoding="utf-8") as fh:
            create_markdown_artifact(key="search", markdown=fh.read(), description="Hyperparameter search summary")
        trials = read_json(f"{params.paths.search}/trials.json")
        create_table_artifact(key="search-trials", description="One row per trial: values, state, validation accuracy",
                              table=[{"trial": t["number"], **t["params"], "state": t["state"],
                                      "val_accuracy": t["value"], "seconds": t["seconds"]} for t in trials])
    return result


def task_runner(params: Params):
    cfg = params.search
    if cfg.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        # A local cluster: in-process workers (threads), but every task and input still goes through
        # Dask's serialisation, exactly as it would to a remote worker.
        return DaskTaskRunner(cluster_kwargs={"n_workers": 1, "processes": False,
                                              "threads_per_worker": cfg.parallel, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=cfg.parallel)


def tune(params: Params, **kwargs):
    """Ask Optuna for a batch of trials, run them as parallel tasks, tell the results; repeat."""
    return _tune.with_options(task_runner=task_runner(params))(params, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the hyperparameter search flow once.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    print(tune(load_params(args.params, {"search.enabled": True})))


if __name__ == "__main__":
    main()
