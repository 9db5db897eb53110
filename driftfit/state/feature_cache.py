"""A disk cache of per-text features, so a text a frozen model has already read is not read again.

Week after week the shift step embeds a sample of the data memory with the pretrained encoder and scores
the champion on its own test data; the head strategy embeds every replayed row. Those texts and models
rarely change, so their features are kept under `paths.cache` (not a DVC output: deleting it changes
no result, only the time), one folder per model identity:

    <cache>/<namespace hash>/namespace.txt      what the rows are (model, weights digest, max_len, kind)
    <cache>/<namespace hash>/<random>.npz       shards: keys (blake2b-128 of each text), rows (float32);
                                                at most MAX_SHARDS: past that they are merged into one

A shard is written whole under a temp name and renamed into place, so concurrent runs never see half a
shard and never overwrite each other's. Rows come back as computed; a cached row was computed in another
padding batch than a fresh one would be, which moves it by float rounding (~1e-7), not more.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

Compute = Callable[[list[str]], np.ndarray]


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def file_digest(*paths: str | Path) -> str:
    """A short digest of files' contents (a model's weights): the cache namespace changes when they do."""
    h = hashlib.blake2b(digest_size=12)
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


MAX_SHARDS = 16  # more shards than this are merged into one when the next is written (a week adds one)


class FeatureCache:
    """Rows for texts under one namespace; `rows(texts, compute)` computes only the texts it lacks.

    Opening reads only the shards' keys (16 bytes a text, against 1.5 kB for a 384-wide row); a shard's rows
    are read the first time one of its texts is asked for. Shards past MAX_SHARDS are merged, so a cache kept
    for years opens in one read per shard, a bounded number."""

    def __init__(self, root: str | Path, namespace: str):
        self.folder = Path(root) / hashlib.blake2b(namespace.encode(), digest_size=8).hexdigest()
        self.namespace = namespace
        self._where: dict[bytes, tuple[Path, int]] = {}  # key -> (shard, row in it)
        self._loaded: dict[Path, np.ndarray] = {}        # shards whose rows were read (or just written)
        for shard in self._shards():
            keys = self._keys(shard)
            if keys is not None:
                self._where.update((k, (shard, i)) for i, k in enumerate(keys))

    def __len__(self) -> int:
        return len(self._where)

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []

    @staticmethod
    def _keys(shard: Path) -> list[bytes] | None:
        try:
            with np.load(shard, allow_pickle=False) as z:  # an npz member is read only when asked for
                return [bytes(k) for k in z["keys"]]
        except (OSError, ValueError, KeyError) as err:  # a damaged shard is only lost time
            log.warning("feature cache: ignoring unreadable shard %s (%s)", shard, err)
            return None

    def _shard_rows(self, shard: Path) -> np.ndarray | None:
        if shard not in self._loaded:
            try:
                with np.load(shard, allow_pickle=False) as z:
                    self._loaded[shard] = z["rows"]
            except (OSError, ValueError, KeyError) as err:  # damaged, or merged away by another run
                log.warning("feature cache: shard %s unreadable now (%s); its texts are computed again", shard, err)
                return None
        return self._loaded[shard]

    def _lookup(self, key: bytes) -> np.ndarray | None:
        where = self._where.get(key)
        if where is None:
            return None
        rows = self._shard_rows(where[0])
        if rows is None:
            self._where = {k: w for k, w in self._where.items() if w[0] != where[0]}
            return None
        return rows[where[1]]

    def rows(self, texts: Sequence[str], compute: Compute) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        found = {k: r for k in dict.fromkeys(keys) if (r := self._lookup(k)) is not None}
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing:
            first = {k: t for k, t in zip(reversed(keys), reversed(list(texts)))}  # one text per key
            fresh = np.asarray(compute([first[k] for k in missing]), dtype=np.float32)
            found.update(zip(missing, fresh))
            self._write(missing, fresh)
        if not keys:
            return compute([])
        return np.stack([found[k] for k in keys])

    def _write(self, keys: list[bytes], rows: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        label = self.folder / "namespace.txt"
        if not label.is_file():
            label.write_text(self.namespace + "\n", encoding="utf-8")
        shard = self._write_shard(keys, rows)
        self._where.update((k, (shard, i)) for i, k in enumerate(keys))
        self._loaded[shard] = rows
        if len(self._shards()) > MAX_SHARDS:
            self._merge()

    def _write_shard(self, keys: list[bytes], rows: np.ndarray) -> Path:
        fd, tmp = tempfile.mkstemp(prefix=".shard-", suffix=".part", dir=self.folder)  # not *.npz: never read
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1), rows=rows)
            shard = self.folder / (Path(tmp).name[len(".shard-"):-len(".part")] + ".npz")
            os.replace(tmp, shard)
            return shard
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _merge(self) -> None:
        """Every readable shard into one new shard, written whole before the old ones are removed (a run
        reading an old one meanwhile computes those texts again: time, not a wrong row)."""
        old = self._shards()
        kept: dict[bytes, np.ndarray] = {}
        for shard in old:
            shard_keys, shard_rows = self._keys(shard), self._shard_rows(shard)
            if shard_keys is not None and shard_rows is not None:
                for k, r in zip(shard_keys, shard_rows):
                    kept.setdefault(k, r)
        if not kept:
            return
        keys, rows = list(kept), np.stack(list(kept.values()))
        merged = self._write_shard(keys, rows)
        for shard in old:
            shard.unlink(missing_ok=True)
            self._loaded.pop(shard, None)
        self._where = {k: (merged, i) for i, k in enumerate(keys)}
        self._loaded[merged] = rows
        log.info("feature cache: merged %d shards into %s (%d texts)", len(old), merged.name, len(keys))


def cached(root: str | Path | None, namespace: str, compute: Compute) -> Compute:
    """`compute`, memoised on disk under `root` (None: not cached)."""
    if root is None:
        return compute
    cache = FeatureCache(root, namespace)
    return lambda texts: cache.rows(list(texts), compute)
