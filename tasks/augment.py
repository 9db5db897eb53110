
from driftfit import augment as augment_step
from driftfit.config import Params
from tasks.stage import stage_task


@stage_task("augment", name="augment")
def augment(params: Params) -> dict:
    """Augment the training split (seeded)."""
    return augment_step.run(params)

