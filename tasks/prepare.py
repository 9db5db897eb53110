from pathlib import Path

from prefect.artifacts import create_markdown_artifact

from driftfit.config import Params
from driftfit.errors import DriftfitError, ValidationFailed
from driftfit.io import read_json
from driftfit.pipeline import runner
from driftfit.report import validation_md
from tasks.stage import stage_task


def transient(task, task_run, state) -> bool:
    """Retry only what may pass on a second try (I/O hiccups), never our own bad-input errors."""
    try:
        state.result()
    except DriftfitError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return False


@stage_task("default_data", name="default data", retries=1, retry_delay_seconds=2, retry_condition_fn=transient)
def make_default_data(params: Params) -> dict:
    """Write the embedded default data (text: chatterbot-corpus English; image: animal silhouettes)."""
    return runner("default-data")(params)



@stage_task("prepare", name="prepare", retries=2, retry_delay_seconds=5,  # network storage can blink
            retry_condition_fn=transient)
def prepare(params: Params) -> dict:
    """Load reference + incoming data, check them against the contract, split them, record content hashes."""
    try:
        return runner("prepare")(params)
    except ValidationFailed as err:  # the contract failed before any split was written: show the report
        summary = getattr(err, "summary_path", None)  # a new folder under paths.rejected
        if summary and Path(summary).is_file():
            create_markdown_artifact(key="validation", markdown=validation_md(read_json(summary)),
                                     description=f"Data validation (failed in prepare; report in {summary})")
        raise

