from driftfit.config import Params
from driftfit.pipeline import runner
from tasks.stage import stage_task


@stage_task("tune", name="tune")
def record_search_off(params: Params) -> dict:
    """search.enabled is false: record that (the tune stage's outputs, which training reads), train nothing."""
    return runner("tune")(params)
