"""Every strategy really trains (a couple of steps, real MiniLM) and saves a loadable safetensors model."""

import pandas as pd
import pytest
import torch

from driftfit import augment, train
from driftfit.io import read_json, write_json
from driftfit.model import load_classifier
from driftfit.train import build_model, training_frame


@pytest.mark.parametrize("strategy", ["head", "partial", "lora", "full", "scratch"])
def test_strategy_trains_and_saves(prepared_params, strategy):
    params = prepared_params
    augment.run(params)
    write_json(params.paths.decision, {"strategy": strategy, "reason": "test"})
    log = train.run(params)
    assert log["trained"] and log["strategy"] == strategy and log["steps"] == 2
    assert log["train_loss"] > 0
    model_dir = params.paths.candidate
    files = {p.name for p in __import__("pathlib").Path(model_dir, "encoder").iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    model, tokenizer, labels = load_classifier(model_dir)
    assert labels == log["labels"] and model.head.out_features == len(labels)
    assert read_json(f"{model_dir}/train_log.json")["strategy"] == strategy


def test_frozen_parts_match_the_strategy(prepared_params):
    p = prepared_params
    head = build_model("head", p, 3)
    assert {n for n, q in head.named_parameters() if q.requires_grad} == {"head.weight", "head.bias"}
    partial = build_model("partial", p, 3)
    frozen = {n for n, q in partial.named_parameters() if not q.requires_grad}
    assert any("embeddings" in n for n in frozen)
    assert any(".layer.0." in n for n in frozen) and not any(".layer.5." in n for n in frozen)
    lora = build_model("lora", p, 3)
    trainable = [n for n, q in lora.named_parameters() if q.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)


def test_scratch_weights_are_fresh(prepared_params):
    pretrained = build_model("full", prepared_params, 3)
    scratch = build_model("scratch", prepared_params, 3)
    a = dict(pretrained.named_parameters())
    b = dict(scratch.named_parameters())
    name = next(n for n in a if "attention.self.query.weight" in n)
    assert not torch.allclose(a[name], b[name])


def test_skip_trains_nothing(prepared_params):
    augment.run(prepared_params)
    write_json(prepared_params.paths.decision, {"strategy": "skip", "reason": "no shift"})
    log = train.run(prepared_params)
    assert log == {"strategy": "skip", "reason": "no shift", "trained": False}


def test_replay_mixes_in_reference_rows():
    from driftfit.config import TrainConfig

    inc = pd.DataFrame({"text": list("abcd"), "label": ["x"] * 4, "augmented": [False, False, True, True]})
    ref = pd.DataFrame({"text": list("pqrs"), "label": ["y"] * 4})
    out = training_frame(inc, ref, TrainConfig(replay_fraction=0.5))
    assert len(out) == 5 and (out["label"] == "y").sum() == 1
