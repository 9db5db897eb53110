from prefect import task
from prefect.artifacts import create_markdown_artifact

from driftfit import promote as promote_step
from driftfit.config import Params
from driftfit.report import promotion_md


@task(name="promote")
def promote(params: Params) -> dict:
    """Make the candidate champion if it passes the gate."""
    verdict = promote_step.run(params)
    create_markdown_artifact(key="promotion", markdown=promotion_md(verdict), description="Promotion verdict")
    return verdict
