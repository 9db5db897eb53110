from prefect.artifacts import create_markdown_artifact, create_table_artifact

from driftfit import evaluate as evaluate_step
from driftfit.config import Params
from driftfit.io import read_json
from driftfit.report import cost_md, metrics_rows
from tasks.stage import stage_task


@stage_task("evaluate", name="evaluate")
def evaluate(params: Params) -> dict:
    """Score candidate, champion and pretrained baseline on the new and reference test splits."""
    metrics = evaluate_step.run(params)
    create_table_artifact(key="metrics", table=metrics_rows(metrics),
                          description="Test metrics (macro-F1, accuracy, calibration error)")
    latency = read_json(f"{params.paths.evaluation}/latency.json")
    create_markdown_artifact(key="inference-cost", markdown=cost_md(metrics, latency), description="Inference cost")
    return metrics

