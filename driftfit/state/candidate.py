"""A candidate belongs to one run: the decision and the batch it was trained for.

`train` records in the candidate's train_log.json the digest of the decision it read and of the prepared
splits it learnt from (`binding`); `evaluate` and `promote` refuse a candidate whose record does not match the
decision and the splits there now (`check`), and `promote` refuses metrics that scored another candidate
(`check_scored`). So a train killed half-way, followed by evaluate and promote by hand, can never promote last
week's model under this week's decision and data. `dvc repro` and the flow re-run train whenever its inputs
changed, so these checks only ever stop a run made out of order.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from driftfit.config import Params
from driftfit.errors import DataError
from driftfit.io import read_json


def _file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def binding(params: Params) -> dict:
    """What the candidate trained now is for: the decision file's digest and the prepared splits' digests."""
    manifest = Path(params.paths.prepared) / "manifest.json"
    splits = (read_json(manifest).get("splits") or {}) if manifest.is_file() else {}
    data = {name: part.get("sha256") for name, part in sorted(splits.items()) if isinstance(part, dict)}
    return {"decision_sha256": _file_digest(Path(params.paths.decision)),
            "data_sha256": hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()}


def check(params: Params, train_log: dict) -> None:
    """A DataError unless the candidate was trained for the decision and the prepared splits there now."""
    where = params.portable(params.paths.candidate)
    recorded = train_log.get("for_run")
    if not isinstance(recorded, dict):
        raise DataError(f"{where}: the candidate records no run it was trained for (a driftfit older than this "
                        "check, or an interrupted train); run 'driftfit train' again ('dvc repro' does)")
    now = binding(params)
    stale = [what for key, what in (("decision_sha256", f"the decision ({params.portable(params.paths.decision)})"),
                                    ("data_sha256", f"the prepared data ({params.portable(params.paths.prepared)})"))
             if recorded.get(key) != now[key]]
    if stale:
        raise DataError(f"{where} was trained for another run: {' and '.join(stale)} changed since "
                        f"(it holds a '{train_log.get('strategy')}' candidate); run 'driftfit train' again "
                        "('dvc repro' does); nothing was scored or promoted")


def check_scored(params: Params, metrics: dict, digest: str) -> None:
    """A DataError unless metrics.json scored this candidate (`digest`: registry.model_digest of its folder)."""
    scored = metrics.get("candidate_sha256")
    if scored != digest:
        raise DataError(f"{params.portable(params.paths.metrics)} scored "
                        f"{'another candidate' if scored else 'a candidate it does not name'} than the one in "
                        f"{params.portable(params.paths.candidate)}; run 'driftfit evaluate' again ('dvc repro' "
                        "does); nothing was promoted")
