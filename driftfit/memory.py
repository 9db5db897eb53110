"""The data memory: every batch that passed validation, with its train, val and test splits (`driftfit remember`).

  data/memory/
    batches/<folder>/  train.parquet, val.parquet, test.parquet and batch.json (source, hashes, rows,
                       labels) of one accepted batch. Its id comes from the content of its splits, so the
                       same batch landing twice is recognised and not added twice; its folder is the id, or
                       id.vN once the reservoir has resampled its training rows (a new folder, never an edit)
    images/<ab>/<sha256>.<ext>
                       image batches only: a copy of every image a kept batch lists, named by the hash of its
                       bytes (the same image in two batches is kept once). The memory does not depend on the
                       folders the batches came from: next week's replay and forgetting checks read these copies,
                       and DVC versions them with the rest of the memory
    memory.json        the pointer: version (counts changes), the batches kept (oldest first), their
                       folders, and the history

What is kept (`memory.keep`), and what it costs:
  all        every batch: disk and replay/retrain data grow without bound; nothing is ever forgotten
  window     the last `memory.window` batches: bounded; older batches leave (and their test splits with them)
  reservoir  every batch's val/test, but at most `memory.reservoir_per_class` training rows per label over
             all batches, a uniform sample (bottom-k of a seeded hash per text): bounded training data,
             every period still represented
A change is atomic, as in the registry: a new batch folder is assembled under a temp name and renamed in,
then memory.json is replaced in one rename; folders it no longer lists are removed afterwards (or by the
next change, if the process died). Images are copied in first (each under a temp name, checked against the
hash prepare recorded, then renamed), and images no kept batch lists are removed after the switch. A crash leaves the memory as it was; a rejected batch never gets here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from driftfit.config import MemoryConfig, Params
from driftfit.errors import DataError
from driftfit.io import read_json, write_json

POINTER = "memory.json"
BATCH_SPLITS = ("train", "val", "test")


# ---- reading ---------------------------------------------------------------------------------

def state(root: str | Path) -> dict:
    """memory.json, or the empty memory (version 0)."""
    pointer = Path(root) / POINTER
    if not pointer.is_file():
        return {"version": 0, "batches": [], "history": []}
    try:
        return read_json(pointer)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"data memory {root}: {pointer} is not valid JSON ({err}); restore it with "
                        f"'dvc checkout {pointer.parent}' (the memory is versioned with DVC)") from None


def folder(current: dict, batch: str) -> str:
    return current.get("folders", {}).get(batch, batch)


def batch_split(root: str | Path, batch: str, split: str, current: dict | None = None) -> pd.DataFrame:
    current = state(root) if current is None else current
    return pd.read_parquet(Path(root) / "batches" / folder(current, batch) / f"{split}.parquet")


def lineage(root: str | Path) -> dict:
    """What a champion records of the memory it was trained with: version, batches, and the pointer's hash."""
    pointer = Path(root) / POINTER
    current = state(root)
    digest = hashlib.sha256(pointer.read_bytes()).hexdigest() if pointer.is_file() else None
    return {"version": current["version"], "batches": current["batches"], "memory_sha256": digest}


# ---- the batch -----------------------------------------------------------------------------------

def batch_id(splits: dict[str, pd.DataFrame]) -> str:
    """The same rows in the same splits give the same id, whatever file (or dtype) they came from."""
    from driftfit.prepare import content_hash

    h = hashlib.sha256()
    for name in BATCH_SPLITS:
        h.update(f"{name}:{content_hash(splits[name])}\n".encode())
    return h.hexdigest()[:16]


def remembered(root: str | Path, batches: list[str], split: str) -> pd.DataFrame | None:
    """One split of the listed batches that the memory still holds, with a `batch` column; None if none."""
    current = state(root)
    frames = [batch_split(root, b, split, current).assign(batch=b) for b in batches if b in current["batches"]]
    return pd.concat(frames, ignore_index=True) if frames else None


def _reservoir(frames: dict[str, pd.DataFrame], per_class: int, seed: int) -> dict[str, pd.DataFrame]:
    """At most `per_class` training rows per label over all batches: the rows whose seeded hash is smallest
    (a uniform sample that does not depend on the order batches arrived in)."""
    keyed = []
    for batch, df in frames.items():
        key = pd.util.hash_pandas_object(df["text" if "text" in df else "sha256"], index=False, hash_key=f"{seed:016d}"[:16]).to_numpy()
        keyed.append(pd.DataFrame({"batch": batch, "row": np.arange(len(df)), "label": df["label"].to_numpy(),
                                   "key": key}))
    table = pd.concat(keyed, ignore_index=True)
    keep = table.sort_values("key", kind="stable").groupby("label", sort=False).head(per_class)
    return {batch: df.iloc[np.sort(keep.loc[keep["batch"] == batch, "row"].to_numpy())].reset_index(drop=True)
            for batch, df in frames.items()}


# ---- changing, atomically ------------------------------------------------------------------------

