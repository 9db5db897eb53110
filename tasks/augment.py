
from driftfit.config import Params
from driftfit.pipeline import runner
from tasks.stage import stage_task


@stage_task("augment", name="augment")
def augment(params: Params) -> dict:
    """Augment the training split (seeded)."""
    return runner("augment")(params)

