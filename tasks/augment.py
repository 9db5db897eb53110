from prefect import task

from driftfit import augment as augment_step
from driftfit.config import Params
from tasks.cache import StageCache, record_outputs


@task(name="augment", cache_policy=StageCache("augment"))
def augment(params: Params) -> dict:
    """Augment the training split (seeded)."""
    return augment_step.run(params)


augment.on_commit(record_outputs)  # after a real run: remember what it wrote
