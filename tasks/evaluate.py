from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from driftfit.config import Params
from driftfit.io import read_json
from driftfit.pipeline import runner
from driftfit.report import cost_md, metrics_rows, test_images_md
from tasks.stage import stage_task


@stage_task("evaluate", name="evaluate")
def evaluate(params: Params) -> dict:
    """Score candidate, champion and pretrained baseline on the new and reference test splits."""
    metrics = runner("evaluate")(params)
    create_table_artifact(key="metrics", table=metrics_rows(metrics),
                          description="Test metrics (macro-F1, accuracy, calibration error)")
    latency = read_json(f"{params.paths.evaluation}/latency.json")
    create_markdown_artifact(key="inference-cost", markdown=cost_md(metrics, latency), description="Inference cost")
    grid = Path(params.paths.evaluation) / "test_images.png"
    if grid.is_file():  # images: the test images with their true and predicted labels, and the confusion matrix
        shown = next(m for m in ("candidate", "champion", "baseline") if (grid.parent / f"{m}_test.json").is_file())
        confusion = read_json(grid.parent / f"{shown}_test.json")["confusion"]
        create_markdown_artifact(key="test-images", markdown=test_images_md(grid.read_bytes(), confusion,
                                                                           f"The {shown} on the new test split"),
                                 description="Test images: true and predicted labels; confusion matrix")
    return metrics

