from prefect import task
from prefect.artifacts import create_markdown_artifact

from driftfit import validate as validate_step
from driftfit.config import Params
from driftfit.errors import ValidationFailed
from driftfit.io import read_json
from driftfit.report import validation_md


@task(name="validate")
def validate(params: Params) -> dict:
    """Run the Great Expectations suite; a failing suite fails the flow with the report attached."""
    try:
        summary = validate_step.run(params)
    except ValidationFailed:
        create_markdown_artifact(key="validation", markdown=validation_md(
            read_json(f"{params.paths.validation}/summary.json")), description="Data validation")
        raise
    create_markdown_artifact(key="validation", markdown=validation_md(summary), description="Data validation")
    return summary
