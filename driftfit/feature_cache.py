"""A disk cache of per-text features, so a text a frozen model has already read is not read again.

Week after week the shift step embeds a sample of the data memory with the pretrained encoder and scores
the champion on its own test data; the head strategy embeds every replayed row. Those texts and models
rarely change, so their features are kept under `paths.cache` (not a DVC output: deleting it changes
no result, only the time), one folder per model identity:

    <cache>/<namespace hash>/namespace.txt      what the rows are (model, weights digest, max_len, kind)
    <cache>/<namespace hash>/<random>.npz       shards: keys (blake2b-128 of each text), rows (float32)

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


class FeatureCache:
    """Rows for texts under one namespace; `rows(texts, compute)` computes only the texts it lacks."""

    def __init__(self, root: str | Path, namespace: str):
        self.folder = Path(root) / hashlib.blake2b(namespace.encode(), digest_size=8).hexdigest()
        self.namespace = namespace
        self._rows: dict[bytes, np.ndarray] = {}
        if self.folder.is_dir():
            for shard in sorted(self.folder.glob("*.npz")):
                try:
                    with np.load(shard, allow_pickle=False) as z:
                        self._rows.update(zip((bytes(k) for k in z["keys"]), z["rows"]))
                except (OSError, ValueError, KeyError) as err:  # a damaged shard is only lost time
                    log.warning("feature cache: ignoring unreadable shard %s (%s)", shard, err)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, texts: Sequence[str], compute: Compute) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        if missing:
            first = {k: t for k, t in zip(reversed(keys), reversed(list(texts)))}  # one text per key
            fresh = np.asarray(compute([first[k] for k in missing]), dtype=np.float32)
            self._rows.update(zip(missing, fresh))
            self._write(missing, fresh)
        if not keys:
            return compute([])
        return np.stack([self._rows[k] for k in keys])

    def _write(self, keys: list[bytes], rows: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        label = self.folder / "namespace.txt"
        if not label.is_file():
            label.write_text(self.namespace + "\n", encoding="utf-8")
        fd, tmp = tempfile.mkstemp(prefix=".shard-", suffix=".part", dir=self.folder)  # not *.npz: never read
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1), rows=rows)
            os.replace(tmp, self.folder / (Path(tmp).name[len(".shard-"):-len(".part")] + ".npz"))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def cached(root: str | Path | None, namespace: str, compute: Compute) -> Compute:
    """`compute`, memoised on disk under `root` (None: not cached)."""
    if root is None:
        return compute
    cache = FeatureCache(root, namespace)
    return lambda texts: cache.rows(list(texts), compute)
