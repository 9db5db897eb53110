from prefect import task
from prefect.artifacts import create_table_artifact

from driftfit import evaluate as evaluate_step
from driftfit.config import Params
from driftfit.report import metrics_rows


@task(name="evaluate")
def evaluate(params: Params) -> dict:
    """Score candidate and champion on the new and reference test splits."""
    metrics = evaluate_step.run(params)
    create_table_artifact(key="metrics", table=metrics_rows(metrics), description="Test metrics")
    return metrics
