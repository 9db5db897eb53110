"""Where a validation report goes, and what stops a run: shared by the prepare and validate steps.

A modality's `validate` checks the splits and returns a JSON-able summary (its Great Expectations checks, errors
and warnings). This module writes that summary and the GX Data Docs whole: to paths.validation (a DVC output)
when the data passed, to a new folder under paths.rejected when it failed, leaving paths.validation as it was (a
rejected batch that rewrote it would make the next `dvc repro` re-run every later stage on unchanged data).
An error stops the run with ValidationFailed naming the report; warnings are logged and the run goes on.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from driftfit.config import Params
from driftfit.data.splits import BATCH, REFERENCE, read_split
from driftfit.errors import ValidationFailed
from driftfit.io import atomic_dir, write_json

log = logging.getLogger(__name__)

# Pairs checked for leakage: (the split a row may come from, the split it must not reappear in).
# reference_train is replayed into training, so its rows must stay out of val and test as train's do
# (a reference file that overlaps the new batch, or is the same file, would otherwise pass unseen).
LEAKAGE_PAIRS = (("train", "val"), ("train", "test"), ("val", "test"), ("reference_train", "val"),
                 ("reference_train", "test"), ("train", "reference_test"), ("reference_train", "reference_test"))
MAX_ERRORS_IN_MESSAGE = 10  # the rest are in summary.json

Validate = Callable[[Params, dict, Path | None, dict | None], dict]  # a modality's validate


def read_splits(prepared: str | Path) -> dict[str, pd.DataFrame]:
    """train/val/test (required) and reference_train/reference_test (when present) from `prepared`."""
    splits = {name: read_split(prepared, name, required=name in BATCH) for name in BATCH + REFERENCE}
    return {name: df for name, df in splits.items() if df is not None}


def rejected_folder(params: Params, files: list[str]) -> Path:
    """A new folder under paths.rejected for one rejected batch: UTC time + a short hash of its source files."""
    digest = hashlib.sha256()
    for name in sorted(set(files)):
        path = Path(name)
        if path.is_file():
            with path.open("rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        else:  # a folder of images, or hf:<dataset id>
            digest.update(name.encode())
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path(params.paths.rejected) / f"{stamp}-{digest.hexdigest()[:8]}"


def report(params: Params, splits: dict[str, pd.DataFrame], files: list[str], validate: Validate,
           sources: dict[str, str] | None = None) -> dict:
    """Validate with Data Docs and write the report (summary.json + data_docs/) whole, where the module's
    docstring says; ValidationFailed (its `summary_path` names the report) when it failed."""
    with tempfile.TemporaryDirectory(prefix="driftfit-validation-") as staging:  # where it goes depends on the result
        summary = validate(params, splits, Path(staging) / "data_docs", sources)
        target = Path(params.paths.validation) if summary["success"] else rejected_folder(params, files)
        summary["data_docs"] = str(target / "data_docs" / "index.html")
        with atomic_dir(target) as tmp:
            shutil.copytree(staging, tmp, dirs_exist_ok=True)
            write_json(tmp / "summary.json", summary)
    for warning in summary["warnings"]:
        log.warning("data validation warning: %s", warning)
    if not summary["success"]:
        errors = summary["errors"]
        shown = "; ".join(errors[:MAX_ERRORS_IN_MESSAGE])
        more = f"; and {len(errors) - MAX_ERRORS_IN_MESSAGE} more" if len(errors) > MAX_ERRORS_IN_MESSAGE else ""
        err = ValidationFailed(f"data validation failed: {shown}{more} (details: {target / 'summary.json'})")
        err.summary_path = str(target / "summary.json")  # for callers that show the report (Prefect artifacts)
        raise err
    return summary


def check_before_writing(params: Params, splits: dict[str, pd.DataFrame], sources: dict[str, str],
                         validate: Validate) -> None:
    """For `prepare`: stop on errors before any split is written, naming file lines (`sources` maps a split to
    the file its rows came from). On errors the report goes to a new folder under paths.rejected (see report)."""
    summary = validate(params, splits, None, sources)
    if not summary["success"]:
        report(params, splits, list(sources.values()), validate, sources)  # raises ValidationFailed, same errors
    for warning in summary["warnings"]:  # here they name file lines; the validate step sees only the split rows
        log.warning("data validation warning: %s", warning)
