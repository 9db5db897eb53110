from prefect import task

from driftfit import train as train_step
from driftfit.config import Params


@task(name="train")
def train(params: Params) -> dict:
    """Train the candidate with the chosen strategy."""
    return train_step.run(params)
