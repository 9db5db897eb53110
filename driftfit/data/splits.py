"""Prepared splits: stratified and seeded, written whole, and read back by one reader.

`paths.prepared/` holds one Parquet file per split (train, val, test; reference_train and reference_test when
there is a reference) and manifest.json (sources, hashes, rows and labels per split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import SplitConfig
from driftfit.data.hashing import content_hash
from driftfit.errors import DataError
from driftfit.io import atomic_dir, read_json, write_json

BATCH = ("train", "val", "test")                       # the incoming batch's splits
REFERENCE = ("reference_train", "reference_test")      # what the champion learnt (the memory, or data.reference)
TEST = ("test", "reference_test")                      # what models are scored on


def stratified_split(df: pd.DataFrame, fractions: dict[str, float], seed: int) -> dict[str, pd.DataFrame]:
    """Split per label so every part keeps the label mix. The remainder goes to 'train'."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {name: [] for name in ["train", *fractions]}
    for _, idx in sorted(df.groupby("label").indices.items()):
        idx = rng.permutation(idx)
        start = 0
        for name, frac in fractions.items():
            # Each held-out part gets at least one row once a class has enough rows for all parts.
            n = int(round(frac * len(idx)))
            if n == 0 and len(idx) > len(fractions):
                n = 1
            parts[name] += idx[start:start + n].tolist()
            start += n
        parts["train"] += idx[start:].tolist()
    return {name: df.loc[sorted(ix)].reset_index(drop=True) for name, ix in parts.items()}


def prepare_splits(reference: pd.DataFrame | None, incoming: pd.DataFrame, incoming_test: pd.DataFrame | None,
                   cfg: SplitConfig) -> dict[str, pd.DataFrame]:
    """train/val/test of the incoming batch (test from `incoming_test` when given), and reference_train/
    reference_test of the reference when given."""
    if incoming_test is None:
        splits = stratified_split(incoming, {"val": cfg.val_fraction, "test": cfg.test_fraction}, cfg.seed)
    else:
        splits = stratified_split(incoming, {"val": cfg.val_fraction}, cfg.seed)
        splits["test"] = incoming_test
    if reference is not None:
        ref = stratified_split(reference, {"test": cfg.test_fraction}, cfg.seed)
        splits["reference_train"], splits["reference_test"] = ref["train"], ref["test"]
    return splits


def summary(splits: dict[str, pd.DataFrame]) -> dict:
    """Rows, content hash and label counts per split (the manifest's `splits`)."""
    return {name: {"rows": len(df), "sha256": content_hash(df),
                   "labels": {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()}}
            for name, df in splits.items()}


def write_splits(prepared: str | Path, splits: dict[str, pd.DataFrame], manifest: dict) -> None:
    """Every split and manifest.json, in one atomic folder swap."""
    with atomic_dir(prepared) as tmp:
        for name, df in splits.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        write_json(tmp / "manifest.json", manifest)


def read_split(prepared: str | Path, name: str, required: bool = False) -> pd.DataFrame | None:
    """A prepared split (`<prepared>/<name>.parquet`); None when absent, or an error saying what to run when
    `required`. The one reader of prepared splits."""
    path = Path(prepared) / f"{name}.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    if required:
        raise DataError(f"{path} is missing: expected the prepared {name} split (run 'driftfit prepare' first)")
    return None


def read_manifest(prepared: str | Path) -> dict:
    path = Path(prepared) / "manifest.json"
    if not path.is_file():
        raise DataError(f"{path} is missing: run 'driftfit prepare' first")
    return read_json(path)
