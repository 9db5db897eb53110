from driftfit import search
from driftfit.config import Params
from tasks.stage import stage_task


@stage_task("tune", name="tune")
def record_search_off(params: Params) -> dict:
    """search.enabled is false: record that (the tune stage's outputs, which training reads), train nothing."""
    return search.run(params)
