from prefect import task
from prefect.artifacts import create_markdown_artifact

from driftfit import shift
from driftfit.config import Params
from driftfit.report import shift_md
from tasks.cache import StageCache, record_outputs


@task(name="measure shift", cache_policy=StageCache("measure_shift"))
def measure_shift(params: Params) -> dict:
    """Tokenizer fit, embedding shift, label shift, frozen-feature probe."""
    report = shift.run(params)
    create_markdown_artifact(key="shift-report", markdown=shift_md(report), description="Domain shift")
    return report


measure_shift.on_commit(record_outputs)  # after a real run: remember what it wrote
