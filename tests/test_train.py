"""Every strategy really trains (a couple of steps, real MiniLM) and saves a model that loads and predicts;
the head converges (L-BFGS, C chosen on validation); Trainer strategies stop early and keep their best weights."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from driftfit.training import checkpoint_dir
from driftfit.training.replay import class_weights
from driftfit.pipeline import runner
from driftfit.state import candidate
from driftfit.modalities.text import augment
from driftfit.modalities.text import recipe as train
from driftfit.config import STRATEGIES, TrainConfig
from driftfit.strategies import spec
from driftfit.data.splits import read_split
from driftfit.io import read_json, write_json
from driftfit.modalities.text.model import load_classifier, load_tokenizer, predict_proba
from driftfit.modalities.text.build import build_model, make_optimizer
from driftfit.modalities.text.recipe import settle_scratch_tokenizer, wants_new_tokenizer
from driftfit.training.replay import training_frame
from driftfit.modalities.text.zero_shot import label_text, zero_shot_classifier

TRAINED = [s for s in STRATEGIES if s != "skip"]


def _run(params, strategy: str, progress=None) -> dict:
    runner("augment")(params)
    write_json(params.paths.decision, {"strategy": strategy, "reason": "test"})
    return runner("train")(params, progress=progress)


@pytest.mark.parametrize("strategy", TRAINED)
def test_strategy_trains_saves_and_loads(prepared_params, strategy):
    params = prepared_params
    calls = []
    log = _run(params, strategy, progress=lambda step, total, logs: calls.append((step, total)))
    assert log["trained"] and log["strategy"] == strategy
    if strategy == "zero_shot":
        assert log["steps"] == 0 and log["trainable_params"] == 0 and not calls
    elif spec(strategy).fit_on_features:  # the converged head: no Trainer, no steps budget
        fit = log["head_fit"]
        assert fit["converged"] and 0 < log["steps"] == fit["iterations"] and log["train_loss"] > 0
        assert log["trainable_params"] == len(log["labels"]) * (384 + 1) and log["learning_rates"] is None
        # 35 validation rows for 19 labels would be too few to choose C with; the head replays the reference
        # (train.replay_all_for), and a held-out fifth of those rows joins validation: the grid is tried
        grid = fit["c_grid"]
        assert len(grid) > 1 and fit["chosen_c"] in grid and "held-out replayed rows" in fit["chosen_by"]
        assert calls == [(i, len(grid)) for i in range(1, len(grid) + 1)]  # each C reported once
    elif strategy == "contrastive":  # pairs train the encoder (train.max_steps of them), then a converged head
        pairs = log["contrastive"]
        assert pairs["steps"] == 2 and 0 < pairs["same_label"] < pairs["pairs"] and log["head_fit"]["converged"]
        assert log["steps"] == 2 + log["head_fit"]["iterations"] and (2, 2) in calls
        assert log["train_loss"] > 0 and log["trainable_params"] == log["total_params"]  # the encoder moved too
    else:
        assert log["steps"] == 2 and log["train_loss"] > 0 and 0 < log["trainable_params"] <= log["total_params"]
        assert (2, 2) in calls and all(total == 2 for _, total in calls)  # the progress hook saw both steps
        stopping = log["early_stopping"]  # 2 steps stop inside the first epoch: one evaluation, at the end
        assert stopping["enabled"] and [e["step"] for e in stopping["evaluations"]] == [2]
        assert stopping["best"]["accuracy"] == pytest.approx(log["val_accuracy"], abs=1e-6)
    model_dir = Path(params.paths.candidate)
    saved = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}
    assert "encoder/model.safetensors" in saved and not any(f.endswith((".bin", ".pt", ".pth")) for f in saved)
    assert not checkpoint_dir(params.paths.candidate).exists()  # no checkpoints unless asked for

    # evaluate's path: load without knowing the strategy, predict, and get what training measured
    model, tokenizer, labels = load_classifier(model_dir, params.model.trust_remote_code)
    assert labels == log["labels"] and model.head.out_features == len(labels)
    val = read_split(params.paths.prepared, "val")
    probs = predict_proba(model, tokenizer, list(val["text"]), params.model.max_seq_len, 32, torch.device("cpu"))
    assert probs.shape == (len(val), len(labels)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    accuracy = float((np.array(labels)[probs.argmax(1)] == val["label"].to_numpy()).mean())
    assert accuracy == pytest.approx(log["val_accuracy"])
    assert read_json(model_dir / "train_log.json")["strategy"] == strategy
    if strategy == "contrastive":  # the pairs tuned the encoder itself: its saved weights differ from pretrained
        from driftfit.modalities.text.model import load_encoder

        pretrained = load_encoder(params.model).state_dict()
        tuned = model.encoder.state_dict()
        assert any(not torch.equal(tuned[k], w) for k, w in pretrained.items() if k in tuned)


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
    log = _run(params, "adapter")
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


def test_adapters_learn_at_their_own_rate_and_the_head_at_its_own(make_params):
    params = make_params({"train.adapter_learning_rate": 0.003, "train.head_learning_rate": 0.01})
    model = build_model("adapter", params, 3)
    opt = make_optimizer(model, "adapter", params.train, torch.device("cpu"))
    lr_of = {id(q): g["lr"] for g in opt.param_groups for q in g["params"]}
    lr = {n: lr_of[id(q)] for n, q in model.named_parameters() if q.requires_grad}
    assert {lr[n] for n in lr if n.startswith("adapters.")} == {0.003}
    assert {lr[n] for n in lr if n.startswith("head.")} == {0.01}
    assert set(lr) == {n for n in lr if n.startswith(("adapters.", "head."))}  # the encoder stays frozen


def test_scratch_weights_are_fresh(prepared_params):
    pretrained = build_model("full", prepared_params, 3)
    scratch = build_model("scratch", prepared_params, 3)
    a = dict(pretrained.named_parameters())
    b = dict(scratch.named_parameters())
    name = next(n for n in a if "attention.self.query.weight" in n)
    assert not torch.allclose(a[name], b[name])


def test_skip_trains_nothing(prepared_params):
    runner("augment")(prepared_params)
    write_json(prepared_params.paths.decision, {"strategy": "skip", "reason": "no shift"})
    log = runner("train")(prepared_params)
    # for_run binds the record to this run's decision and data, which evaluate and promote check
    assert log == {"strategy": "skip", "reason": "no shift", "trained": False,
                   "for_run": candidate.binding(prepared_params)}
    assert set(log["for_run"]) == {"decision_sha256", "data_sha256"} and all(log["for_run"].values())


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
    from driftfit.data.splits import read_split
    from driftfit.modalities.text.recipe import train_model

    params = prepared_params.model_copy(update={"train": prepared_params.train.model_copy(
        update={"gradient_checkpointing": True, "auto_batch_size": True, "max_steps": 2})})
    train, val = read_split(params.paths.prepared, "train"), read_split(params.paths.prepared, "val")
    log = train_model(train, val, "full", params, Path(params.paths.candidate))
    assert log["steps"] == 2 and log["train_loss"] > 0


# ---- the converged head ---------------------------------------------------------------------

def _topic_toy(per_topic: int, offset: int = 0) -> pd.DataFrame:
    """Short sentences on three topics, each made of that topic's own words: linearly separable features."""
    words = {"sports": (["the striker", "our goalkeeper", "the home team", "the tennis champion", "a young sprinter"],
                        ["scored in the final", "won the league title", "missed a penalty kick", "ran a fast lap"]),
             "cooking": (["the chef", "my grandmother", "the baker", "a home cook", "the pastry chef"],
                         ["chopped the onions", "baked fresh bread", "simmered the tomato sauce", "whisked the eggs"]),
             "weather": (["the forecast", "a cold front", "the storm", "heavy rain", "the morning fog"],
                         ["brought snow overnight", "flooded the valley", "cleared by noon", "turned windy and wet"])}
    rows = []
    for label, (subjects, verbs) in words.items():
        pairs = [(s, v) for v in verbs for s in subjects]
        rows += [{"text": f"{s} {v}", "label": label} for s, v in pairs[offset:offset + per_topic]]
    return pd.DataFrame(rows)


