"""Task caching of the retrain flow: the cache key follows the dvc.yaml stage, and the outputs must
still be as the last run left them. Under a real Prefect API: a re-run with unchanged inputs skips
every step; a changed param re-runs only the steps that use it; a missing output is rebuilt."""

from types import SimpleNamespace

import pytest

from tests.conftest import project_copy, write_params

FAST = {"train.max_steps": 2, "evaluate.latency_examples": 2, "promote.beat_baseline": False}


def task_states(flow_run_id) -> dict[str, str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        # Every field given: this server version rejects the nulls the client sends for omitted ones.
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     limit=200, offset=0, sort=TaskRunSort.EXPECTED_START_TIME_ASC)
    return {t.name.rsplit("-", 1)[0]: t.state.name for t in runs}


STAGES = """
stages:
  decide:
    cmd: driftfit select-strategy
    deps: [code.py, "${paths.shift}"]
    params: [strategy]
    outs:
      - ${paths.decision}:
          cache: false
      - ${paths.registry}:
          persist: true
"""


def test_cache_key_follows_the_stage_and_its_outputs(tmp_path):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    from driftfit.config import load_params
    from tasks.cache import StageCache, record_outputs, stage_files

    params_path = write_params(tmp_path)
    (tmp_path / "dvc.yaml").write_text(STAGES)
    flow_parameters = {"params_path": str(params_path)}
    policy = StageCache("decide")

    def key(overrides=None):
        return policy.compute_key(None, {"params": load_params(params_path, overrides)}, flow_parameters)

    shift, decision, registry = (tmp_path / "reports" / "shift.json", tmp_path / "reports" / "decision.json",
                                 tmp_path / "models" / "registry")
    files = stage_files(tmp_path / "dvc.yaml", "decide", load_params(params_path))
    assert files.deps == [tmp_path / "code.py", shift] and files.params.keys() == {"strategy"}
    assert files.outs == [decision] and files.persist == [registry]
    (tmp_path / "code.py").write_text("x = 1")
    shift.parent.mkdir()
    shift.write_text('{"mmd": 0.1}')
    decision.write_text('{"strategy": "head"}')
    registry.mkdir(parents=True)

    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path / "storage"}):
        first = key()
        assert key() != first  # the outputs were never recorded: run again, under a fresh key
        ran = key()
        record_outputs(SimpleNamespace(key=ran))  # as Prefect does when the task's result is committed
        assert key() == ran  # unchanged deps, params and outputs: the cached result
        assert key({"train.epochs": 1}) == ran  # a param of another stage
        (registry / "champion.json").write_text("{}")  # persistent state changes (a rollback): still cached
        assert key() == ran
        assert key({"strategy.mmd_small": 0.5}) != ran  # a param of this stage changed
        ran = key()
        record_outputs(SimpleNamespace(key=ran))
        decision.write_text('{"strategy": "lora"}')  # the output was changed by hand
        assert key() != ran
        ran = key()
        record_outputs(SimpleNamespace(key=ran))
        decision.unlink()  # the output is gone
        assert key() != ran
        decision.write_text('{"strategy": "lora"}')
        ran = key()
        record_outputs(SimpleNamespace(key=ran))
        (tmp_path / "code.py").write_text("x = 2")  # the code changed
        assert key().split("-")[2] != ran.split("-")[2]
    assert policy.compute_key(None, {"params": load_params(params_path)}, {}) is None  # not run by the flow
    assert StageCache("nope").compute_key(None, {"params": load_params(params_path)}, flow_parameters) is None


@pytest.mark.slow
def test_rerun_with_unchanged_inputs_is_cached(tmp_path):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows.retrain import retrain

    root = project_copy(tmp_path / "project")
    params = str(write_params(root, FAST))
    # cached results and stamps in tmp_path, not in ~/.prefect
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path / "storage"}), \
            prefect_test_harness(server_startup_timeout=120):
        first = retrain(params_path=params, return_state=True)
        assert first.is_completed(), first.message
        assert set(task_states(first.state_details.flow_run_id).values()) == {"Completed"}
        metrics = (root / "reports" / "metrics.json").read_bytes()

        second = retrain(params_path=params, return_state=True)
        states = task_states(second.state_details.flow_run_id)
        assert set(states.values()) == {"Cached"} and len(states) == 9, states
        assert second.result()["promotion"] == first.result()["promotion"]
        assert (root / "reports" / "metrics.json").read_bytes() == metrics

        # A promote param changes: only promote runs. A deleted output: its step runs again.
        (root / "reports" / "evaluation" / "latency.json").unlink()
        third = retrain(params_path=params, overrides={"promote.max_forgetting": 1.0}, return_state=True)
        states = task_states(third.state_details.flow_run_id)
        ran = {name for name, state in states.items() if state != "Cached"}
        assert ran == {"evaluate", "promote"}, states
        assert (root / "reports" / "evaluation" / "latency.json").is_file()
