from prefect import task

from driftfit import augment as augment_step
from driftfit.config import Params


@task(name="augment")
def augment(params: Params) -> dict:
    """Augment the training split (seeded)."""
    return augment_step.run(params)