def _pooled_by_hand(params, texts: list[str]) -> np.ndarray:
    """Mean-pooled last hidden states of the pretrained encoder, computed here without driftfit's classifier."""
    from driftfit.modalities.text.model import load_encoder

    encoder, tok = load_encoder(params.model).eval(), load_tokenizer(params.model)
    with torch.no_grad():
        enc = tok(texts, truncation=True, max_length=params.model.max_seq_len, padding=True, return_tensors="pt")
        hidden = encoder(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


def _macro_f1(y, predicted) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, predicted, average="macro"))


def _fit_and_reload(params, train_df, val_df, out: Path) -> tuple[dict, np.ndarray]:
    """train_model with the head strategy; (log, the saved model's probabilities on val)."""
    log = train.train_model(train_df, val_df, "head", params, out)
    model, tokenizer, labels = load_classifier(out)
    assert labels == sorted(set(train_df["label"]))
    return log, predict_proba(model, tokenizer, list(val_df["text"]), params.model.max_seq_len, 32,
                              torch.device("cpu"))


def test_head_fits_a_separable_toy_to_convergence(make_params, tmp_path):
    params = make_params()
    train_df, val_df = _topic_toy(12), _topic_toy(4, offset=12)
    log, probs = _fit_and_reload(params, train_df, val_df, tmp_path / "head")
    fit = log["head_fit"]
    assert fit["converged"] and fit["iterations"] < 5000 and log["seconds"] < 60
    assert "validation macro-F1" in fit["chosen_by"] and fit["c_grid"] == sorted(params.train.head_c_grid)
    assert [t["C"] for t in fit["tried"]] == fit["c_grid"] and all(t["converged"] for t in fit["tried"])
    assert log["val_accuracy"] >= 0.9 and max(t["val_accuracy"] for t in fit["tried"]) >= 0.9
    labels = np.array(log["labels"])
    assert (labels[probs.argmax(1)] == val_df["label"].to_numpy()).mean() == pytest.approx(log["val_accuracy"])
    assert "early_stopping" not in log  # nothing iterates over epochs here


