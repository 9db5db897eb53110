"""The `score` flow under a real Prefect API (prefect_test_harness): the champion scores a file inside data.roots,
with the same output `driftfit predict` writes and a `score-summary` artifact; a file outside the roots is
refused before anything is read. The `score` deployment in prefect.yaml names this flow and its parameters."""

from __future__ import annotations

from contextlib import chdir
from pathlib import Path

import pandas as pd
import pytest
import yaml

from driftfit.data.splits import read_split
from driftfit.serving import predict
from tests.conftest import ROOT
from tests.serving_registry import shared_text_project


def test_the_score_deployment_names_the_flow_and_its_parameters():
    import inspect

    from flows.score import score

    deployment = next(d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
                      if d["name"] == "score")
    path, name = deployment["entrypoint"].split(":")
    assert (ROOT / path).is_file() and name == score.name == "score"
    accepted = set(inspect.signature(score.fn).parameters)
    assert set(deployment["parameters"]) <= accepted
    for trigger in deployment["triggers"]:
        assert set(trigger["parameters"]) <= accepted


@pytest.fixture(scope="module")
def project(tmp_path_factory, default_data_dir):
    return shared_text_project(tmp_path_factory, default_data_dir, "serving-flow")


@pytest.mark.slow
def test_score_flow_writes_the_predictions_and_a_summary(prefect_api, project, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterId, TaskRunFilter)
    from prefect.client.schemas.sorting import ArtifactSort

    from flows.score import score

    root = Path(project.paths.registry).parents[1]
    traffic = root / "data" / "traffic"
    traffic.mkdir()
    test = read_split(project.paths.prepared, "test", required=True)
    test[["text"]].to_csv(traffic / "week.csv", index=False)
    with chdir(root):
        state = score(input_path="data/traffic/week.csv", params_path="params.yaml", return_state=True)
        outside = score(input_path=str(tmp_path / "elsewhere.csv"), params_path="params.yaml", return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["rows"] == len(test) and result["version"] == "v1"
    scored = pd.read_csv(traffic / "week.predictions.csv")
    assert scored["text"].tolist() == test["text"].tolist() and set(scored["model_version"]) == {"v1"}
    with get_client(sync_client=True) as client:
        run_id = state.state_details.flow_run_id
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
            task_run_filter=TaskRunFilter(), limit=10, offset=0, sort=ArtifactSort.CREATED_DESC)
    summary = next(a for a in artifacts if a.key == "score-summary")
    assert summary.data == predict.summary_md(result) and f"Scored {len(test)} rows with v1" in summary.data
    assert outside.is_failed() and "outside the data roots" in outside.message
    assert not (tmp_path / "elsewhere.predictions.csv").exists()
