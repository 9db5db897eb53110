"""Every strategy really trains (a couple of steps, real MiniLM) and saves a model that loads and predicts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from driftfit import augment, train
from driftfit.config import STRATEGIES, TrainConfig
from driftfit.prepare import read_split
from driftfit.io import read_json, write_json
from driftfit.model import load_classifier, load_tokenizer, predict_proba
from driftfit.strategy_model import build_model, make_optimizer
from driftfit.train import settle_scratch_tokenizer, training_frame, wants_new_tokenizer
from driftfit.zero_shot import label_text, zero_shot_classifier

TRAINED = [s for s in STRATEGIES if s != "skip"]


def _run(params, strategy: str, progress=None) -> dict:
    augment.run(params)
    write_json(params.paths.decision, {"strategy": strategy, "reason": "test"})
    return train.run(params, progress=progress)


@pytest.mark.parametrize("strategy", TRAINED)
def test_strategy_trains_saves_and_loads(prepared_params, strategy):
    params = prepared_params
    calls = []
    log = _run(params, strategy, progress=lambda step, total, logs: calls.append((step, total)))
    assert log["trained"] and log["strategy"] == strategy
    if strategy == "zero_shot":
        assert log["steps"] == 0 and log["trainable_params"] == 0 and not calls
    else:
        assert log["steps"] == 2 and log["train_loss"] > 0 and 0 < log["trainable_params"] <= log["total_params"]
        assert (2, 2) in calls and all(total == 2 for _, total in calls)  # the progress hook saw both steps
    model_dir = Path(params.paths.candidate)
    saved = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}
    assert "encoder/model.safetensors" in saved and not any(f.endswith((".bin", ".pt", ".pth")) for f in saved)
    assert not train.checkpoint_dir(params).exists()  # no checkpoints unless asked for

    # evaluate's path: load without knowing the strategy, predict, and get what training measured
    model, tokenizer, labels = load_classifier(model_dir, params.model.trust_remote_code)
    assert labels == log["labels"] and model.head.out_features == len(labels)
    val = read_split(params.paths.prepared, "val")
    probs = predict_proba(model, tokenizer, list(val["text"]), params.model.max_seq_len, 32, torch.device("cpu"))
    assert probs.shape == (len(val), len(labels)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    accuracy = float((np.array(labels)[probs.argmax(1)] == val["label"].to_numpy()).mean())
    assert accuracy == pytest.approx(log["val_accuracy"])
    assert read_json(model_dir / "train_log.json")["strategy"] == strategy


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_trainable_parts_match_the_strategy(prepared_params):
    p = prepared_params
    head = {"head.weight", "head.bias"}
    assert _trainable(build_model("head", p, 3)) == head
    partial = build_model("partial", p, 3)
    frozen = {n for n, q in partial.named_parameters() if not q.requires_grad}
    assert any("embeddings" in n for n in frozen)
    assert any(".layer.0." in n for n in frozen) and not any(".layer.5." in n for n in frozen)
    marks = {"lora": "lora_", "ia3": "ia3_", "prefix": "prompt_encoder", "prompt": "prompt_encoder",
             "ptuning": "prompt_encoder", "adapter": "adapters."}
    for strategy, mark in marks.items():
        trainable = _trainable(build_model(strategy, p, 3))
        assert head <= trainable and all(mark in n for n in trainable - head), strategy
        assert len(trainable) > 2, strategy
    ptuning = _trainable(build_model("ptuning", p, 3))
    assert any("mlp_head" in n for n in ptuning)  # the virtual tokens come from an MLP
    full = build_model("full", p, 3)
    assert all(q.requires_grad for q in full.parameters())


def test_adapters_start_as_identity(prepared_params):
    p = prepared_params
    plain, adapted = build_model("head", p, 2), build_model("adapter", p, 2)
    adapted.head.load_state_dict(plain.head.state_dict())
    assert all(a.down.out_features == p.train.adapter_size for a in adapted.adapters)
    tok = load_tokenizer(p.model)
    enc = tok(["the adapters change nothing yet", "hello"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(plain.eval()(**enc).logits, adapted.eval()(**enc).logits, atol=1e-6)


@pytest.mark.parametrize("strategy", ["lora", "ia3"])
def test_merged_adapters_compute_what_the_unmerged_did(make_params, strategy):
    params = make_params()
    model = build_model(strategy, params, 3).eval()
    enc = load_tokenizer(params.model)(["merge me", "a second, longer text"], padding=True, return_tensors="pt")
    with torch.no_grad():
        for name, p in model.named_parameters():  # move the adapters away from their identity start
            if p.requires_grad and not name.startswith("head."):
                p.add_(0.1 * torch.randn_like(p))
        before = model(**enc).logits
        model.encoder = model.encoder.merge_and_unload()
        assert torch.allclose(model(**enc).logits, before, atol=1e-5)
    assert not any("lora_" in n or "ia3_" in n for n, _ in model.named_parameters())


@pytest.mark.parametrize("strategy", ["ia3", "prefix", "prompt", "ptuning", "adapter"])
def test_new_strategies_lower_the_loss(make_params, strategy):
    """A few optimiser steps on one tiny batch: the loss (measured without dropout) goes down."""
    params = make_params()
    torch.manual_seed(0)
    model = build_model(strategy, params, 2)
    tok = load_tokenizer(params.model)
    texts = ["the match ended with a late goal", "stir the onions and add garlic",
             "the team won the league", "bake the bread for twenty minutes"]
    batch = {**tok(texts, padding=True, return_tensors="pt"), "labels": torch.tensor([0, 1, 0, 1])}
    opt = make_optimizer(model, strategy, params.train, torch.device("cpu"))

    def loss() -> float:
        with torch.no_grad():
            return float(model.eval()(**batch).loss)

    before = loss()
    for _ in range(5):
        model.train()
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    assert loss() < before


def test_zero_shot_picks_the_label_named_like_the_text(make_params):
    params = make_params()
    assert label_text("small_talk-chat") == "small talk chat"
    labels = ["cooking", "sports"]
    model = zero_shot_classifier(params, labels)
    assert torch.allclose(model.head.weight.norm(dim=1), torch.ones(2), atol=1e-5)
    texts = ["the football match ended in a draw", "she scored three goals in the final",
             "the tennis champion won the tournament", "our team lost the basketball game",
             "simmer the sauce and stir in the butter", "bake the cake in the oven for an hour",
             "chop the onions and fry them in olive oil", "season the soup with salt and pepper"]
    truth = ["sports"] * 4 + ["cooking"] * 4
    probs = predict_proba(model, load_tokenizer(params.model), texts, 32, 8, torch.device("cpu"))
    accuracy = float((np.array(labels)[probs.argmax(1)] == np.array(truth)).mean())
    assert accuracy >= 0.75  # chance is 0.5


def test_scratch_trains_a_new_tokenizer(prepared_params, make_params):
    params = make_params({"train.scratch_tokenizer": "new", "train.scratch_vocab_size": 300})
    log = _run(params, "scratch")
    model, tokenizer, _ = load_classifier(params.paths.candidate)
    assert len(tokenizer) == 300 and log["tokenizer"] == "new (300 tokens)"
    assert model.encoder.get_input_embeddings().num_embeddings == 300
    assert tokenizer.pad_token_id == model.encoder.config.pad_token_id


def test_scratch_tokenizer_auto_follows_the_shift_report(make_params):
    params = make_params()
    assert params.train.scratch_tokenizer == "auto"
    assert not wants_new_tokenizer(settle_scratch_tokenizer(params, None))  # no report: keep the pretrained one
    assert not wants_new_tokenizer(params)  # an unsettled 'auto' reads nothing and keeps it too
    fits = {"good": {"unk_rate": 0.0, "tokens_per_word": 1.2}, "unk": {"unk_rate": 0.5, "tokens_per_word": 1.2},
            "fragmented": {"unk_rate": 0.0, "tokens_per_word": 4.0}}
    for name, fit in fits.items():
        settled = settle_scratch_tokenizer(params, {"tokenizer": {"incoming": fit}})
        assert settled.train.scratch_tokenizer == ("keep" if name == "good" else "new"), name
        assert wants_new_tokenizer(settled) == (name != "good"), name
    keep = make_params({"train.scratch_tokenizer": "keep"})
    assert not wants_new_tokenizer(settle_scratch_tokenizer(keep, {"tokenizer": {"incoming": fits["unk"]}}))


def test_l1_penalty_adds_to_the_loss(prepared_params, make_params, tmp_path):
    from transformers import TrainingArguments

    params = make_params({"train.l1": 0.1})
    model = build_model("head", params, 2)
    tok = load_tokenizer(params.model)
    batch = {**tok(["a goal in the last minute", "add salt to taste"], padding=True, return_tensors="pt"),
             "labels": torch.tensor([0, 1])}
    args = TrainingArguments(output_dir=str(tmp_path / "t"), use_cpu=True, report_to="none")
    trainer = train._trainer_class()(model=model.eval(), args=args)
    trainer.l1 = params.train.l1
    with torch.no_grad():
        penalty = 0.1 * float(model.head.weight.abs().sum())  # weight matrices only, not the bias
        assert float(trainer.compute_loss(model, dict(batch))) == pytest.approx(float(model(**batch).loss) + penalty)
    # and train.run uses it: cross-entropy alone stays near ln(labels) (2.9 here), the penalty adds ~19
    log = _run(params, "head")
    assert log["train_loss"] > 3 * np.log(len(log["labels"]))


def test_layer_lr_decay_lowers_the_lower_layers(make_params):
    params = make_params({"train.layer_lr_decay": 0.5})
    cfg = params.train
    for strategy in ("full", "partial"):
        model = build_model(strategy, params, 3)
        opt = make_optimizer(model, strategy, cfg, torch.device("cpu"))
        lr_of = {id(q): g["lr"] for g in opt.param_groups for q in g["params"]}
        lr = {n: lr_of[id(q)] for n, q in model.named_parameters() if q.requires_grad}
        by_layer = [lr[f"encoder.encoder.layer.{i}.output.dense.weight"] for i in range(6)
                    if f"encoder.encoder.layer.{i}.output.dense.weight" in lr]
        assert by_layer == sorted(by_layer) and len(set(by_layer)) == len(by_layer) > 1, strategy
        assert by_layer[-1] == pytest.approx(cfg.learning_rate)
        assert lr["head.weight"] == cfg.head_learning_rate
    full = build_model("full", params, 3)
    opt = make_optimizer(full, "full", cfg, torch.device("cpu"))
    lr_of = {id(q): g["lr"] for g in opt.param_groups for q in g["params"]}
    emb = lr_of[id(full.encoder.embeddings.word_embeddings.weight)]
    assert emb == pytest.approx(cfg.learning_rate * 0.5 ** 6)  # below layer 0 (0.5 ** 5)


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
    inc = pd.DataFrame({"text": list("abcd"), "label": ["x"] * 4, "augmented": [False, False, True, True]})
    ref = pd.DataFrame({"text": list("pqrs"), "label": ["y"] * 4})
    out = training_frame(inc, ref, TrainConfig(replay_fraction=0.5))
    assert len(out) == 5 and (out["label"] == "y").sum() == 1
    # the strategies in replay_all_for train on every reference row (the whole memory window); others do not
    cfg = TrainConfig(replay_fraction=0.0, replay_all_for=["full", "scratch"])
    assert (training_frame(inc, ref, cfg, "full")["label"] == "y").sum() == 4
    assert (training_frame(inc, ref, cfg, "ia3")["label"] == "y").sum() == 0


def test_memory_and_speed_switches_train(prepared_params):
    """Gradient checkpointing and the automatic batch size are real Trainer paths (CPU here)."""
    from driftfit.prepare import read_split
    from driftfit.train import train_model

    params = prepared_params.model_copy(update={"train": prepared_params.train.model_copy(
        update={"gradient_checkpointing": True, "auto_batch_size": True, "max_steps": 2})})
    train, val = read_split(params.paths.prepared, "train"), read_split(params.paths.prepared, "val")
    log = train_model(train, val, "full", params, Path(params.paths.candidate))
    assert log["steps"] == 2 and log["train_loss"] > 0
