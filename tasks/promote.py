from pathlib import Path

from prefect.artifacts import create_markdown_artifact

from driftfit.config import Params
from driftfit.pipeline import runner
from driftfit.report import promotion_md
from tasks.stage import stage_task


# No retries: a retry after the switch would judge the same metrics again and promote a second copy.
@stage_task("promote", name="promote")
def promote(params: Params) -> dict:
    """Make the candidate champion if it passes the gate; publish the verdict and the model card."""
    verdict = runner("promote")(params)
    create_markdown_artifact(key="promotion", markdown=promotion_md(verdict), description="Promotion verdict")
    if verdict.get("model_card"):
        create_markdown_artifact(key="model-card", markdown=Path(verdict["model_card"]).read_text(encoding="utf-8"),
                                 description=f"Model card of {verdict['champion']}")
    return verdict

