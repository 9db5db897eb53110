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
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from driftfit.config import MemoryConfig
from driftfit.data.hashing import content_columns, content_hash, file_hash
from driftfit.errors import DataError
from driftfit.io import read_json, write_json

log = logging.getLogger(__name__)
POINTER = "memory.json"
BATCH_SPLITS = ("train", "val", "test")


# ---- reading, verified -----------------------------------------------------------------------

class MemoryStateError(DataError):
    """The memory's pointer or a remembered batch is missing, unreadable or not what was recorded: nothing is
    changed until it is restored or repaired."""


def _repair_hint(root: Path) -> str:
    return (f"restore it with 'dvc checkout {root}' (the memory is versioned with DVC), or rebuild the pointer from "
            f"the batch folders with 'driftfit memory repair'; nothing was changed")


def _batch_folders(root: Path) -> list[Path]:
    batches = root / "batches"
    return sorted(p for p in batches.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "batch.json").is_file()) if batches.is_dir() else []


def state(root: str | Path) -> dict:
    """memory.json, checked: every batch it lists has its folder and split files. The empty memory (version 0)
    when there is neither a pointer nor a remembered batch. A missing pointer beside remembered batches, or a
    pointer that is not a memory record, is an error naming the repair: never an empty memory that the next
    change would sweep the batches out of."""
    root = Path(root)
    pointer = root / POINTER
    if not pointer.is_file():
        found = _batch_folders(root)
        if found:
            raise MemoryStateError(f"data memory {root}: {POINTER} is missing but {len(found)} remembered batch "
                               f"folder(s) exist; " + _repair_hint(root))
        return {"version": 0, "batches": [], "history": []}
    try:
        current = read_json(pointer)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MemoryStateError(f"data memory {root}: {pointer} is not valid JSON ({err}); " + _repair_hint(root)) from None
    problem = _pointer_problem(current)
    if problem:
        raise MemoryStateError(f"data memory {root}: {pointer} {problem}; " + _repair_hint(root))
    for batch in current["batches"]:
        where = root / "batches" / folder(current, batch)
        missing = [f"{n}.parquet" for n in BATCH_SPLITS if not (where / f"{n}.parquet").is_file()]
        if not where.is_dir() or missing:
            what = "is missing" if not where.is_dir() else f"lacks {', '.join(missing)}"
            raise MemoryStateError(f"data memory {root}: remembered batch {batch} ({where}) {what}; "
                               + _repair_hint(root))
    return current


def _pointer_problem(current) -> str | None:
    if not isinstance(current, dict):
        return f"holds {type(current).__name__}, not a memory record (an object with version and batches)"
    version, batches = current.get("version"), current.get("batches")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        return f"has version = {version!r}; expected a whole number >= 0"
    if not isinstance(batches, list) or not all(isinstance(b, str) and b for b in batches):
        return "has no 'batches' list of batch ids"
    folders = current.get("folders", {})
    if not isinstance(folders, dict) or not all(isinstance(v, str) and "/" not in v and v not in (".", "..")
                                                 for v in folders.values()):
        return "has a 'folders' entry that is not a mapping of batch ids to folder names"
    if not isinstance(current.get("history", []), list):
        return "has a 'history' that is not a list"
    return None


def folder(current: dict, batch: str) -> str:
    return current.get("folders", {}).get(batch, batch)


_VERIFIED: dict[tuple, str] = {}  # (file, size, mtime) -> content digest: each file is hashed once per process


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file; its message describes the file
        raise MemoryStateError(f"data memory: {path} is not a readable Parquet file ({type(err).__name__}: "
                           f"{str(err)[:160]}); " + _repair_hint(path.parents[2])) from None


def _digest(path: Path, df: pd.DataFrame) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = content_hash(df)
    return _VERIFIED[key]


def batch_split(root: str | Path, batch: str, split: str, current: dict | None = None) -> pd.DataFrame:
    """One split of a remembered batch, checked against the digests its batch.json records (or, for a batch
    remembered before those were recorded and never resampled, against its id, a digest of all three splits).
    A changed or damaged file is an error naming it and the repair, never read as if it were the batch."""
    root = Path(root)
    current = state(root) if current is None else current
    where = root / "batches" / folder(current, batch)
    df = _read(where / f"{split}.parquet")
    record = _record(where)
    recorded = (record.get("sha256") or {}).get(split)
    if recorded is not None:
        ok = _digest(where / f"{split}.parquet", df) == recorded
    elif where.name == batch:
        parts = {n: df if n == split else _read(where / f"{n}.parquet") for n in BATCH_SPLITS}
        ok = batch_id({n: part for n, part in parts.items()}, {n: where / f"{n}.parquet" for n in BATCH_SPLITS}) == batch
    else:
        ok = True  # a resampled folder from before digests were recorded: nothing to check against
    if not ok:
        raise MemoryStateError(f"data memory {root}: {where / f'{split}.parquet'} does not match the digest recorded for "
                           f"batch {batch} (its rows changed since it was remembered); " + _repair_hint(root))
    return df


