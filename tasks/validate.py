from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from driftfit.config import Params
from driftfit.errors import ValidationFailed
from driftfit.io import read_json
from driftfit.pipeline import runner
from driftfit.report import validation_md, validation_rows
from tasks.stage import stage_task


def _publish(summary: dict) -> None:
    create_markdown_artifact(key="validation", markdown=validation_md(summary), description="Data validation")
    create_table_artifact(key="validation-checks", table=validation_rows(summary),
                          description="Great Expectations checks, per split")
    if summary.get("data_docs"):  # a file on the machine that ran the flow, where the UI usually is too
        create_link_artifact(key="validation-data-docs", link=Path(summary["data_docs"]).resolve().as_uri(),
                             link_text="Great Expectations Data Docs", description="The full validation report")


@stage_task("validate", name="validate")
def validate(params: Params) -> dict:
    """Run the Great Expectations suite; a failing suite fails the flow with the report attached."""
    try:
        summary = runner("validate")(params)
    except ValidationFailed as err:  # the report went to paths.rejected; paths.validation is as it was
        if getattr(err, "summary_path", None):
            _publish(read_json(err.summary_path))
        raise
    for warning in summary["warnings"]:  # in the flow run's log too, not only in the artifact
        get_run_logger().warning("data validation warning: %s", warning)
    _publish(summary)
    return summary

