from prefect import task
from prefect.artifacts import create_markdown_artifact

from driftfit import strategy
from driftfit.config import Params
from driftfit.report import decision_md
from tasks.cache import StageCache, record_outputs


@task(name="select strategy", cache_policy=StageCache("select_strategy"))
def select_strategy(params: Params) -> dict:
    """Choose how to adapt the model, and record why."""
    decision = strategy.run(params)
    create_markdown_artifact(key="decision", markdown=decision_md(decision), description="Strategy decision")
    return decision


select_strategy.on_commit(record_outputs)  # after a real run: remember what it wrote