def batch_record(root: str | Path, batch: str, current: dict | None = None) -> dict:
    """The batch.json of a remembered batch (source, rows, labels, digests)."""
    current = state(root) if current is None else current
    return _record(Path(root) / "batches" / folder(current, batch))


def _record(where: Path) -> dict:
    try:
        record = read_json(where / "batch.json")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MemoryStateError(f"data memory: {where / 'batch.json'} is unreadable ({type(err).__name__}); "
                           + _repair_hint(where.parents[1])) from None
    if not isinstance(record, dict):
        raise MemoryStateError(f"data memory: {where / 'batch.json'} is not a batch record; "
                           + _repair_hint(where.parents[1]))
    return record


def lineage(root: str | Path) -> dict:
    """What a champion records of the memory it was trained with: version, batches, and the pointer's hash."""
    pointer = Path(root) / POINTER
    current = state(root)
    digest = hashlib.sha256(pointer.read_bytes()).hexdigest() if pointer.is_file() else None
    return {"version": current["version"], "batches": current["batches"], "memory_sha256": digest}


# ---- the batch -----------------------------------------------------------------------------------

def batch_id(splits: dict[str, pd.DataFrame], files: dict[str, Path] | None = None) -> str:
    """The same rows in the same splits give the same id, whatever file (or dtype) they came from."""
    h = hashlib.sha256()
    for name in BATCH_SPLITS:
        digest = _digest(files[name], splits[name]) if files else content_hash(splits[name])
        h.update(f"{name}:{digest}\n".encode())
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
        columns = content_columns(df)
        content = df[columns[0]] if len(columns) == 1 else df[columns].astype(str).agg("\t".join, axis=1)
        key = pd.util.hash_pandas_object(content, index=False, hash_key=f"{seed:016d}"[:16]).to_numpy()
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
        digests = {}
        for split in BATCH_SPLITS:
            table = splits[split]  # texts; or images: their paths (copies in root/images) and file hashes
            kept = table[[c for c in table.columns if c not in ("line", "batch")]]
            kept.to_parquet(tmp / f"{split}.parquet", index=False)
            digests[split] = content_hash(kept)
        write_json(tmp / "batch.json", {**record, "sha256": digests})  # what reading it checks
        if (batches / name).exists():  # a folder a crash left before the pointer listed it
            shutil.rmtree(batches / name)
        os.rename(tmp, batches / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sweep(root: Path, pointer: dict) -> list[str]:
    """Remove the batch folders this memory made that its pointer no longer lists (dropped, resampled, or left
    by a crash), then the stored images no listed folder names. A folder of a batch the memory's history never
    added is not its own to remove: it stays (a person put it there, or restored it)."""
    batches = root / "batches"
    listed = set(pointer["folders"].values())
    ours = {h.get("added") for h in pointer.get("history", []) if isinstance(h, dict)} | set(pointer["batches"])
    gone = []
    for p in (batches.iterdir() if batches.is_dir() else []):
        temp = p.name.startswith(".")  # a folder assembled under a temp name by a killed run
        if p.name not in listed and (temp or p.name.split(".v")[0] in ours):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
        elif p.name not in listed:
            log.warning("data memory %s: %s is no batch this memory added; left as it is", root, p)
    store = root / IMAGES
    if store.is_dir():
        kept = {Path(p).name for name in listed for split in BATCH_SPLITS
                for p in pd.read_parquet(batches / name / f"{split}.parquet", columns=["path"])["path"]}
        for f in store.glob("*/*"):
            if f.name not in kept:  # also a temp copy a crash left
                f.unlink(missing_ok=True)
    return sorted(gone)


# ---- files (images): kept in the memory, by content -------------------------------------------------

IMAGES = "images"  # where a modality whose rows are files (path, sha256) has them copied


def store_files(root: str | Path, splits: dict[str, pd.DataFrame], readable: Callable[[str], str],
                 recorded: Callable[[str], str]) -> dict[str, pd.DataFrame]:
    """Copy every file (image) the splits list into root/images/<ab>/<sha256><suffix> (once per content) and return
    the splits pointing at the copies. readable(path) is where a split's path can be read now; recorded(path)
    is how the records keep a stored copy's path (project-relative). An image whose bytes no longer match the
    hash prepare recorded (it changed since) stops here, naming the file, before the memory changes."""
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


def _check_writable(root: Path) -> None:
    """Create and remove a file where the pointer and the batch folders go: PermissionError now, not half-way."""
    for folder in (root, root / "batches"):
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)


