"""Image sources: an image folder (a sub-folder per class) or a manifest (path,label) as rows of path, label and
sha256 (the file's bytes). Splits keep paths relative to the project folder; the images stay where they are
(a split names them, it does not copy them; the memory keeps its own copies).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import Params, SourceConfig
from driftfit.errors import DataError
from driftfit.modalities.image.data import read_image_folder, read_manifest
from driftfit.data.labels import invisible, label_key

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


def load(params: Params, source: SourceConfig, path: str | None = None) -> pd.DataFrame:
    """The modality's load: a source (folder or manifest) as (path, label, sha256) rows, absolute paths, every
    image inside the source's folder or the data roots."""
    return load_images(source, path, seed=params.split.seed, within=params.data.roots)


def stored(params: Params, table: pd.DataFrame) -> pd.DataFrame:
    """Rows as splits and the memory keep them: paths relative to the project folder (records stay true when the
    project moves or is cloned)."""
    return table.assign(path=[params.portable(p) for p in table["path"]]) if "path" in table else table


def restored(params: Params, table: pd.DataFrame) -> pd.DataFrame:
    """Rows as the steps read images: absolute paths again."""
    if "path" not in table.columns:
        raise DataError(f"a prepared split has no 'path' column (columns: {list(table.columns)}): expected an image "
                        "split (run 'driftfit prepare' with task.modality: image)")
    return table.assign(path=[params.absolute(p) for p in table["path"]])
