"""Content digests: of a split's rows (what it holds, whatever file it came from) and of files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd


# Columns that say where a row is or came from, not what it holds: a row's content is every other column but
# its label (a text; an image's file hash, not its path, which differs between a batch and the memory's copy).
NOT_CONTENT = ("label", "path", "line", "batch")


def content_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in NOT_CONTENT]


def content_hash(df: pd.DataFrame) -> str:
    """SHA-256 over the rows' contents and labels (see NOT_CONTENT), in row order."""
    h = hashlib.sha256()
    columns = content_columns(df)
    for *content, label in zip(*(df[c] for c in columns), df["label"]):
        h.update(("\t".join(map(str, content)) + f"\t{label}\n").encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def file_hash(path: str | Path) -> str | None:
    """SHA-256 of a file, read in blocks (a batch can be larger than memory should hold); None if absent."""
    p = Path(path)
    if not p.is_file():
        return None
    with open(p, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def folder_hash(path: str | Path) -> str | None:
    """A file's hash, or for a folder the hash over its files' names and contents (a batch's lineage)."""
    p = Path(path)
    if not p.is_dir():
        return file_hash(p)
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f.relative_to(p).as_posix().encode() + b"\0" + (file_hash(f) or "-").encode())
    return h.hexdigest()
