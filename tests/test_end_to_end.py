"""The whole pipeline through both doors, on the (shrunk) embedded default data.

- the Prefect flow under a real Prefect API server (the session's prefect_api fixture), with artifacts;
- `dvc repro` in a temporary copy of the project; a second `dvc repro` does nothing;
- both doors give the same decision and the same metrics, for the first week and the next (whose reference is the
  champion's memory); a rollback between weeks survives the next `dvc repro`.
"""

from contextlib import chdir
import json
import logging
from pathlib import Path

import pytest

from tests.conftest import door_output, dvc, project_copy, write_params

pytestmark = pytest.mark.slow

# Three steps cannot beat the untrained baseline; the gate's baseline check has its own tests.
E2E = {"train.max_steps": 3, "promote.beat_baseline": False}


@pytest.fixture(scope="module")
def flow_run(prefect_api, tmp_path_factory):
    """One run of the retrain flow in a fresh project copy."""
    from flows.retrain import retrain

    root = project_copy(tmp_path_factory.mktemp("flow"))
    write_params(root, E2E)
    with chdir(root):  # a flow runs in its project: its params file must lie there
        state = retrain(params_path=str(root / "params.yaml"), return_state=True)
    return root, state


def test_flow_runs_and_publishes_artifacts(flow_run):
    from prefect import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterId, TaskRunFilter)
    from prefect.client.schemas.sorting import ArtifactSort, TaskRunSort

    root, state = flow_run
    assert state.is_completed(), state.message
    result = state.result()
    assert result["promotion"]["promoted"] and result["promotion"]["champion"] == "v1"
    with get_client(sync_client=True) as client:
        run_id = state.state_details.flow_run_id
        # Every field given: this server version rejects the nulls the client sends for omitted ones.
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
            task_run_filter=TaskRunFilter(), limit=100, offset=0, sort=ArtifactSort.CREATED_DESC)
        task_runs = {t.name.rsplit("-", 1)[0] for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])), limit=200, offset=0,
            sort=TaskRunSort.EXPECTED_START_TIME_ASC)}
    keys = {a.key for a in artifacts}
    assert {"validation", "shift-report", "decision", "metrics", "promotion"} <= keys
    decision = next(a for a in artifacts if a.key == "decision")
    assert result["decision"]["strategy"] in decision.data and "Why:" in decision.data
    assert {"prepare", "validate", "augment", "measure shift", "select strategy", "train", "evaluate",
            "promote"} <= task_runs
    assert (root / "models" / "registry" / "v1" / "MODEL_CARD.md").is_file()
    docs = root / "reports" / "validation" / "data_docs" / "index.html"
    assert docs.is_file()
    link = next(a for a in artifacts if a.key == "validation-data-docs")
    assert docs.resolve().as_uri() in link.data  # the artifact links the Data Docs this run built


def test_flow_fails_cleanly_on_bad_input(prefect_api, tmp_path):
    from flows.retrain import retrain

    root = project_copy(tmp_path)
    write_params(root, E2E)
    bad = root / "data" / "bad.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("sentence,label\nhello,a\n")
    class Keep(logging.Handler):  # the run's log records, as Prefect sends them to its API and console
        def emit(self, record):
            records.append(record)

    records, keep = [], Keep()
    loggers = [logging.getLogger(name) for name in ("prefect.task_runs", "prefect.flow_runs")]
    for logger in loggers:
        logger.addHandler(keep)
    try:
        with chdir(root):
            state = retrain(params_path=str(root / "params.yaml"), incoming_path=str(bad), return_state=True)
    finally:
        for logger in loggers:
            logger.removeHandler(keep)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"no text column 'text'"):
        state.result()
    assert not (root / "data" / "prepared").exists()
    assert not (root / "models" / "candidate").exists() and not (root / "models" / "registry").exists()
    logged = "\n".join(logging.Formatter().format(r) for r in records)
    assert any("no text column 'text'" in r.getMessage() for r in records), logged
    assert "Traceback" not in logged and len(logged.splitlines()) < 40, logged  # one line, not two tracebacks


