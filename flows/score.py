"""The `score` flow: the champion (or a version) scores a file, with a summary artifact.

Run it once:   python -m flows.score --input data/traffic/week.csv [--out FILE] [--version vN]
On a schedule: prefect.yaml deploys it (on a `driftfit.traffic.landed` event, and a weekly cron that is off until
you point it at your file). The input, the output and a manifest's images must lie in data.roots.
It calls what `driftfit predict` calls (driftfit.serving.predict), with the same params.yaml.
"""

from __future__ import annotations

import argparse
import os
import sys

from prefect import flow, get_run_logger

from driftfit.config import load_params
from tasks import logs
from tasks.score import score_file

logs.install()  # our errors as one line in the run's logs
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@flow(name="score", log_prints=False)
def score(input_path: str, output_path: str | None = None, version: str | None = None,
          all_probabilities: bool | None = None, params_path: str = "params.yaml") -> dict:
    """Score a CSV/TSV/JSON Lines/Parquet file (an image champion: a folder or manifest) with the champion.

    Args:
        input_path: the file to score (inside data.roots).
        output_path: where the predictions go (inside data.roots); empty: beside the input, <name>.predictions.<ext>.
        version: a registry version (vN); empty: the champion.
        all_probabilities: also write every label's probability; empty: predict.all_probabilities.
        params_path: params.yaml of the project (relative to the working directory).
    """
    params = load_params(params_path)  # a bad value fails here, before any work
    result = score_file(params, input_path, output_path, version, all_probabilities)
    get_run_logger().info("%s rows scored by %s -> %s", result["rows"], result["version"], result["output"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the score flow once.")
    parser.add_argument("--input", required=True, help="file to score (inside data.roots)")
    parser.add_argument("--out", default=None, help="output file (default: beside the input)")
    parser.add_argument("--version", default=None, help="registry version (default: the champion)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    state = score(input_path=args.input, output_path=args.out, version=args.version, params_path=args.params,
                  return_state=True)
    if not state.is_completed():
        print(f"score: error: {state.message}", file=sys.stderr)
        sys.exit(2)
    result = state.result()
    print(f"score: {result['rows']} rows scored by {result['version']} -> {result['output']}")


if __name__ == "__main__":
    main()