@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "data").exists(),
                    reason="../shared/data is not present")
def test_converged_head_is_the_sklearn_fit_with_c_chosen_on_validation(make_params, tmp_path):
    """Real reviews (Amazon sentiment), where C matters: the saved head is exactly scikit-learn's L-BFGS fit
    (classes weighted inversely to their counts) for the C with the best validation macro-F1."""
    from sklearn.linear_model import LogisticRegression

    from tests.conftest import SHARED_DATA

    params = make_params()
    rows = pd.read_csv(SHARED_DATA / "sentiment_domains" / "amazon.tsv", sep="\t", header=None, quoting=3,
                       names=["text", "label"]).sample(n=300, random_state=0)
    rows["label"] = rows["label"].map({0: "negative", 1: "positive"})
    train_df, val_df = rows.iloc[:200].reset_index(drop=True), rows.iloc[200:].reset_index(drop=True)
    log, probs = _fit_and_reload(params, train_df, val_df, tmp_path / "head")
    fit = log["head_fit"]

    # scikit-learn on features pooled by hand: one fit per C, the best validation macro-F1 (ties: smaller C)
    x_train, x_val = _pooled_by_hand(params, list(train_df["text"])), _pooled_by_hand(params, list(val_df["text"]))
    y_train, y_val = train_df["label"].to_numpy(), val_df["label"].to_numpy()
    fits = {c: LogisticRegression(C=c, solver="lbfgs", max_iter=5000, class_weight="balanced").fit(x_train, y_train)
            for c in sorted(params.train.head_c_grid)}
    f1 = {c: _macro_f1(y_val, m.predict(x_val)) for c, m in fits.items()}
    best_c = max(f1, key=lambda c: (f1[c], -c))
    assert len(set(f1.values())) > 1  # C matters on this data: the choice is a real one
    assert fit["chosen_c"] == best_c and fit["converged"]
    assert [t["val_macro_f1"] for t in fit["tried"]] == pytest.approx([f1[c] for c in sorted(f1)], abs=1e-3)

    # the saved model predicts what scikit-learn's model predicts, and matches or beats its default fit
    assert np.allclose(probs, fits[best_c].predict_proba(x_val), atol=1e-4)
    ours = _macro_f1(y_val, np.array(log["labels"])[probs.argmax(1)])
    default = LogisticRegression(class_weight="balanced").fit(x_train, y_train)
    assert ours == pytest.approx(f1[best_c]) and ours >= _macro_f1(y_val, default.predict(x_val))
    assert log["val_accuracy"] == pytest.approx(float((fits[best_c].predict(x_val) == y_val).mean()))


