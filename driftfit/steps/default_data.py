"""default-data: write the modality's embedded example to paths.default_data (text: chatterbot-corpus English
dialogue by category; images: animal silhouettes), whole."""

from __future__ import annotations

from pathlib import Path

from driftfit import modalities
from driftfit.config import Params
from driftfit.io import atomic_dir


def run(params: Params) -> dict:
    modality = modalities.get(params.task.modality)
    with atomic_dir(params.paths.default_data) as tmp:
        record = modality.write_default_data(params, Path(tmp))
    return record
