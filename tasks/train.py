import time

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from driftfit.training import search
from driftfit.config import Params
from driftfit.pipeline import runner
from tasks.stage import stage_task

UPDATE_EVERY_S = 1.0  # each update is an API call: at most one a second, plus the last step


@stage_task("train", name="train")
def train(params: Params) -> dict:
    """Train the candidate with the chosen strategy (and the search's best values, when it ran);
    a progress artifact follows the steps."""
    artifact = create_progress_artifact(progress=0.0, key="training-progress", description="Training steps")
    last = 0.0

    def progress(step: int, total_steps: int, logs: dict) -> None:
        nonlocal last
        now = time.monotonic()
        if total_steps and (step >= total_steps or now - last >= UPDATE_EVERY_S):
            last = now
            loss = f", loss {logs['loss']:.3f}" if isinstance(logs.get("loss"), float) else ""
            retry = f" (retry {logs['retry']}: the run before diverged)" if logs.get("retry") else ""
            update_progress_artifact(artifact, 100.0 * step / total_steps,
                                     description=f"Training: step {step} of {total_steps}{loss}{retry}")

    train_log = runner("train")(search.best_params(params), progress=progress)  # tuned train.* values, if any
    update_progress_artifact(artifact, 100.0, description=f"Trained: {train_log['strategy']}, "
                                                          f"{train_log.get('steps', 0)} steps")
    return train_log