def test_head_weights_are_a_stationary_point_of_the_regularised_loss(make_params, tmp_path):
    """Converged means the gradient of  ||W||^2 / 2 + C * sum(cross-entropy)  vanishes at the saved head
    (three labels: scikit-learn's multinomial form; the bias is not penalised)."""
    from safetensors.torch import load_file

    params = make_params({"train.head_c_grid": [0.5]})  # one C: no choice, the fit itself is tested
    train_df = _topic_toy(12)
    log = train.train_model(train_df, _topic_toy(4, offset=12), "head", params, tmp_path / "head")
    head = load_file(str(tmp_path / "head" / "head.safetensors"))
    w, b = head["weight"].double().numpy(), head["bias"].double().numpy()
    x = _pooled_by_hand(params, list(train_df["text"])).astype(np.float64)
    y = np.eye(3)[[log["labels"].index(l) for l in train_df["label"]]]
    logits = x @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    c = log["head_fit"]["chosen_c"]
    grad_w, grad_b = w + c * (p - y).T @ x, c * (p - y).sum(0)
    at_zero = c * np.abs((1 / 3 - y).T @ x).max()  # the same gradient at W = 0, b = 0
    assert c == 0.5 and np.abs(grad_w).max() < 1e-3 * at_zero and np.abs(grad_b).max() < 1e-3 * at_zero


def test_two_label_head_reproduces_sklearns_probabilities():
    """scikit-learn keeps one weight row for two labels; the two-row softmax head gives the same probabilities."""
    from sklearn.linear_model import LogisticRegression

    from driftfit.training.head_fit import head_weights

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
    clf = LogisticRegression().fit(x, y)
    w, b = head_weights(clf, 2)
    assert w.shape == (2, 5) and b.shape == (2,)
    assert np.allclose(torch.softmax(torch.tensor(x @ w.T + b), 1).numpy(), clf.predict_proba(x), atol=1e-10)


# ---- early stopping -------------------------------------------------------------------------

STOPPING = {"train.max_steps": -1, "train.epochs": 3, "train.batch_size": 8, "train.eval_steps": 1,
            "train.warmup_ratio": 0.0, "train.device": "cpu"}


