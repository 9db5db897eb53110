"""Augment the training split only: seeded word-level noise, augmented rows marked.

Validation and test splits are never read here, so they cannot be changed by augmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import AugmentConfig, Params
from driftfit.data import read_split
from driftfit.io import atomic_dir, write_json


def word_dropout(words: list[str], p: float, rng: np.random.Generator) -> list[str]:
    """Drop each word with chance p; never return an empty text."""
    if p <= 0 or len(words) < 2:
        return words
    kept = [w for w in words if rng.random() >= p]
    return kept or [words[int(rng.integers(len(words)))]]


def word_swap(words: list[str], p: float, rng: np.random.Generator) -> list[str]:
    """Swap each word with its right neighbour with chance p."""
    words = list(words)
    for i in range(len(words) - 1):
        if rng.random() < p:
            words[i], words[i + 1] = words[i + 1], words[i]
    return words


def augment_frame(train: pd.DataFrame, cfg: AugmentConfig) -> pd.DataFrame:
    """Original rows (augmented=False) followed by `cfg.copies` noisy copies of each (augmented=True)."""
    out = train[["text", "label"]].assign(augmented=False)
    if not cfg.enabled or cfg.copies == 0:
        return out.reset_index(drop=True)
    rng = np.random.default_rng(cfg.seed)
    rows = []
    for _ in range(cfg.copies):
        for text, label in zip(train["text"], train["label"]):
            words = str(text).split()
            new = " ".join(word_swap(word_dropout(words, cfg.word_dropout, rng), cfg.word_swap, rng))
            if new and new != text:  # an unchanged copy adds nothing but weight
                rows.append((new, label, True))
    extra = pd.DataFrame(rows, columns=["text", "label", "augmented"])
    return pd.concat([out, extra], ignore_index=True)


def run(params: Params) -> dict:
    train = read_split(params.paths.prepared, "train")
    if train is None:
        raise FileNotFoundError(f"{Path(params.paths.prepared) / 'train.parquet'} is missing: run 'driftfit prepare' first")
    augmented = augment_frame(train, params.augment)
    summary = {"original_rows": len(train), "augmented_rows": int(augmented["augmented"].sum()),
               "total_rows": len(augmented)}
    with atomic_dir(params.paths.augmented) as tmp:
        augmented.to_parquet(tmp / "train.parquet", index=False)
        write_json(tmp / "summary.json", summary)
    return summary
