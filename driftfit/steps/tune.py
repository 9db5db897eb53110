"""tune: a hyperparameter search with Optuna over `search.space` before the final training, when
search.enabled (driftfit.training.search: trials one after another here; the Prefect flow runs them as
parallel tasks); otherwise it records that the search is off. paths.search holds the trials and the best
train.* values, which the train step applies."""

from __future__ import annotations

from driftfit.config import Params
from driftfit.training import search


def run(params: Params) -> dict:
    return search.optimise(params)