def _misleading_toy() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training labels rotated against the topics (sports rows say 'cooking', ...), validation labels true: every
    step that fits the training rows better makes validation worse, so training should stop early."""
    train_df = _topic_toy(16)
    train_df["label"] = train_df["label"].map({"sports": "cooking", "cooking": "weather", "weather": "sports"})
    return train_df, _topic_toy(4, offset=16)


def _val_macro_f1(model_dir: Path, val_df: pd.DataFrame, max_len: int) -> float:
    model, tokenizer, labels = load_classifier(model_dir)
    probs = predict_proba(model, tokenizer, list(val_df["text"]), max_len, 32, torch.device("cpu"))
    return _macro_f1(val_df["label"].to_numpy(), np.array(labels)[probs.argmax(1)])


REAL_VALIDATION_METRICS = train._macro_f1


def _scripted_validation(monkeypatch, macro_f1_by_step: dict[int, float], crash_at: int | None = None):
    """Validation macro-F1 (what early stopping watches) forced to `macro_f1_by_step[step]` (0 at steps it does not
    list): which step a real loss curve happens to improve at is a numeric accident; the rule that follows from the
    scores is not. Returns (progress hook, {step: the real validation logits at that step's evaluation}).
    `crash_at`: the hook raises at that step, before its evaluation (a crashed run)."""
    step, logits = [0], {}

    def progress(at: int, total: int, logs: dict) -> None:  # called at each step's end, before its evaluation
        step[0] = at
        if at == crash_at:
            raise RuntimeError("killed")

    def scripted(eval_pred) -> dict:
        logits[step[0]] = np.asarray(eval_pred.predictions)
        return {**REAL_VALIDATION_METRICS(eval_pred), "macro_f1": macro_f1_by_step.get(step[0], 0.0)}

    monkeypatch.setattr(train, "_macro_f1", scripted)
    return progress, logits


def test_training_stops_early_and_keeps_the_best_weights(make_params, tmp_path, monkeypatch):
    """Patience 2, an evaluation per step, validation scores 0.3, 0.6, 0.6 (a tie is no improvement), 0.5: the run
    stops at step 4, two evaluations after the best (step 2), and the saved model is the one evaluated at step 2."""
    params = make_params({**STOPPING, "train.early_stopping_patience": 2})
    train_df, val_df = _topic_toy(16), _topic_toy(4, offset=16)
    progress, logits = _scripted_validation(monkeypatch, {1: 0.3, 2: 0.6, 3: 0.6, 4: 0.5, 5: 0.9, 6: 0.9})
    log = train.train_model(train_df, val_df, "ia3", params, tmp_path / "ia3", progress=progress)
    stopping = log["early_stopping"]
    evals = stopping["evaluations"]
    assert stopping["enabled"] and stopping["metric"] == "validation macro-F1" and stopping["patience"] == 2
    assert stopping["budget_steps"] == 18  # 48 rows / 8 per step x 3 epochs
    assert [(e["step"], e["macro_f1"]) for e in evals] == [(1, 0.3), (2, 0.6), (3, 0.6), (4, 0.5)]
    assert stopping["stopped_early"] and log["steps"] == stopping["stopped_at_step"] == 4
    assert stopping["best"] == evals[1] and stopping["kept"] == "the weights of step 2 (the best evaluation)"
    # the saved model answers on validation what the model evaluated at step 2 answered, not the last step's
    saved = _val_probs(tmp_path / "ia3", val_df, params.model.max_seq_len)
    at = {s: torch.softmax(torch.tensor(x), -1).numpy() for s, x in logits.items()}
    assert _row_gap(at[2], at[4]) > 1e-3  # the steps between moved the model: the check below can tell them apart
    assert _row_gap(saved, at[2]) < 1e-5


def _val_probs(model_dir: Path, val_df: pd.DataFrame, max_len: int) -> np.ndarray:
    model, tokenizer, _ = load_classifier(model_dir)
    return predict_proba(model, tokenizer, list(val_df["text"]), max_len, 32, torch.device("cpu"))


def _row_gap(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference between a's rows and b's, rows paired one to one as closely as they go (Trainer
    evaluates the validation rows in its own order: grouped by length)."""
    from scipy.optimize import linear_sum_assignment

    gaps = np.abs(a[:, None, :] - b[None, :, :]).max(-1)
    rows, cols = linear_sum_assignment(gaps)
    return float(gaps[rows, cols].max())


@pytest.mark.parametrize("off", ["empty validation split", "patience 0"])
def test_without_validation_or_patience_training_runs_its_whole_budget(make_params, tmp_path, off):
    patience = 0 if off == "patience 0" else 1
    params = make_params({**STOPPING, "train.early_stopping_patience": patience, "train.epochs": 1})
    train_df, val_df = _misleading_toy()
    log = train.train_model(train_df, val_df.iloc[:0] if off.startswith("empty") else val_df, "ia3", params,
                            tmp_path / "ia3")
    assert log["steps"] == 6  # the whole epoch (48 rows / 8 per step): nothing evaluated, nothing stopped it
    stopping = log["early_stopping"]
    assert stopping["enabled"] is False
    assert ("validation split is empty" if off.startswith("empty") else "early_stopping_patience is 0") in stopping["reason"]


def test_resumed_run_stops_and_restores_like_an_uninterrupted_one(make_params, tmp_path, monkeypatch):
    """The best weights and the evaluations so far travel inside each checkpoint: a run that crashes after its
    best evaluation (step 1 of scores 0.6, 0.5, 0.5, 0.4) resumes, stops at the same step and ends with the same
    weights."""
    from safetensors.torch import load_file

    params = make_params({**STOPPING, "train.early_stopping_patience": 3, "train.checkpoint_steps": 2})
    train_df, val_df = _misleading_toy()
    scores = {1: 0.6, 2: 0.5, 3: 0.5, 4: 0.4, 5: 0.9}
    progress, _ = _scripted_validation(monkeypatch, scores)
    whole = train.train_model(train_df, val_df, "ia3", params, tmp_path / "whole", progress=progress,
                              checkpoint_dir=tmp_path / "whole.checkpoints")
    assert whole["steps"] == 4 and whole["early_stopping"]["best"]["step"] == 1  # 3 evaluations without a better one

    ckpt = tmp_path / "killed.checkpoints"
    crash_at_step_3, _ = _scripted_validation(monkeypatch, scores, crash_at=3)
    with pytest.raises(RuntimeError, match="killed"):
        train.train_model(train_df, val_df, "ia3", params, tmp_path / "killed", progress=crash_at_step_3,
                          checkpoint_dir=ckpt)
    assert (ckpt / "checkpoint-2" / "best_weights.safetensors").is_file()
    progress, _ = _scripted_validation(monkeypatch, scores)
    resumed = train.train_model(train_df, val_df, "ia3", params, tmp_path / "killed", progress=progress,
                                checkpoint_dir=ckpt)
    assert resumed["resumed_from"] == "checkpoint-2" and resumed["steps"] == 4
    assert resumed["early_stopping"]["evaluations"] == whole["early_stopping"]["evaluations"]
    a, b = (load_file(str(tmp_path / d / "encoder" / "model.safetensors")) for d in ("whole", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(load_file(str(tmp_path / "whole" / "head.safetensors"))["weight"],
                       load_file(str(tmp_path / "killed" / "head.safetensors"))["weight"])


def test_a_validation_split_too_small_to_choose_c_falls_back_to_the_default():
    import numpy as np

    from driftfit.training.head_fit import DEFAULT_C, fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    y = np.repeat([0, 1, 2], 10)
    _, record = fit_logistic(x, y, x[:3], y[:3], 3, [0.01, 1.0, 100.0])   # 3 rows for 3 labels: fewer than 2 each
    assert record["c_grid"] == [DEFAULT_C] and record["chosen_c"] == DEFAULT_C
    assert "too few to choose C" in record["chosen_by"]


def test_the_head_weighs_a_few_new_rows_as_much_as_a_large_memory():
    """Two remembered classes with 600 rows each and a new class with 8: the new class's rows overlap the old
    ones, so an unweighted fit leans on the counts and calls most of the new class old. Weighted by class
    (what macro-F1 asks for, and what the decision benchmark's new-task scenarios needed), it finds them."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from driftfit.training.head_fit import fit_logistic

    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [4.0, 0.0], [1.5, 1.5]])
    y = np.repeat([0, 1, 2], [600, 600, 8])
    x = centers[y] + rng.normal(size=(len(y), 2))
    y_new = np.full(200, 2)
    x_new = centers[2] + rng.normal(size=(200, 2))
    clf, record = fit_logistic(x, y, x_new[:20], y_new[:20], 3, [1.0])
    weighted = float((clf.predict(x_new) == 2).mean())
    plain = float((LogisticRegression(C=1.0, max_iter=5000).fit(x, y).predict(x_new) == 2).mean())
    assert weighted > 0.5 > plain, (weighted, plain)
    assert "weighted inversely" in record["method"]


def test_fine_tuning_weighs_each_label_inversely_to_its_rows(make_params, tmp_path):
    """The loss weights: rows / (labels x the label's rows), so a label with 4 rows beside two with 16 weighs
    4x as much; they are recorded in the log and are not part of the saved model."""
    from safetensors.torch import load_file

    assert class_weights(["a"] * 16 + ["b"] * 16 + ["c"] * 4, ["a", "b", "c"]) == pytest.approx(
        [0.75, 0.75, 3.0])
    assert class_weights(["x", "y"] * 5, ["x", "y"]) == [1.0, 1.0]
    toy = _topic_toy(12)
    keep = toy["label"] != "weather"
    train_df = pd.concat([toy[keep], toy[~keep].head(3)], ignore_index=True)
    log = train.train_model(train_df, _topic_toy(4, offset=12), "ia3", make_params({"train.max_steps": 1}),
                            tmp_path / "ia3")
    assert log["class_weights"] == pytest.approx({"cooking": 27 / 36, "sports": 27 / 36, "weather": 3.0})
    saved = load_file(str(tmp_path / "ia3" / "head.safetensors"))
    assert not any("class_weights" in k for k in saved)


def test_what_counts_as_diverged():
    """train.diverged, on fit records whose verdict is known by construction: a non-finite training loss; a best
    validation no better than one label for every row at a loss no lower than the labels' entropy; never before one
    pass over the rows; a run that learnt little (answers spread, or loss under the entropy) does not count."""
    labels = pd.Series(["a"] * 6 + ["b"] * 2)  # commonest share 0.75: one label for all scores 2*.75/1.75/2 = 0.4286
    entropy = float(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))

    def fit(macro_f1: float, loss: float, epoch: float = 1.0, train_loss: float = 0.5) -> dict:
        best = {"macro_f1": macro_f1, "loss": loss}
        return {"train_loss": train_loss, "early_stopping": {"best": best, "evaluations": [{"epoch": epoch, **best}]}}

    assert "training loss is nan" in train.diverged(fit(0.9, 0.1, train_loss=float("nan")), 2, labels)
    collapsed = train.diverged(fit(3 / 7, entropy + 0.01), 2, labels)
    assert "no better than calling every row one label (0.429)" in collapsed and f"({entropy:.3f})" in collapsed
    assert train.diverged(fit(3 / 7, entropy + 0.01, epoch=0.5), 2, labels) is None  # not one pass yet
    assert train.diverged(fit(0.55, entropy + 0.5), 2, labels) is None       # answers spread: it learnt a little
    assert train.diverged(fit(3 / 7, entropy - 0.05), 2, labels) is None    # loss under the entropy: it learnt
    assert train.diverged(fit(3 / 7, 0.6), 2, labels)  # 0.6 >= the entropy of (3/4, 1/4), 0.562
    # weighed as the loss weighs them (b 3x), the shares are even: entropy ln 2 = 0.693 > 0.6, so it learnt something
    assert train.diverged(fit(3 / 7, 0.6), 2, labels, {"a": 1.0, "b": 3.0}) is None
    assert "(0.693)" in train.diverged(fit(3 / 7, 0.7), 2, labels, {"a": 1.0, "b": 3.0})


def test_a_diverged_run_is_retried_at_a_third_of_its_rate_and_the_better_run_kept(make_params, tmp_path, monkeypatch):
    """A run judged diverged is retried from the same seed at a third of its rate, and the run better on validation
    is what gets saved. The first run's divergence is forced (the rule is tested above): which rate collapses on
    which machine is a numeric accident. With retries off, the first run is saved as it is."""
    judged = []

    def first_run_diverges(fit, n_labels, val_labels, weights=None):
        judged.append(fit)
        return "forced by the test" if len(judged) == 1 else None

    monkeypatch.setattr(train, "diverged", first_run_diverges)
    slow = {**STOPPING, "train.early_stopping_patience": 20}
    params = make_params({**slow, "train.adapter_learning_rate": 0.3, "train.divergence_retries": 2})
    train_df, val_df = _topic_toy(16), _topic_toy(4, offset=16)
    reports = []
    log = train.train_model(train_df, val_df, "adapter", params, tmp_path / "retried",
                            progress=lambda step, total, logs: reports.append((step, total, logs.get("retry"))))
    runs = log["divergence"]["runs"]
    assert len(runs) == 2 and runs[0]["diverged"] == "forced by the test" and runs[1]["diverged"] is None
    assert [r["adapter_learning_rate"] for r in runs] == pytest.approx([0.3, 0.1])
    steps = [r[0] for r in reports]  # a retry's steps continue the count: the progress bar never restarts
    assert steps == sorted(steps) and reports[-1][0] == reports[-1][1] and {r[2] for r in reports} >= {None, 1}
    kept = runs[log["divergence"]["kept"]]
    assert kept["best"] == max((r["best"] for r in runs), key=lambda b: (b["macro_f1"], -b["loss"]))
    assert log["learning_rates"]["body"] == pytest.approx(kept["adapter_learning_rate"])
    assert log["seconds"] == pytest.approx(sum(r["seconds"] for r in runs), abs=0.05)
    saved = _val_macro_f1(tmp_path / "retried", val_df, params.model.max_seq_len)
    assert saved == pytest.approx(kept["best"]["macro_f1"], abs=1e-6)

    judged.clear()
    off = train.train_model(train_df, val_df, "adapter", make_params({**slow, "train.adapter_learning_rate": 0.3,
                                                                      "train.divergence_retries": 0}), tmp_path / "off")
    assert "divergence" not in off and len(judged) == 1  # judged diverged, not retried
    assert off["early_stopping"]["best"] == runs[0]["best"]  # the first run is the same run, seeded alike


def test_the_head_fits_on_the_champions_encoder(make_params, tmp_path):
    """train.head_on: champion. After an adapted champion the head keeps its encoder and adapters (a head on the
    pretrained encoder would lose what they learnt); after a head champion (the pretrained body) it is the same
    head as on the pretrained encoder; head_on: pretrained always takes the pretrained encoder."""
    from safetensors.torch import load_file

    params = make_params({**STOPPING, "train.max_steps": 3, "train.adapter_learning_rate": 1e-2})
    train_df, val_df = _topic_toy(16), _topic_toy(4, offset=16)
    train.train_model(train_df, val_df, "adapter", params, tmp_path / "adapted")
    log = train.train_model(train_df, val_df, "head", params, tmp_path / "head", champion_dir=tmp_path / "adapted",
                            feature_cache=tmp_path / "cache")
    assert log["head_fit"]["encoder"].startswith("the champion's (adapted, features ")
    assert log["trainable_params"] == 3 * (384 + 1)  # the champion's adapters stay frozen
    champion_adapters = load_file(str(tmp_path / "adapted" / "adapters.safetensors"))
    saved = load_file(str(tmp_path / "head" / "adapters.safetensors"))
    assert saved.keys() == champion_adapters.keys() and all(torch.equal(saved[k], champion_adapters[k]) for k in saved)
    assert any(v.abs().sum() > 0 for k, v in saved.items() if k.endswith("up.weight"))  # they did learn something
    model, tokenizer, _ = load_classifier(tmp_path / "head")
    champion, _, _ = load_classifier(tmp_path / "adapted")
    texts = list(val_df["text"])
    from driftfit.modalities.text.model import head_inputs
    assert np.allclose(head_inputs(model, tokenizer, texts, 32), head_inputs(champion, tokenizer, texts, 32), atol=1e-5)

    plain = train.train_model(train_df, val_df, "head", make_params({**STOPPING, "train.head_on": "pretrained"}),
                              tmp_path / "plain", champion_dir=tmp_path / "adapted")
    assert plain["head_fit"]["encoder"] == "pretrained" and not (tmp_path / "plain" / "adapters.safetensors").exists()

    write_json(tmp_path / "adapted" / "version.json", {"params": {"model": {"pretrained": "another-encoder"}}})
    switched = train.train_model(train_df, val_df, "head", params, tmp_path / "switched",
                                 champion_dir=tmp_path / "adapted")  # the user moved to another pretrained model
    assert switched["head_fit"]["encoder"].startswith("pretrained (the champion was built on 'another-encoder'")
    assert not (tmp_path / "switched" / "adapters.safetensors").exists()

    on_head_champion = train.train_model(train_df, val_df, "head", params, tmp_path / "again",
                                         champion_dir=tmp_path / "plain")
    assert on_head_champion["head_fit"]["encoder"].startswith("the champion's (plain")
    again, plain_head = (load_file(str(tmp_path / d / "head.safetensors")) for d in ("again", "plain"))
    assert all(torch.allclose(again[k], plain_head[k], atol=1e-5) for k in again)  # the same body: the same head


def test_contrastive_pairs_are_anchored_on_the_new_rows_only():
    """Replayed memory rows are partners, never anchors: the pairs (and their cost) grow with the new batch; with
    no replayed row the pairs are those of every row, drawn the same way."""
    from driftfit.modalities.text.contrastive import pairs

    texts = [f"t{i}" for i in range(12)]
    labels = ["a", "b", "c"] * 4
    new = np.array([True] * 4 + [False] * 8)  # four new rows, eight replayed
    table = pairs(texts, labels, per_row=6, at_most=1000, seed=3, anchors=new)
    assert len(table) == 4 * 6 and set(table["sentence1"]) == set(texts[:4])
    assert set(table["sentence2"]) - set(texts[:4])  # partners come from the memory too
    label_of = dict(zip(texts, labels))
    same = table["sentence1"].map(label_of) == table["sentence2"].map(label_of)
    assert (same == (table["score"] == 1.0)).all() and table["score"].sum() == 4 * 3
    everyone = pairs(texts, labels, per_row=6, at_most=1000, seed=3)
    assert everyone.equals(pairs(texts, labels, per_row=6, at_most=1000, seed=3, anchors=np.ones(12, bool)))
    assert len(everyone) == 12 * 6
    assert len(pairs(texts, labels, per_row=6, at_most=12, seed=3, anchors=new)) == 12  # the cap still holds