def test_flow_refuses_a_data_path_outside_the_data_roots(prefect_api, tmp_path):
    from flows.retrain import retrain

    root = project_copy(tmp_path)
    write_params(root, E2E)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "batch.csv").symlink_to("/etc/passwd")
    for given in (root / "data" / "batch.csv", Path("/etc/passwd")):
        with chdir(root):
            state = retrain(params_path=str(root / "params.yaml"), incoming_path=str(given), return_state=True)
        assert state.is_failed()
        assert "incoming_path = " in state.message and "outside the data roots" in state.message, state.message
        assert "root:" not in state.message  # nothing of the file is echoed
    assert not (root / "data" / "prepared").exists() and not (root / "reports").exists()


def test_dvc_repro_matches_the_flow_and_second_repro_does_nothing(flow_run, tmp_path):
    flow_root, _ = flow_run
    root = project_copy(tmp_path)
    write_params(root, E2E)
    first = dvc(root, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = dvc(root, "repro")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Running stage" not in second.stdout, second.stdout
    for rel in ("reports/decision.json", "reports/metrics.json"):
        assert door_output(root, rel) == door_output(flow_root, rel), rel
    status = dvc(root, "status")
    assert "up to date" in status.stdout.lower(), status.stdout
    metrics = dvc(root, "metrics", "show", "--json")
    assert "macro_f1" in metrics.stdout


    # Week 2 through both doors: the next batch lands (the flow's incoming_path; params.yaml for dvc repro).
    # Its reference is now the champion's data memory, and both doors agree on the decision and metrics.
    from flows.retrain import retrain

    week2 = "data/default/reference.csv"  # utterances the first batch does not hold
    with chdir(flow_root):
        state = retrain(params_path=str(flow_root / "params.yaml"), incoming_path=week2, return_state=True)
    assert state.is_completed(), state.message
    write_params(root, {**E2E, "data.incoming.path": week2})
    third = dvc(root, "repro")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    for rel in ("reports/decision.json", "reports/metrics.json", "data/prepared/manifest.json"):
        assert door_output(root, rel) == door_output(flow_root, rel), rel
    manifest = json.loads((root / "data" / "prepared" / "manifest.json").read_text())
    assert manifest["reference"]["from"] == "memory" and manifest["reference"]["champion"] == "v1"
    for project in (root, flow_root):
        assert len(json.loads((project / "data" / "memory" / "memory.json").read_text())["batches"]) == 2
    assert "Running stage" not in dvc(root, "repro").stdout  # and again: nothing to do

    # A rollback between weeks: a later version is promoted by hand, then rolled back; the next `dvc repro`
    # re-runs promote (the registry changed), which must keep the rolled-back champion and add no version (it once
    # promoted the candidate again).
    import shutil
    import subprocess
    import sys

    from driftfit.state import registry

    reg = root / "models" / "registry"
    champion, versions = registry.champion_info(reg)["version"], registry.versions(reg)
    later = f"v{len(versions) + 1}"
    shutil.copytree(reg / champion, tmp_path / later)
    (tmp_path / later / "version.json").unlink()
    (tmp_path / later / "train_log.json").write_text('{"note": "a later model"}')
    registry.add_version(reg, later, tmp_path / later, {"version": later, "previous": champion}, "card")
    registry.set_champion(reg, later, action="promote", reason="a later run")
    out = subprocess.run([str(Path(sys.executable).parent / "driftfit"), "rollback"], cwd=root,
                         capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["champion"] == champion, out.stderr
    again = dvc(root, "repro")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "Running stage 'promote'" in again.stdout and "Running stage 'train'" not in again.stdout, again.stdout
    assert registry.champion_info(reg)["version"] == champion and registry.versions(reg) == [*versions, later]
    verdict = json.loads((root / "reports" / "promotion.json").read_text())
    assert not verdict["promoted"], verdict
    if registry.model_digest(root / "models" / "candidate") == registry.model_digest(reg / champion):
        assert f"the candidate is {champion}, which serves already" in verdict["reason"], verdict
    assert "up to date" in dvc(root, "status").stdout.lower()
