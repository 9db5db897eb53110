from prefect import task

from driftfit import data
from driftfit.config import Params


@task(name="default data")
def make_default_data(params: Params) -> dict:
    """Write the embedded default data (chatterbot-corpus English)."""
    return data.run_default_data(params)


@task(name="prepare", retries=1, retry_delay_seconds=5)  # files on network storage can blink
def prepare(params: Params) -> dict:
    """Load reference + incoming data, split them, record content hashes."""
    return data.run(params)
