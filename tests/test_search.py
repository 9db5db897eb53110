"""Hyperparameter search: real trials on the shrunk default data; pruning; best params reach training."""

from __future__ import annotations

from contextlib import chdir
import pytest

from driftfit.pipeline import runner
from driftfit.training import search
from driftfit.config import ConfigError, SearchConfig, load_params
from driftfit.io import read_json, write_json
from tests.conftest import write_params


@pytest.fixture
def searchable(prepared_params, make_params):
    """Prepared + augmented data and a decision record (head: the cheapest real training)."""
    from driftfit.modalities.text import augment

    runner("augment")(prepared_params)
    write_json(prepared_params.paths.decision, {"strategy": "ia3"})
    return prepared_params


def with_search(params, **cfg):
    return params.model_copy(update={"search": SearchConfig(enabled=True, **cfg)})


def test_random_search_runs_trials_and_writes_the_best(searchable):
    params = with_search(searchable, sampler="random", trials=3, max_steps=2, pruner="none",
                         space={"train.head_learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}})
    result = runner("tune")(params)
    trials = read_json(f"{params.paths.search}/trials.json")
    assert len(trials) == 3 and all(t["state"] == "complete" for t in trials)
    assert len({t["params"]["train.head_learning_rate"] for t in trials}) == 3
    best = max(trials, key=lambda t: t["value"])
    assert result["best_params"] == best["params"] and result["best_value"] == best["value"]
    tuned = search.best_params(params)
    assert tuned.train.head_learning_rate == best["params"]["train.head_learning_rate"]
    assert "| trial |" in (params.paths.search + "/search.md" and open(f"{params.paths.search}/search.md").read())


def test_grid_search_covers_the_grid(searchable):
    params = with_search(searchable, sampler="grid", trials=10, max_steps=1, pruner="none",
                         space={"train.lora_r": {"type": "categorical", "choices": [4, 8]},
                                "train.head_learning_rate": {"type": "float", "low": 0.01, "high": 0.02,
                                                             "step": 0.01}})
    runner("tune")(params)
    trials = read_json(f"{params.paths.search}/trials.json")
    seen = {(t["params"]["train.lora_r"], round(t["params"]["train.head_learning_rate"], 4)) for t in trials}
    assert seen == {(4, 0.01), (4, 0.02), (8, 0.01), (8, 0.02)}


def test_median_pruner_stops_a_hopeless_trial(searchable, monkeypatch):
    """Two trials complete, then one (learning rate 1e-9) whose logged loss is worse than theirs at every step:
    the median pruner stops it at its first report (step 10 of 20), and it is recorded as pruned, without a value.
    Its losses are forced (theirs + 1): which rate logs the lower loss after 10 real steps is a numeric accident."""
    from driftfit.modalities.text import recipe as train_module

    real_train_model = train_module.train_model
    seen, logged = [], {}  # per trial, the steps its progress hook saw; per step, the first two trials' losses

    def train_model(train_df, val_df, strategy, params, out_dir, *, progress=None, **kwargs):
        trial = len(seen)
        seen.append([])

        def watched(step, total, logs):
            seen[trial].append(step)
            if "loss" in logs:
                if trial < 2:
                    logged.setdefault(step, []).append(logs["loss"])
                else:
                    logs = {**logs, "loss": max(logged[step]) + 1.0}
            progress(step, total, logs)

        return real_train_model(train_df, val_df, strategy, params, out_dir, progress=watched, **kwargs)

    monkeypatch.setattr(train_module, "train_model", train_model)
    params = with_search(searchable, sampler="random", trials=3, max_steps=20, pruner="median",
                         space={"train.head_learning_rate": {"type": "float", "low": 1e-9, "high": 1.0, "log": True}})
    train, val, strategy, shift = search.load_inputs(params)
    study = search.make_study(params.search)
    for lr in (0.05, 0.05, 1e-9):
        study.enqueue_trial({"train.head_learning_rate": lr})
    results = []
    for _ in range(3):
        trial, values = search.ask(study, params.search)
        result = search.run_trial(trial, values, train, val, strategy, params, shift)
        search.tell(study, trial, result)
        results.append(result)
    assert [r["state"] for r in results] == ["complete", "complete", "pruned"]
    assert results[0]["value"] is not None and results[1]["value"] is not None and results[2]["value"] is None
    assert max(seen[2]) == 10 < max(seen[0])  # stopped at its first report; the complete ones trained on
    assert study.trials[2].intermediate_values == {10: -(max(logged[10]) + 1.0)}
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]


def test_disabled_search_records_it_and_changes_nothing(searchable):
    result = runner("tune")(searchable)
    assert result == {"enabled": False, "best_params": {}}
    assert search.best_params(searchable) == searchable


def test_space_keys_must_be_train_params(tmp_path):
    path = write_params(tmp_path, {"search.space": {"train.learnin_rate": {"type": "float", "low": 0, "high": 1}}})
    with pytest.raises(ConfigError, match="train.learnin_rate"):
        load_params(path)
    path = write_params(tmp_path, {"search.space": {"train.epochs": {"type": "int", "low": 3, "high": 1}}})
    with pytest.raises(ConfigError, match="low"):
        load_params(path)


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["thread", "dask"])
def test_flow_runs_trials_as_parallel_prefect_tasks(prefect_api, searchable, runner):
    """Threads in this process, or a local Dask cluster (tasks and their inputs are serialised)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from flows.tune import tune

    params = with_search(searchable, sampler="tpe", trials=4, parallel=2, max_steps=2, pruner="median",
                         task_runner=runner,
                         space={"train.head_learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}})
    state = tune(params, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:  # this run's artifact (the server outlives the test)
        table = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["search-trials"]),
                                           flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
            limit=10, offset=0, sort=ArtifactSort.CREATED_DESC)
    assert len(table) == 1 and table[0].type == "table"
    assert result["trials"] == 4 and result["best_params"]
    trials = read_json(f"{params.paths.search}/trials.json")
    assert sorted(t["number"] for t in trials) == [0, 1, 2, 3]


@pytest.mark.slow
def test_retrain_flow_tunes_then_trains_with_the_best(prefect_api, tmp_path):
    """search.enabled in the retrain flow: the tune subflow runs its trials, then train uses the best values."""
    from flows.retrain import retrain
    from tests.conftest import project_copy

    root = project_copy(tmp_path / "project")
    write_params(root, {"search.enabled": True, "search.trials": 2, "search.max_steps": 1, "search.pruner": "none",
                        "strategy.force": "ia3", "train.max_steps": 2, "promote.beat_baseline": False,
                        "search.space": {"train.head_learning_rate": {"type": "categorical",
                                                                       "choices": [0.005, 0.02]}}})
    with chdir(root):
        state = retrain(params_path=str(root / "params.yaml"), return_state=True)
    assert state.is_completed(), state.message
    best = read_json(root / "reports" / "search" / "best.json")
    assert best["enabled"] and best["trials"] == 2 and best["strategy"] == "ia3"
    assert best["best_params"]["train.head_learning_rate"] in (0.005, 0.02)
    assert (root / "models" / "registry" / "v1").is_dir()
    log = read_json(root / "models" / "candidate" / "train_log.json")
    assert log["learning_rates"]["head"] == best["best_params"]["train.head_learning_rate"]
