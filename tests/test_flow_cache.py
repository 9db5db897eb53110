"""Task caching of the retrain flow by DVC itself (tasks/stage.py): DVC says whether a stage is up to date,
and a task that ran is recorded in dvc.lock. Under a real Prefect API: a re-run with unchanged inputs skips
every step; a changed param re-runs only the steps that use it; a missing output is rebuilt; `dvc status`
after a flow run says everything is up to date."""

from contextlib import chdir
import re

import pytest

from tests.conftest import dvc, project_copy, write_params

FAST = {"train.max_steps": 2, "promote.beat_baseline": False}


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


def test_the_key_is_dvcs_verdict_on_the_stage(tmp_path):
    from driftfit.config import load_params
    from tasks.stage import DvcStage, record_stage

    params_path = write_params(tmp_path)
    (tmp_path / "dvc.yaml").write_text(STAGES)
    assert DvcStage("decide").compute_key(None, {"params": load_params(params_path)},
                                          {"params_path": str(params_path)}) is None  # not a DVC repo yet
    assert dvc(tmp_path, "init", "--no-scm", "-q").returncode == 0
    flow_parameters = {"params_path": str(params_path)}
    policy = DvcStage("decide")

    def key(overrides=None):
        return policy.compute_key(None, {"params": load_params(params_path, overrides)}, flow_parameters)

    def ran():  # the task ran: record the stage as the task wrapper does
        return record_stage("decide", load_params(params_path), str(params_path))

    shift, decision, registry = (tmp_path / "reports" / "shift.json", tmp_path / "reports" / "decision.json",
                                 tmp_path / "models" / "registry")
    (tmp_path / "code.py").write_text("x = 1")
    shift.parent.mkdir()
    shift.write_text('{"mmd": 0.1}')
    decision.write_text('{"strategy": "head"}')
    registry.mkdir(parents=True)
    (registry / "champion.json").write_text('{"version": null}')

    first = key()
    assert "-run-" in first and key() != first  # never recorded: run, under a fresh key each time
    recorded = ran()
    assert key() == recorded and "-run-" not in recorded  # up to date: the result stored under the entry
    assert "decide:" in (tmp_path / "dvc.lock").read_text()
    assert dvc(tmp_path, "status").stdout.strip().endswith("up to date.")  # DVC itself agrees
    assert key({"train.epochs": 1}) == recorded  # a param of another stage
    assert key({"strategy.mmd_small": 0.5}) is None  # an override of this stage's param: DVC can't know it
    decision.write_text('{"strategy": "lora"}')  # an output changed by hand
    assert "-run-" in key()
    recorded = ran()
    decision.unlink()  # an output gone
    assert "-run-" in key()
    decision.write_text('{"strategy": "lora"}')
    recorded = ran()
    (tmp_path / "code.py").write_text("x = 2")  # the code changed
    assert "-run-" in key()
    assert ran() != recorded
    assert policy.compute_key(None, {"params": load_params(params_path)}, {}) is None  # not run by the flow


@pytest.mark.slow
def test_rerun_with_unchanged_inputs_is_cached(prefect_api, tmp_path):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    from flows.retrain import retrain

    root = project_copy(tmp_path / "project")
    params = str(write_params(root, FAST))
    # cached results in tmp_path, not in ~/.prefect
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path / "storage"}), chdir(root):
        first = retrain(params_path=params, return_state=True)
        assert first.is_completed(), first.message
        assert set(task_states(first.state_details.flow_run_id).values()) == {"Completed"}
        metrics = (root / "reports" / "metrics.json").read_bytes()
        status = dvc(root, "status")
        assert status.stdout.strip().endswith("up to date."), status.stdout  # the flow recorded every stage

        second = retrain(params_path=params, return_state=True)
        states = task_states(second.state_details.flow_run_id)
        assert set(states.values()) == {"Cached"} and len(states) == 11, states
        assert second.result()["promotion"] == first.result()["promotion"]
        assert (root / "reports" / "metrics.json").read_bytes() == metrics

        # A promote param changes: only promote runs. A deleted output: its step runs again.
        (root / "reports" / "evaluation" / "latency.json").unlink()
        third = retrain(params_path=params, overrides={"promote.max_forgetting": 1.0}, return_state=True)
        states = task_states(third.state_details.flow_run_id)
        ran = {name for name, state in states.items() if state != "Cached"}
        assert ran == {"evaluate", "promote"}, states
        assert (root / "reports" / "evaluation" / "latency.json").is_file()
    # The third run's override is not what params.yaml says, so its promote was not recorded: the other door
    # re-runs exactly that stage for params.yaml's values, and nothing else.
    repro = dvc(root, "repro")
    assert repro.returncode == 0, repro.stdout[-2000:] + repro.stderr[-2000:]
    assert re.findall(r"Running stage '(\w+)'", repro.stdout) == ["promote"], repro.stdout
