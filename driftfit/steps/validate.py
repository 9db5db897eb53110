"""validate: check the prepared splits against the data contract (the modality's Great Expectations suites, plus
duplicates and leakage); write paths.validation/ (summary.json + data_docs/) whole. On errors the report goes to
a new folder under paths.rejected/ instead, paths.validation/ stays as it was, and the run stops."""

from __future__ import annotations

from pathlib import Path

from driftfit import modalities
from driftfit.config import Params
from driftfit.data import validation


def run(params: Params) -> dict:
    modality = modalities.get(params.task.modality)
    splits = {name: modality.restored(params, df)
              for name, df in validation.read_splits(params.paths.prepared).items()}
    files = [str(Path(params.paths.prepared) / f"{name}.parquet") for name in splits]
    return validation.report(params, splits, files, modality.validate)
