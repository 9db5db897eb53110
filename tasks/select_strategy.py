from prefect.artifacts import create_markdown_artifact

from driftfit.config import Params
from driftfit.pipeline import runner
from driftfit.report import decision_md
from tasks.stage import stage_task


@stage_task("select_strategy", name="select strategy")
def select_strategy(params: Params) -> dict:
    """Choose how to adapt the model, and record why."""
    decision = runner("select-strategy")(params)
    create_markdown_artifact(key="decision", markdown=decision_md(decision), description="Strategy decision")
    return decision

