"""The `tune` flow: hyperparameter search with each trial a Prefect task, `search.parallel` at a time.

The retrain flow calls it as a subflow between select_strategy and train when `search.enabled`; it can
also run alone on a prepared project: python -m flows.tune [--params params.yaml]
"""

from __future__ import annotations

import argparse

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from driftfit import search
from driftfit.config import Params, load_params


@task(name="trial", task_run_name="trial {number}", cache_policy=NO_CACHE)
def trial_task(number: int, trial, train, val, strategy: str, params: Params) -> dict:
    """One real training run with the trial's params (pruned trials end early, not as failures)."""
    return search.run_trial(trial, train, val, strategy, params)


def _run_batch(trials, train, val, strategy, params):
    futures = [trial_task.submit(t.number, t, train, val, strategy, params) for t in trials]
    return [f.result() for f in futures]


@flow(name="tune", task_runner=ThreadPoolTaskRunner(max_workers=8))
def tune(params: Params) -> dict:
    """Ask Optuna for a batch of trials, run them as parallel tasks, tell the results; repeat."""
    result = search.optimise(params, run_batch=_run_batch)
    if result.get("enabled") and result.get("trials"):
        md = (params.paths.search + "/search.md")
        with open(md, encoding="utf-8") as fh:
            create_markdown_artifact(key="search", markdown=fh.read(), description="Hyperparameter search trials")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the hyperparameter search flow once.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    print(tune(load_params(args.params, {"search.enabled": True})))


if __name__ == "__main__":
    main()
