
from driftfit.config import Params
from driftfit.modalities import step
from tasks.stage import stage_task


@stage_task("augment", name="augment")
def augment(params: Params) -> dict:
    """Augment the training split (seeded)."""
    return step("augment", params)(params)

