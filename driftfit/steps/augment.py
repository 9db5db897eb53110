"""augment: the prepared training split plus its augmented copies (seeded; validation and test are never
touched) into paths.augmented/ whole: train.parquet (an `augmented` and a `methods` column) and summary.json;
a modality whose rows are files writes the copies' files there too."""

from __future__ import annotations

from driftfit import modalities
from driftfit.config import Params
from driftfit.data.splits import read_split
from driftfit.io import atomic_dir, write_json


def _labels(df) -> dict[str, int]:
    return {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()}


def run(params: Params) -> dict:
    modality = modalities.get(params.task.modality)
    train = modality.restored(params, read_split(params.paths.prepared, "train", required=True))
    with atomic_dir(params.paths.augmented) as tmp:
        augmented, methods = modality.augment(params, train, tmp)
        augmented = modality.stored(params, augmented)
        summary = {"original_rows": len(train), "augmented_rows": int(augmented["augmented"].sum()),
                   "total_rows": len(augmented), "methods": methods,
                   "labels_before": _labels(train), "labels_after": _labels(augmented)}
        augmented.to_parquet(tmp / "train.parquet", index=False)
        write_json(tmp / "summary.json", summary)
    return summary
