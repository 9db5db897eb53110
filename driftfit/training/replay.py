"""What a candidate trains on: the batch's (augmented) training rows plus a replay of the memory against
forgetting; and the loss weight of each label. Shared by every modality's recipe, probe mode and the search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import Params, TrainConfig
from driftfit.data.splits import read_split
from driftfit.errors import DataError

BOOKKEEPING = ("augmented", "methods", "batch", "line", "sha256", "replayed")  # not what a model reads


def replay_sample(reference: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """n reference rows spread evenly over the past batches and their labels (as evenly as the groups' sizes
    allow): a uniform sample of a long memory would leave an old batch, or a rare label, almost unreplayed."""
    if n >= len(reference):
        return reference
    keys = [c for c in ("batch", "label") if c in reference]
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(idx) for _, idx in sorted(reference.groupby(keys).indices.items())]
    quota = np.zeros(len(groups), dtype=int)
    sizes = np.array([len(g) for g in groups])
    while quota.sum() < n:  # round-robin: one more row from each group that has rows left
        open_ = np.flatnonzero(quota < sizes)
        quota[open_[: n - quota.sum()]] += 1
    rows = np.concatenate([g[:q] for g, q in zip(groups, quota)])
    return reference.iloc[np.sort(rows)]


def training_frame(train: pd.DataFrame, reference: pd.DataFrame | None, cfg: TrainConfig,
                   strategy: str | None = None, replay_all: bool = False) -> pd.DataFrame:
    """Incoming (augmented) rows plus a seeded replay sample of reference rows (the memory's batches, or
    data.reference) against forgetting, spread over past batches and labels; every reference row for the
    strategies in `replay_all_for`, or when the decision asks for it (`replay_all`: new labels). Column
    `replayed` marks the reference rows (the head chooses its regularisation on some of them too)."""
    everything = replay_all or strategy in cfg.replay_all_for
    columns = [c for c in train.columns if c not in BOOKKEEPING]
    incoming = train[columns].assign(replayed=False)
    if reference is None or (cfg.replay_fraction == 0 and not everything):
        return incoming.reset_index(drop=True)
    n_original = int((~train["augmented"]).sum()) if "augmented" in train else len(train)
    n = len(reference) if everything else min(len(reference), int(round(cfg.replay_fraction * n_original)))
    replay = replay_sample(reference, n, cfg.seed)[columns].assign(replayed=True)
    return pd.concat([incoming, replay], ignore_index=True)


def training_inputs(params: Params, modality, strategy: str | None = None,
                    replay_all: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(what to train on, the validation split), as the modality reads rows: the augmented training rows plus
    the reference replay. The one reader of training inputs, for train, probe mode and the search."""
    train_path = Path(params.paths.augmented) / "train.parquet"
    if not train_path.is_file():
        raise DataError(f"'{train_path}' not found (run augment first)")
    train = pd.read_parquet(train_path)
    if len(train) == 0:
        raise DataError(f"{train_path} has no rows; nothing to train on")
    val = read_split(params.paths.prepared, "val", required=True)
    reference = read_split(params.paths.prepared, "reference_train")
    restore = lambda df: None if df is None else modality.restored(params, df)  # noqa: E731
    return training_frame(restore(train), restore(reference), params.train, strategy, replay_all), restore(val)


def class_weights(labels, order) -> list[float]:
    """The loss weight of each label in `order` (each must occur in `labels`): rows / (labels x the label's rows),
    scikit-learn's "balanced", as the head's logistic regression weighs them; text and image fine-tuning use it.
    A week with new labels replays every remembered row, and 8 new rows per class beside 600 old ones would
    otherwise be drowned. Labels in equal numbers all weigh 1."""
    from sklearn.utils.class_weight import compute_class_weight

    return compute_class_weight("balanced", classes=np.asarray(list(order)), y=np.asarray(list(labels))).tolist()
