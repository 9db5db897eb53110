"""The `retrain` flow: the pipeline of dvc.yaml, as a Prefect flow over the same library calls.

Run it once:      python -m flows.retrain [--params params.yaml] [--incoming FILE] [--strategy NAME]
On a schedule:    prefect.yaml deploys it (weekly cron, and on a `driftfit.batch.landed` event).
Each task is cached by its dvc.yaml stage, as DVC sees it (tasks/stage.py): a re-run with unchanged
inputs skips the work, and a task that ran is recorded in dvc.lock, so `dvc repro` after a flow run
does nothing either.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from prefect import flow, get_run_logger

from driftfit.config import Strategy
from tasks import logs
from flows.tune import tune
from tasks.augment import augment
from tasks.evaluate import evaluate
from tasks.guard import flow_params
from tasks.measure_shift import measure_shift
from tasks.prepare import make_default_data, prepare
from tasks.promote import promote
from tasks.remember import remember
from tasks.select_strategy import select_strategy
from tasks.stage import hold_project
from tasks.train import train
from tasks.tune import record_search_off
from tasks.validate import validate

logs.install()  # our errors as one line in the run's logs, not under two tracebacks
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no weight-loading bars in the run's output


@flow(name="retrain", log_prints=False)  # True would log dill's disassembly from `datasets`
def retrain(params_path: str = "params.yaml", incoming_path: str | None = None, strategy: Strategy | None = None,
            overrides: dict[str, Any] | None = None) -> dict:
    """Validate a new batch, measure shift, choose a strategy, (tune,) train, evaluate, promote.

    Args:
        params_path: params.yaml of the project (relative to the working directory).
        incoming_path: the new labelled batch (CSV/TSV/JSONL/Parquet); empty: `data.incoming.path`.
        strategy: force a strategy; empty: the policy chooses and says why.
        overrides: other params as dotted keys, e.g. {"train.epochs": 1, "promote.max_forgetting": 2.0}.
    """
    overrides = dict(overrides or {})
    if incoming_path:
        overrides["data.incoming.path"] = incoming_path
    if strategy:
        overrides["strategy.force"] = strategy
    # a bad value fails here, before any work; so does a parameter that would widen what the run may touch
    params = flow_params(params_path, overrides, {"data.incoming.path": "incoming_path"} if incoming_path else None)
    with hold_project(params, params_path, "the retrain flow"):  # no `driftfit` step or `dvc repro` meanwhile
        return _retrain(params)


def _retrain(params) -> dict:
    logger = get_run_logger()
    if params.uses_default_data():
        make_default_data(params)
    prepare(params)
    validate(params)
    remember(params)
    augment(params)
    measure_shift(params)
    decision = select_strategy(params)
    logger.info("strategy %s: %s", decision["strategy"], decision["reason"])
    if params.search.enabled:
        tune(params)  # a subflow: hyperparameter trials as parallel tasks; train uses the best
    else:
        record_search_off(params)  # as the tune stage does: its record is one of train's inputs
    train(params)
    metrics = evaluate(params)
    verdict = promote(params)
    logger.info(verdict["reason"])
    return {"decision": decision, "metrics": metrics, "promotion": verdict}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the retrain flow once.")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--incoming", default=None, help="path of the new labelled batch")
    parser.add_argument("--strategy", default=None, help="force a strategy")
    args = parser.parse_args()
    state = retrain(params_path=args.params, incoming_path=args.incoming, strategy=args.strategy, return_state=True)
    if not state.is_completed():
        print(f"retrain: error: {state.message}", file=sys.stderr)
        sys.exit(2)
    result = state.result()
    print(f"strategy: {result['decision']['strategy']} | {result['promotion']['reason']}")


if __name__ == "__main__":
    main()
