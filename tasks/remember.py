from driftfit.config import Params
from driftfit.pipeline import runner
from tasks.stage import stage_task


@stage_task("remember", name="remember")
def remember(params: Params) -> dict:
    """Add the validated batch to the data memory (a batch already there is not added twice)."""
    return runner("remember")(params)