def add_batch(root: str | Path, splits: dict[str, pd.DataFrame], source: dict, cfg: MemoryConfig) -> dict:
    """Add one validated batch (its train/val/test splits) and apply the keep policy. Returns what happened."""
    root = Path(root)
    current = state(root)
    batch = batch_id(splits)
    if batch in current["batches"]:
        return {"added": False, "batch": batch, "version": current["version"], "batches": current["batches"],
                "reason": f"batch {batch} is already in the memory (same rows): not added twice"}
    _check_writable(root)  # a read-only memory fails here, before a batch folder is written
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
        now_folders = {**current, "folders": folders}
        trains = {b: batch_split(root, b, "train", now_folders) for b in kept}
        for b, sampled in _reservoir(trains, cfg.reservoir_per_class, cfg.seed).items():
            if len(sampled) != len(trains[b]):
                old = root / "batches" / folders[b]
                rec = _record(old)
                others = {n: batch_split(root, b, n, now_folders) for n in ("val", "test")}
                folders[b] = f"{b}.v{version}"
                _write_batch(root, folders[b], {"train": sampled, **others},
                             {**rec, "rows": {**rec["rows"], "train": len(sampled)}})
    pointer = {"version": version, "keep": cfg.keep, "batches": kept, "folders": {b: folders[b] for b in kept},
               "history": [*current.get("history", []),
                           {"version": version, "at": now, "added": batch, "dropped": dropped}]}
    write_json(root / POINTER, pointer, fsync=True)  # the switch: before it, the old memory; after, the new
    _sweep(root, pointer)
    return {"added": True, "batch": batch, "version": version, "batches": kept, "dropped": dropped}


# ---- repair -----------------------------------------------------------------------------------------

def repair(root: str | Path, cfg: MemoryConfig, recorded_versions: list[int] = ()) -> dict:
    """Rebuild a missing or broken memory.json from the batch folders (as `registry repair` does for the
    registry's pointer): every folder with a batch.json whose splits match their recorded digests, the newest
    folder of each batch (id.vN, resampled, over id), oldest batch first. The version continues above every
    version a champion recorded (`recorded_versions`), so no champion looks newer than the memory. A broken
    pointer is kept beside it for a person to read; a sound one is left alone."""
    root = Path(root)
    try:
        sound = state(root)
    except MemoryStateError:
        sound = None
    else:
        if (root / POINTER).is_file():
            raise DataError(f"data memory {root}: {POINTER} is sound (version {sound['version']}, "
                            f"{len(sound['batches'])} batches); nothing to repair")
    newest: dict[str, Path] = {}
    for where in _batch_folders(root):
        batch, _, v = where.name.partition(".v")
        if batch not in newest or int(v or 0) > int(newest[batch].name.partition(".v")[2] or 0):
            newest[batch] = where
    kept, skipped = [], []
    for batch, where in newest.items():
        try:
            probe = {"version": 0, "batches": [batch], "folders": {batch: where.name}}
            for split in BATCH_SPLITS:
                batch_split(root, batch, split, probe)
            kept.append((_record(where).get("added_at") or "", batch, where.name))
        except MemoryStateError as err:
            skipped.append(f"{where.name}: {err}")
    if not kept:
        raise DataError(f"data memory {root}: no batch folder with a sound batch.json and splits; nothing to rebuild "
                        f"the pointer from" + (f" ({'; '.join(skipped)})" if skipped else ""))
    kept.sort()
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    version = max([len(kept), *recorded_versions]) + 1
    broken = root / POINTER
    moved = None
    if broken.exists():
        moved = root / f"{POINTER}.broken-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S')}"
        os.replace(broken, moved)
    pointer = {"version": version, "keep": cfg.keep, "batches": [b for _, b, _ in kept],
               "folders": {b: f for _, b, f in kept},
               "history": [*({"version": None, "at": at, "added": b, "dropped": []} for at, b, _ in kept),
                           {"version": version, "at": now, "repaired": f"rebuilt from {len(kept)} batch folders"}]}
    write_json(root / POINTER, pointer, fsync=True)
    return {"version": version, "batches": pointer["batches"], "skipped": skipped,
            "broken_pointer_kept_as": moved and moved.name}
