from prefect.artifacts import create_markdown_artifact

from driftfit.config import Params
from driftfit.pipeline import runner
from driftfit.report import shift_md
from tasks.stage import stage_task


@stage_task("measure_shift", name="measure shift")
def measure_shift(params: Params) -> dict:
    """Tokenizer fit, embedding shift, label shift, frozen-feature probe."""
    report = runner("measure-shift")(params)
    create_markdown_artifact(key="shift-report", markdown=shift_md(report), description="Domain shift")
    return report

