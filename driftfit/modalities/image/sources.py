"""Prepare an image batch: read an image folder or a manifest, split it (stratified, seeded), check every
image with the GX image rules, and write the splits (`driftfit prepare` when task.modality is image).

The splits are tables of path, label and sha256 (the file's bytes) in `paths.prepared/<split>.parquet`, the
same files and manifest.json as for texts; paths are kept relative to the project folder. The images stay
where they are: a split names them, it does not copy them. The reference is the data memory's batches once a
champion exists (as for texts, driftfit.prepare.champion_data), else `data.reference` (or none).
A bad image stops here, before anything is written, with an error naming the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import Params, SourceConfig
from driftfit.errors import DataError
from driftfit.image_data import read_image_folder, read_manifest
from driftfit.io import atomic_dir, write_json
from driftfit.modalities import runs_on
from driftfit.texts import invisible, label_key
from driftfit.prepare import champion_data, content_hash, file_hash, prepare_splits, read_split, stratified_split

COLUMNS = ["path", "label", "sha256"]


# ---- reading -----------------------------------------------------------------------------------

def load_images(source: SourceConfig, path: str | None = None, seed: int = 0,
                within: list[str] | tuple = ()) -> pd.DataFrame:
    """The (path, label, sha256) table of an image folder (one sub-folder per class) or a CSV/Parquet manifest
    (columns path,label); `source.sample` keeps a seeded random sample of that many images. Every image must
    resolve inside the folder (the manifest's folder) or one of `within`, the data roots."""
    where = Path(path or source.path)
    table = read_image_folder(where, within) if where.is_dir() else read_manifest(where, within)
    _check_labels(where, table["label"])
    if source.sample is not None and source.sample < len(table):
        keep = np.sort(np.random.default_rng(seed).choice(len(table), size=source.sample, replace=False))
        table = table.iloc[keep].reset_index(drop=True)
    table["sha256"] = [_sha256(p) for p in table["path"]]
    return table[COLUMNS]


def _check_labels(where: Path, labels: pd.Series) -> None:
    """Class names (folder names or a manifest's labels) a reader can tell apart: no invisible characters, and
    no two that differ only by case, spaces or Unicode normalisation ('café' typed two ways)."""
    seen: dict[str, str] = {}
    for label in sorted(labels.unique()):
        hidden = invisible(label)
        if hidden is not None:
            raise DataError(f"'{where}': label {label!r} holds an invisible character {hidden}; expected visible "
                            "characters only (it would look like another label)")
        other = seen.setdefault(label_key(label), label)
        if other != label:
            raise DataError(f"'{where}': labels {other!r} and {label!r} differ only in case, spaces or Unicode "
                            "normalisation: expected one spelling per label (rename one folder or row)")


def _sha256(path: str) -> str | None:
    """The file's content hash; None for a file that cannot be read (validation then names it)."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def folder_hash(path: str) -> str | None:
    """A manifest's file hash, or for a folder the hash over its files' names and contents (the batch's lineage)."""
    p = Path(path)
    if not p.is_dir():
        return file_hash(path)
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f.relative_to(p).as_posix().encode() + b"\0" + (_sha256(str(f)) or "-").encode())
    return h.hexdigest()


def absolute(params: Params, table: pd.DataFrame) -> pd.DataFrame:
    """A prepared split with its project-relative paths made absolute again (for reading the images)."""
    return table.assign(path=[params.absolute(p) for p in table["path"]])


def read_image_split(params: Params, name: str, required: bool = False) -> pd.DataFrame | None:
    """A prepared image split (prepare.read_split, the one reader) with absolute paths; None when absent."""
    table = read_split(params.paths.prepared, name, required)
    if table is not None and "path" not in table.columns:
        raise DataError(f"'{Path(params.paths.prepared) / name}.parquet' has no 'path' column: expected an image "
                        "split (run 'driftfit prepare' with task.modality: image)")
    return None if table is None else absolute(params, table)


# ---- the step ------------------------------------------------------------------------------------

@runs_on("image", "prepare")
def run(params: Params) -> dict:
    """Read the sources, split them, check every image, then write paths.prepared/ (+ manifest.json) whole.
    A bad image stops here, naming the file, with the report in a new folder under paths.rejected."""
    from driftfit.image_validate import check_before_writing

    src = params.data
    roots = src.roots
    incoming = load_images(src.incoming, seed=params.split.seed, within=roots)
    incoming_test = (load_images(src.incoming, src.incoming.test_path, within=roots) if src.incoming.test_path
                     else None)
    splits = prepare_splits(None, incoming, incoming_test, params.split)
    sources = {"train": src.incoming.path, "val": src.incoming.path,
               "test": src.incoming.test_path or src.incoming.path}
    portable = {name: df.assign(path=[params.portable(p) for p in df["path"]]) for name, df in splits.items()}
    reference_from = champion_data(params, portable)  # the memory's batches (portable paths, as remembered)
    if reference_from is not None:
        reference_train, reference_test, reference_from = reference_from
        splits["reference_train"], splits["reference_test"] = (absolute(params, reference_train),
                                                               absolute(params, reference_test))
        sources.update(reference_train=params.paths.memory, reference_test=params.paths.memory)
    elif src.reference:
        reference = load_images(src.reference, seed=params.split.seed, within=roots)
        ref = stratified_split(reference, {"test": params.split.test_fraction}, params.split.seed)
        splits["reference_train"], splits["reference_test"] = ref["train"], ref["test"]
        sources.update(reference_train=src.reference.path, reference_test=src.reference.path)
        reference_from = {"from": "data.reference", "path": params.portable(src.reference.path)}
    check_before_writing(splits, params, list(sources.values()))
    splits = {name: df.assign(path=[params.portable(p) for p in df["path"]]) for name, df in splits.items()}
    manifest = {
        "modality": "image",
        "sources": {role: {"path": params.portable(s.path), "sha256": folder_hash(s.path),
                           "test_path": params.portable(s.test_path),
                           "test_sha256": folder_hash(s.test_path) if s.test_path else None}
                    for role, s in (("incoming", src.incoming), ("reference", src.reference)) if s is not None},
        "reference": reference_from,
        "splits": {name: {"rows": len(df), "sha256": content_hash(df),
                          "labels": {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()}}
                   for name, df in splits.items()},
    }
    with atomic_dir(params.paths.prepared) as tmp:
        for name, df in splits.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        write_json(tmp / "manifest.json", manifest)
    return manifest
