"""Prepare: load the sources, split them (stratified, seeded), check them against the contract, and write
the splits with their content hashes (`driftfit prepare`). Also the one reader of prepared splits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import Params, SplitConfig
from driftfit.errors import DataError
from driftfit.io import atomic_dir, write_json
from driftfit.loaders import load_table
from driftfit.modalities import runs_on


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


def content_hash(df: pd.DataFrame) -> str:
    """SHA-256 over the rows' contents and labels: texts, or for images (no text column) the files' hashes."""
    h = hashlib.sha256()
    for text, label in zip(df["text" if "text" in df.columns else "sha256"], df["label"]):
        h.update(f"{text}\t{label}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def file_hash(path: str) -> str | None:
    """SHA-256 of a file, read in blocks (a batch can be larger than memory should hold)."""
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prepare_splits(reference: pd.DataFrame | None, incoming: pd.DataFrame, incoming_test: pd.DataFrame | None,
                   cfg: SplitConfig) -> dict[str, pd.DataFrame]:
    if incoming_test is None:
        splits = stratified_split(incoming, {"val": cfg.val_fraction, "test": cfg.test_fraction}, cfg.seed)
    else:
        splits = stratified_split(incoming, {"val": cfg.val_fraction}, cfg.seed)
        splits["test"] = incoming_test
    if reference is not None:
        ref = stratified_split(reference, {"test": cfg.test_fraction}, cfg.seed)
        splits["reference_train"], splits["reference_test"] = ref["train"], ref["test"]
    return splits


def champion_data(params: Params, splits: dict[str, pd.DataFrame]) -> tuple | None:
    """(reference_train, reference_test, record) from the data memory, once the serving champion was
    promoted with one (its version.json records the memory): the train and test splits of every batch the
    memory holds now, less this batch if it landed before. So a batch accepted while the champion held
    (a skip) is replayed and checked for forgetting like the others. The record lists which of them the
    champion itself learnt from (`champion_batches`): the shift step measures against those.
    None without a champion or a memory record: then data.reference is the reference."""
    from driftfit import memory, registry

    info = registry.champion_info(params.paths.registry)
    if info is None:
        return None
    registry.champion_dir(params.paths.registry)  # a damaged champion stops the week here, before it is remembered
    recorded = registry.version_record(params.paths.registry, info["version"]).get("memory")
    if not recorded:
        return None
    this = memory.batch_id(splits)
    current = memory.state(params.paths.memory)
    if current["version"] < (recorded.get("version") or 0):  # emptied, or put back to an older state
        raise DataError(f"data memory {params.paths.memory} is at version {current['version']} "
                        f"({len(current['batches'])} batches), older than the version {recorded.get('version')} "
                        f"({len(recorded.get('batches') or [])} batches) that the serving champion {info['version']} "
                        f"was trained with: restore it with 'dvc checkout {params.portable(params.paths.memory)}' "
                        "(or 'dvc pull'); nothing was changed")
    batches = [b for b in current["batches"] if b != this]
    train = memory.remembered(params.paths.memory, batches, "train")
    test = memory.remembered(params.paths.memory, batches, "test")
    if train is None or test is None:
        return None
    learnt = set(recorded.get("batches", []))
    return train, test, {"from": "memory", "champion": info["version"], "memory_version": recorded.get("version"),
                         "batches": batches, "champion_batches": [b for b in batches if b in learnt]}


def read_split(prepared: str | Path, name: str, required: bool = False) -> pd.DataFrame | None:
    """A prepared split (`<prepared>/<name>.parquet`); None when absent, or an error saying what to run when
    `required`. The one reader of prepared splits."""
    path = Path(prepared) / f"{name}.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    if required:
        raise DataError(f"{path} is missing: expected the prepared {name} split (run 'driftfit prepare' first)")
    return None


@runs_on("text", "prepare")
def run(params: Params) -> dict:
    """Load the sources named in params, split them, check them against the data contract, then write
    data/prepared/ (+ manifest.json). A contract error stops here, naming file lines, before anything
    is written to data/prepared/ (the validation report goes to a new folder under paths.rejected).
    """
    from driftfit import validate
    from driftfit.contract import contract_for

    src = params.data
    contract_for(params.validate_)  # a bad contract fails before any data is read
    incoming = load_table(src.incoming, seed=params.split.seed, lines=True)
    incoming_test = (load_table(src.incoming, path=src.incoming.test_path, lines=True)
                     if src.incoming.test_path else None)
    splits = prepare_splits(None, incoming, incoming_test, params.split)
    sources = {"train": src.incoming.path, "val": src.incoming.path,
               "test": src.incoming.test_path or src.incoming.path}
    reference_from = champion_data(params, splits)
    if reference_from is not None:  # what the serving champion learnt: its memory batches
        splits["reference_train"], splits["reference_test"], reference_from = reference_from
        sources.update(reference_train=params.paths.memory, reference_test=params.paths.memory)
    elif src.reference:
        reference = load_table(src.reference, seed=params.split.seed, lines=True)
        splits.update({f"reference_{k}": v for k, v in
                       stratified_split(reference, {"test": params.split.test_fraction}, params.split.seed).items()})
        sources.update(reference_train=src.reference.path, reference_test=src.reference.path)
        reference_from = {"from": "data.reference", "path": params.portable(src.reference.path)}
    validate.check_before_writing(splits, params, sources)
    splits = {name: df.drop(columns="line", errors="ignore") for name, df in splits.items()}
    manifest = {
        "sources": {  # repo-relative paths and file hashes: the lineage a version record keeps
            role: {"path": params.portable(s.path), "sha256": file_hash(s.path),
                   "test_path": params.portable(s.test_path),
                   "test_sha256": file_hash(s.test_path) if s.test_path else None}
            for role, s in (("incoming", src.incoming), ("reference", src.reference)) if s is not None
        },
        "reference": reference_from,  # where reference_train/reference_test came from
        "splits": {
            name: {"rows": len(df), "sha256": content_hash(df),
                   "labels": {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()}}
            for name, df in splits.items()
        },
    }
    with atomic_dir(params.paths.prepared) as tmp:
        for name, df in splits.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        write_json(tmp / "manifest.json", manifest)
    return manifest
