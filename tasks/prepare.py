from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from driftfit import data
from driftfit.config import Params
from driftfit.errors import DriftfitError, ValidationFailed
from driftfit.io import read_json
from driftfit.report import validation_md
from tasks.cache import StageCache, record_outputs


def transient(task, task_run, state) -> bool:
    """Retry only what may pass on a second try (I/O hiccups), never our own bad-input errors."""
    try:
        state.result()
    except DriftfitError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return False


@task(name="default data", retries=1, retry_delay_seconds=2, retry_condition_fn=transient,
      cache_policy=StageCache("default_data"))
def make_default_data(params: Params) -> dict:
    """Write the embedded default data (chatterbot-corpus English)."""
    return data.run_default_data(params)


make_default_data.on_commit(record_outputs)  # after a real run: remember what it wrote


@task(name="prepare", retries=2, retry_delay_seconds=5, retry_condition_fn=transient,  # network storage can blink
      cache_policy=StageCache("prepare"))
def prepare(params: Params) -> dict:
    """Load reference + incoming data, check them against the contract, split them, record content hashes."""
    try:
        return data.run(params)
    except ValidationFailed as err:  # the contract failed before any split was written: show the report
        summary = getattr(err, "summary_path", None)  # a new folder under paths.rejected
        if summary and Path(summary).is_file():
            create_markdown_artifact(key="validation", markdown=validation_md(read_json(summary)),
                                     description=f"Data validation (failed in prepare; report in {summary})")
        raise


prepare.on_commit(record_outputs)  # after a real run: remember what it wrote
