"""Augmentation: every method seeded and marked, training split only (val/test byte-identical)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from driftfit.pipeline import runner
from driftfit.modalities.text import augment
from driftfit.modalities.text.augment import (augment_frame, char_noise, embedding_neighbours, method_counts, synonym,
                              word_dropout, word_insert, word_swap)
from driftfit.config import AugmentConfig, ModelConfig

TRAIN = pd.DataFrame({"text": ["The battery life is great and the sound is good", "Terrible headset, broke in a week",
                               "Works fine for the price", "Cheap plastic but the phone fits well"],
                      "label": ["pos", "neg", "pos", "pos"]})
WORDS = "the quick brown fox jumps over the lazy dog".split()


def rng(seed=0):
    return np.random.default_rng(seed)


def test_word_methods():
    assert word_dropout(WORDS, 0.0, rng()) == WORDS and word_dropout(["one"], 0.9, rng()) == ["one"]
    assert 0 < len(word_dropout(WORDS, 0.99, rng())) < len(WORDS)
    assert sorted(word_swap(WORDS, 0.5, rng())) == sorted(WORDS)
    inserted = word_insert(WORDS, 0.5, rng())
    assert len(inserted) > len(WORDS) and set(inserted) == set(WORDS)
    noisy = char_noise(WORDS, 1.0, rng())
    assert noisy != WORDS and all(abs(len(a) - len(b)) <= 1 for a, b in zip(noisy, WORDS))


@pytest.fixture(scope="module")
def neighbours():
    return embedding_neighbours(ModelConfig())


def test_embedding_neighbours_come_from_the_model(neighbours):
    assert "excellent" in neighbours("great") or "excellent" in neighbours("good")
    assert neighbours("phone")[0] != "phone" and len(neighbours("phone")) == augment.NEIGHBOURS
    assert neighbours("qwxzv") == []  # not a whole word of the vocabulary: left alone
    assert embedding_neighbours(ModelConfig()) is neighbours  # cached per process
    out = synonym(["Great", "sound!"], 1.0, rng(), neighbours)
    assert out[0] != "Great" and out[0][0].isupper() and out[1].endswith("!")


@pytest.mark.parametrize("method", ["word_dropout", "word_swap", "word_insert", "char_noise", "synonym"])
def test_each_method_alone_is_seeded_and_marked(method, neighbours):
    cfg = AugmentConfig(**{"word_dropout": 0.0, "word_swap": 0.0, method: 0.5}, copies=2)
    out = augment_frame(TRAIN, cfg, neighbours)
    assert out.equals(augment_frame(TRAIN, cfg, neighbours))  # same seed, same rows
    assert not out.equals(augment_frame(TRAIN, cfg.model_copy(update={"seed": 8}), neighbours))
    added = out[out["augmented"]]
    assert len(added) > 0 and set(added["methods"]) == {method}
    assert out[~out["augmented"]][["text", "label"]].equals(TRAIN)  # originals first, unchanged
    assert method_counts(out)[method] == len(added)


def test_balance_oversamples_the_smaller_classes():
    cfg = AugmentConfig(word_dropout=0.0, word_swap=0.0, balance=True)
    out = augment_frame(TRAIN, cfg)
    assert out["label"].value_counts().to_dict() == {"pos": 3, "neg": 3}
    added = out[out["augmented"]]
    assert set(added["methods"]) == {"balance"} and set(added["text"]) <= set(TRAIN["text"])


def test_disabled_adds_nothing():
    out = augment_frame(TRAIN, AugmentConfig(enabled=False, balance=True, char_noise=0.5))
    assert len(out) == len(TRAIN) and not out["augmented"].any()


def test_run_touches_only_the_training_split(prepared_params):
    params = prepared_params.model_copy(update={"augment": AugmentConfig(
        word_insert=0.1, char_noise=0.1, synonym=0.1, balance=True)})
    prepared = params.paths.prepared

    def digest(name):
        return hashlib.sha256(open(f"{prepared}/{name}.parquet", "rb").read()).hexdigest()

    before = {name: digest(name) for name in ("train", "val", "test", "reference_train", "reference_test")}
    summary = runner("augment")(params)
    assert {name: digest(name) for name in before} == before  # nothing in prepared/ changed, val/test included
    out = pd.read_parquet(f"{params.paths.augmented}/train.parquet")
    assert list(out.columns) == ["text", "label", "augmented", "methods"]
    assert summary["original_rows"] == int((~out["augmented"]).sum()) and summary["total_rows"] == len(out)
    assert set(summary["methods"]) == {"synonym", "word_insert", "word_dropout", "word_swap", "char_noise", "balance"}
    assert summary["methods"]["balance"] > 0 and len(set(summary["labels_after"].values())) == 1
    assert json.loads(open(f"{params.paths.augmented}/summary.json").read()) == summary
