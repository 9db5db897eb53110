"""Replay against forgetting: spread over past batches and labels; every remembered row when labels are new."""

from __future__ import annotations

import pandas as pd

from driftfit.config import StrategyConfig, TrainConfig
from driftfit.policy.rules import select_strategy
from driftfit.training.replay import replay_sample, training_frame
from tests.test_strategy import report


def memory_rows() -> pd.DataFrame:
    """An old batch of 100 rows of one label, a recent one of 10 + 10 rows of two labels."""
    old = pd.DataFrame({"text": [f"old {i}" for i in range(100)], "label": "x", "batch": "b1"})
    recent = pd.DataFrame({"text": [f"new {i}" for i in range(20)], "label": ["x"] * 10 + ["y"] * 10,
                           "batch": "b2"})
    return pd.concat([old, recent], ignore_index=True)


def test_replay_is_spread_over_batches_and_labels():
    ref = memory_rows()
    sample = replay_sample(ref, 30, seed=0)
    assert sample.groupby(["batch", "label"]).size().to_dict() == {("b1", "x"): 10, ("b2", "x"): 10, ("b2", "y"): 10}
    # a group that runs out gives its share to the others
    wide = replay_sample(ref, 60, seed=0).groupby(["batch", "label"]).size().to_dict()
    assert wide == {("b1", "x"): 40, ("b2", "x"): 10, ("b2", "y"): 10}
    assert replay_sample(ref, 30, seed=0).equals(sample) and not replay_sample(ref, 30, seed=1).equals(sample)
    assert len(replay_sample(ref, 500, seed=0)) == len(ref)


def test_replay_all_takes_every_remembered_row():
    incoming = pd.DataFrame({"text": [f"in {i}" for i in range(8)], "label": "z", "augmented": False})
    ref = memory_rows()
    assert len(training_frame(incoming, ref, TrainConfig(replay_fraction=0.5), "ia3")) == 8 + 4
    assert len(training_frame(incoming, ref, TrainConfig(replay_fraction=0.5), "ia3", replay_all=True)) == 8 + 120
    # the head (cached features, seconds to fit) replays the whole memory by default (train.replay_all_for)
    assert len(training_frame(incoming, ref, TrainConfig(replay_fraction=0.5), "head")) == 8 + 120


def test_new_labels_next_to_a_champion_replay_everything():
    new = report(**{"label_shift.new_labels": ["Sports"], "champion.uncovered_labels": ["Sports"]})
    d = select_strategy(new, StrategyConfig(), champion_exists=True)
    assert d["replay"] == "all" and "replays every remembered row" in d["reason"]
    assert select_strategy(new, StrategyConfig(replay_all_on_new_labels=False), True)["replay"] == "fraction"
    assert select_strategy(new, StrategyConfig(), champion_exists=False)["replay"] == "fraction"  # nothing to keep
    assert select_strategy(report(), StrategyConfig(), champion_exists=True)["replay"] == "fraction"


def test_the_head_chooses_its_regularisation_on_held_out_replayed_rows_too():
    from driftfit.training.head_fit import REPLAY_HOLDOUT, replay_holdout

    incoming = pd.DataFrame({"text": [f"new {i}" for i in range(10)], "label": ["x", "y"] * 5})
    ref = pd.DataFrame({"text": [f"old {i}" for i in range(100)], "label": ["x"] * 60 + ["y"] * 40,
                        "batch": ["b1"] * 100})
    frame = training_frame(incoming, ref, TrainConfig(), "head")
    held = replay_holdout(frame, seed=3)
    assert not held[:10].any()                                   # the new batch's rows are never held out
    assert frame[held]["label"].value_counts().to_dict() == {"x": int(60 * REPLAY_HOLDOUT), "y": int(40 * REPLAY_HOLDOUT)}
    assert (replay_holdout(frame, seed=3) == held).all()         # seeded
    assert not replay_holdout(incoming, seed=3).any()            # nothing replayed: validation alone chooses