def _write_batch(root: Path, name: str, splits: dict[str, pd.DataFrame], record: dict) -> None:
    """batches/<name>/, assembled under a temp name and renamed in (a crash leaves no half folder)."""
    batches = root / "batches"
    batches.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=batches))
    try:
        for split in BATCH_SPLITS:
            table = splits[split]  # texts; or images: their paths (copies in root/images) and file hashes
            table[[c for c in ("text", "path", "label", "sha256") if c in table.columns]].to_parquet(
                tmp / f"{split}.parquet", index=False)
        write_json(tmp / "batch.json", record)
        if (batches / name).exists():  # a folder a crash left before the pointer listed it
            shutil.rmtree(batches / name)
        os.rename(tmp, batches / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sweep(root: Path, listed: list[str]) -> list[str]:
    """Remove batch folders the pointer does not list (dropped, resampled, or left by a crash), then the
    stored images no listed folder names."""
    batches = root / "batches"
    gone = []
    for p in (batches.iterdir() if batches.is_dir() else []):
        if p.name not in listed:
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
    store = root / IMAGES
    if store.is_dir():
        kept = {Path(p).name for name in listed for split in BATCH_SPLITS
                for p in pd.read_parquet(batches / name / f"{split}.parquet", columns=["path"])["path"]}
        for f in store.glob("*/*"):
            if f.name not in kept:  # also a temp copy a crash left
                f.unlink(missing_ok=True)
    return sorted(gone)


# ---- images: kept in the memory, by content ---------------------------------------------------------

IMAGES = "images"


def store_images(root: str | Path, splits: dict[str, pd.DataFrame], readable: Callable[[str], str],
                 recorded: Callable[[str], str]) -> dict[str, pd.DataFrame]:
    """Copy every image the splits list into root/images/<ab>/<sha256><suffix> (once per content) and return
    the splits pointing at the copies. readable(path) is where a split's path can be read now; recorded(path)
    is how the records keep a stored copy's path (project-relative). An image whose bytes no longer match the
    hash prepare recorded (it changed since) stops here, naming the file, before the memory changes."""
    from driftfit.prepare import file_hash

    store = Path(root) / IMAGES
    out = {}
    for split, table in splits.items():
        stored = []
        for path, digest in zip(table["path"], table["sha256"]):
            source = Path(readable(path))
            target = store / digest[:2] / f"{digest}{source.suffix.lower()}"
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
                try:
                    shutil.copyfile(source, tmp)
                    if file_hash(str(tmp)) != digest:
                        raise DataError(f"'{source}' ({split} split): its bytes changed since prepare recorded sha256 "
                                        f"{digest[:12]}...: run prepare and validate again on the batch as it is now")
                    os.replace(tmp, target)
                except FileNotFoundError:
                    raise DataError(f"'{source}' ({split} split): the image is gone since prepare listed it: run prepare "
                                    "again") from None
                finally:
                    tmp.unlink(missing_ok=True)
            stored.append(recorded(str(target)))
        out[split] = table.assign(path=stored)
    return out


def add_batch(root: str | Path, splits: dict[str, pd.DataFrame], source: dict, cfg: MemoryConfig) -> dict:
    """Add one validated batch (its train/val/test splits) and apply the keep policy. Returns what happened."""
    root = Path(root)
    current = state(root)
    batch = batch_id(splits)
    if batch in current["batches"]:
        return {"added": False, "batch": batch, "version": current["version"], "batches": current["batches"],
                "reason": f"batch {batch} is already in the memory (same rows): not added twice"}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record = {"batch": batch, "added_at": now, "source": source,
              "rows": {name: len(splits[name]) for name in BATCH_SPLITS},
              "labels": sorted(set(splits["train"]["label"]))}
    _write_batch(root, batch, splits, record)
    kept = [*current["batches"], batch]
    folders = {b: folder(current, b) for b in current["batches"]} | {batch: batch}
    version = current["version"] + 1
    dropped: list[str] = []
    if cfg.keep == "window" and len(kept) > cfg.window:
        dropped, kept = kept[:-cfg.window], kept[-cfg.window:]
    elif cfg.keep == "reservoir":  # a batch whose training sample shrank gets a new folder, id.vN
        trains = {b: pd.read_parquet(root / "batches" / folders[b] / "train.parquet") for b in kept}
        for b, sampled in _reservoir(trains, cfg.reservoir_per_class, cfg.seed).items():
            if len(sampled) != len(trains[b]):
                old = root / "batches" / folders[b]
                rec = read_json(old / "batch.json")
                others = {n: pd.read_parquet(old / f"{n}.parquet") for n in ("val", "test")}
                folders[b] = f"{b}.v{version}"
                _write_batch(root, folders[b], {"train": sampled, **others},
                             {**rec, "rows": {**rec["rows"], "train": len(sampled)}})
    pointer = {"version": version, "keep": cfg.keep, "batches": kept, "folders": {b: folders[b] for b in kept},
               "history": [*current.get("history", []),
                           {"version": version, "at": now, "added": batch, "dropped": dropped}]}
    write_json(root / POINTER, pointer, fsync=True)  # the switch: before it, the old memory; after, the new
    _sweep(root, list(pointer["folders"].values()))
    return {"added": True, "batch": batch, "version": version, "batches": kept, "dropped": dropped}


# ---- the thin edge -------------------------------------------------------------------------------

def run(params: Params) -> dict:
    """Add the prepared (and validated) batch to paths.memory."""
    from driftfit.prepare import read_split

    splits = {name: read_split(params.paths.prepared, name, required=True) for name in BATCH_SPLITS}
    manifest = read_json(Path(params.paths.prepared) / "manifest.json")
    incoming = manifest.get("sources", {}).get("incoming", {})
    if "path" in splits["train"].columns:  # images: the memory keeps its own copies
        splits = store_images(params.absolute(params.paths.memory), splits, params.absolute, params.portable)
    return add_batch(params.paths.memory, splits, incoming, params.memory)
