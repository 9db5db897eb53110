from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.artifacts import create_markdown_artifact

from driftfit.config import Params
from driftfit.serving import predict
from tasks.prepare import transient


# Never cached: the same file scored again after a promotion must be scored by the new champion.
@task(name="score", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5, retry_condition_fn=transient)
def score_file(params: Params, input_path: str, output_path: str | None, version: str | None,
               all_probabilities: bool | None) -> dict:
    """Score a file with the champion (or a version); the summary becomes the `score-summary` artifact."""
    result = predict.run(params, input_path, output_path, version, all_probabilities, progress=False,
                         inside_roots=True)
    create_markdown_artifact(key="score-summary", markdown=predict.summary_md(result),
                             description=f"Scoring with {result['version']}")
    return result
