"""The text recipe: train a text classifier with one strategy (the train step, probe mode and the search call it).

Hugging Face `Trainer` runs the loop (CUDA + bf16 when present, CPU otherwise); `peft` provides
LoRA, IA3 and the prompt-learning methods; bottleneck adapters are our own (modalities/text/adapters.py).
Every strategy starts from the same classifier shape (encoder + mean pooling + linear head), and
every saved model loads with `modalities.text.model.load_classifier`, so evaluation and serving never
depend on how a model was trained. What each strategy trains is its entry in driftfit.strategies and in
this modality's build table (modalities/text/strategies.py).

Learning rates: the head uses `head_learning_rate`, as new parameters need larger steps; the rest
uses the entry's `learning_rate` field (the small fresh modules of IA3, prompts and prefixes the head's
rate, bottleneck adapters their own `adapter_learning_rate`, the pretrained encoder `learning_rate`,
times `layer_lr_decay` per layer downwards where the entry allows it). `l1` adds an L1 penalty on the
trainable weight matrices to the loss.
With `checkpoint_steps` > 0 a run saves resumable checkpoints in `<candidate>.checkpoints/` and a
re-run of the same configuration on the same data continues from the last one.

Two ways to train, as the strategy's entry says: a strategy that leaves the encoder frozen
(`fit_on_features`, i.e. `head`) needs no Trainer: its head is a convex problem, solved to convergence
on the encoder's cached features (driftfit.training.head_fit). Every other strategy runs Trainer for its
budget (epochs / max_steps), evaluating validation macro-F1 at each epoch's end (or every
`eval_steps`), stopping after `early_stopping_patience` evaluations without improvement, and
ending with the best evaluation's weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from driftfit.config import Params, TrainConfig
from driftfit.errors import ConfigError
from driftfit.io import read_json, run_tempdir, write_json
from driftfit.modalities.text.model import TextClassifier, load_tokenizer, predict_proba, save_classifier
from driftfit.training.device import pick_device
from driftfit.modalities.text.build import build_model, make_optimizer
from driftfit.modalities.text.strategies import BUILD
from driftfit.strategies import spec
from driftfit.training import Progress, world_size
from driftfit.modalities.text.head import fit_head
from driftfit.training.replay import class_weights

log = logging.getLogger(__name__)


# ---- the tokenizer (scratch may train its own) ----------------------------------------------

def settle_scratch_tokenizer(params: Params, shift_report: dict | None) -> Params:
    """`train.scratch_tokenizer: auto` decided from the measured tokenizer fit: 'new' when the shift report
    says the pretrained tokenizer fits the incoming text badly, else 'keep'. Callers decide this at their
    edge (train.run, probe mode, the search, the benchmark); training itself reads no report."""
    if params.train.scratch_tokenizer != "auto":
        return params
    fit = ((shift_report or {}).get("tokenizer") or {}).get("incoming") or {}
    bad = (fit.get("unk_rate", 0.0) > params.strategy.unk_rate_bad
           or fit.get("tokens_per_word", 0.0) > params.strategy.tokens_per_word_bad)
    return params.model_copy(update={"train": params.train.model_copy(
        update={"scratch_tokenizer": "new" if bad else "keep"})})


def wants_new_tokenizer(params: Params) -> bool:
    """Only 'new' trains a tokenizer; 'auto' that no caller settled keeps the pretrained one."""
    return params.train.scratch_tokenizer == "new"


def train_tokenizer(tokenizer, texts: list[str], vocab_size: int):
    """A tokenizer of the same kind (normaliser, special tokens) with a vocabulary learned from `texts`."""
    if not tokenizer.is_fast:
        raise ConfigError(f"train.scratch_tokenizer: {type(tokenizer).__name__} is not a fast tokenizer, "
                          "so a new one cannot be trained (use scratch_tokenizer: keep)")
    batches = (texts[i:i + 1000] for i in range(0, len(texts), 1000))
    return tokenizer.train_new_from_iterator(batches, vocab_size=vocab_size, length=len(texts))


# ---- Trainer pieces: L1 penalty, checkpoints, progress reports -------------------------------

def _trainer_class():
    """Trainer with two additions: an optional L1 penalty, and checkpoints of models with shared tensors.

    l1 > 0 adds l1 * sum(|w|) over the trainable weight matrices (not biases, not norms) to the loss.
    Prompt-learning peft models hold the word embeddings under two names; safetensors refuses to
    save one tensor twice, so checkpoints store a copy under the second name (both load back into
    the same tensor).
    """
    from transformers import Trainer

    class DriftfitTrainer(Trainer):
        l1: float = 0.0
        keep_best: "KeepBest | None" = None

        def _save_checkpoint(self, model, trial):
            # The best weights so far go into the checkpoint before Trainer's own files (trainer_state.json
            # last), so a complete checkpoint always holds the early-stopping state it was made with.
            if self.keep_best is not None and self.args.should_save:  # the main process only, like Trainer
                self.keep_best.save(Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}")
            super()._save_checkpoint(model, trial)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
            if self.l1 > 0:
                weights = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
                loss = loss + self.l1 * sum(w.abs().sum() for w in weights)
            return (loss, outputs) if return_outputs else loss

        def _save(self, output_dir=None, state_dict=None):
            seen: set[int] = set()
            unshared = {}
            for name, tensor in (state_dict if state_dict is not None else self.model.state_dict()).items():
                unshared[name] = tensor.clone() if tensor.data_ptr() in seen else tensor
                seen.add(tensor.data_ptr())
            super()._save(output_dir, state_dict=unshared)

    return DriftfitTrainer


def _progress_callback(progress: Progress):
    """A TrainerCallback that reports (step, total steps, logs) after every step and every log."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            progress(state.global_step, state.max_steps, {})

        def on_log(self, args, state, control, logs=None, **kwargs):
            progress(state.global_step, state.max_steps, dict(logs or {}))

    return ProgressCallback()


# ---- early stopping on validation, keeping the best weights ----------------------------------

def _macro_f1(eval_pred) -> dict:
    """Trainer's compute_metrics: validation macro-F1 (what early stopping watches) and accuracy."""
    from sklearn.metrics import f1_score

    logits, labels = eval_pred.predictions, eval_pred.label_ids
    predicted = np.asarray(logits).argmax(-1)
    n_labels = np.asarray(logits).shape[-1]
    return {"macro_f1": float(f1_score(labels, predicted, labels=list(range(n_labels)), average="macro",
                                       zero_division=0)),
            "accuracy": float((predicted == labels).mean())}


class KeepBest:
    """Early stopping on validation macro-F1 that keeps the best evaluation's trainable weights.

    Our own small callback rather than transformers' EarlyStoppingCallback + load_best_model_at_end:
    those save a whole checkpoint (weights and optimizer state) at every evaluation to reload the
    best, and the reload fails for peft prompt-learning models. Here only the weights that train are
    copied, in memory, when validation improves (strictly), and put back when training ends. Its state
    travels inside resumable checkpoints (`save`/`load`), so a resumed run stops and restores alike.
    """

    STATE, WEIGHTS = "early_stopping.json", "best_weights.safetensors"

    def __init__(self, patience: int):
        self.patience = patience
        self.evaluations: list[dict] = []
        self.best: dict | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stale = 0             # evaluations since the best one
        self.stopped_early = False

    def callback(self):
        from transformers import TrainerCallback

        keep = self

        class KeepBestCallback(TrainerCallback):
            def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
                keep.evaluated(state, control, metrics or {}, model)

        return KeepBestCallback()

    def evaluated(self, state, control, metrics: dict, model) -> None:
        row = {"step": int(state.global_step), "epoch": round(float(state.epoch or 0), 3),
               "macro_f1": round(metrics["eval_macro_f1"], 6), "accuracy": round(metrics["eval_accuracy"], 6),
               "loss": round(metrics.get("eval_loss", float("nan")), 6)}
        self.evaluations.append(row)
        if self.best is None or row["macro_f1"] > self.best["macro_f1"]:
            self.best, self.stale = row, 0
            self.best_weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            return
        self.stale += 1
        if self.stale >= self.patience:
            control.should_training_stop = True
            self.stopped_early = True

    def restore(self, model) -> None:
        """Put the best evaluation's weights back (a no-op when the last evaluation was the best)."""
        if self.best_weights is None:
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.best_weights.items():
                params[name].copy_(value.to(params[name].device))

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        if self.best_weights is not None:
            save_file({n: t.detach().cpu().contiguous() for n, t in self.best_weights.items()}, str(folder / self.WEIGHTS))
        write_json(folder / self.STATE, {"evaluations": self.evaluations, "best": self.best, "stale": self.stale,
                                         "stopped_early": self.stopped_early})

    def load(self, folder: Path) -> None:
        """The state saved in a checkpoint being resumed from (none saved: the run had no evaluation yet)."""
        from safetensors.torch import load_file

        if not (folder / self.STATE).is_file():
            return
        state = read_json(folder / self.STATE)
        self.evaluations, self.best, self.stale = state["evaluations"], state["best"], state["stale"]
        self.stopped_early = state["stopped_early"]
        if (folder / self.WEIGHTS).is_file():
            self.best_weights = load_file(str(folder / self.WEIGHTS))

    def record(self, final_step: int, budget_steps: int) -> dict:
        return {"enabled": True, "metric": "validation macro-F1", "patience": self.patience,
                "evaluations": self.evaluations, "best": self.best, "stopped_early": self.stopped_early,
                "stopped_at_step": final_step, "budget_steps": budget_steps,
                "kept": f"the weights of step {self.best['step']} (the best evaluation)" if self.best else None}


def _early_stopping(val_ds, cfg: TrainConfig) -> tuple[KeepBest | None, dict]:
    """The early-stopping keeper, or None with the reason it is off (for the train log)."""
    if cfg.early_stopping_patience == 0:
        return None, {"enabled": False, "reason": "train.early_stopping_patience is 0"}
    if val_ds is None:
        return None, {"enabled": False, "reason": "the validation split is empty (or none of its labels are "
                                                  "training labels): trained for the whole budget"}
    return KeepBest(cfg.early_stopping_patience), {}


# ---- resumable checkpoints ------------------------------------------------------------------

def _fingerprint(train_df: pd.DataFrame, val_df: pd.DataFrame, strategy: str, params: Params, tokenizer) -> str:
    """What a checkpoint was made from: strategy, model, tokenizer, training params and data (validation
    too: early stopping's state in a checkpoint is about those rows)."""
    h = hashlib.sha256(json.dumps([strategy, params.model.model_dump(), params.train.model_dump(),
                                   type(tokenizer).__name__, len(tokenizer)], sort_keys=True, default=str).encode())
    for df in (train_df, val_df):
        h.update(pd.util.hash_pandas_object(df[["text", "label"]], index=False).to_numpy().tobytes())
        h.update(b"|")
    return h.hexdigest()


def _last_checkpoint(folder: Path, fingerprint: str) -> str | None:
    """The newest complete checkpoint of this exact run in `folder`.

    Checkpoints of another configuration or other data are removed, and so are half-written ones
    (a run killed while saving): Trainer writes trainer_state.json last.
    """
    stamp = folder / "fingerprint.txt"
    if folder.is_dir() and (not stamp.is_file() or stamp.read_text().strip() != fingerprint):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")
    complete = {}
    for ckpt in folder.glob("checkpoint-*"):
        try:
            complete[int(read_json(ckpt / "trainer_state.json")["global_step"])] = ckpt
        except (OSError, ValueError, KeyError):
            shutil.rmtree(ckpt, ignore_errors=True)
    return str(complete[max(complete)]) if complete else None


# ---- the training run -----------------------------------------------------------------------

def _dataset(df: pd.DataFrame, tokenizer, label_ids: dict[str, int], max_len: int):
    from datasets import Dataset

    enc = tokenizer(list(df["text"]), truncation=True, max_length=max_len)
    return Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                              "labels": [label_ids[l] for l in df["label"]]})


def _fit(model: TextClassifier, tokenizer, train_df: pd.DataFrame, val_df: pd.DataFrame, label_ids: dict[str, int],
         strategy: str, params: Params, device: torch.device, progress: Progress | None,
         checkpoint_dir: Path | None) -> tuple[TextClassifier, dict]:
    """Run Trainer (stopping early on validation when it can); return the trained model and what the log needs."""
    from transformers import DataCollatorWithPadding, PrinterCallback, TrainingArguments

    cfg = params.train
    train_ds = _dataset(train_df, tokenizer, label_ids, params.model.max_seq_len)
    known = val_df[val_df["label"].isin(label_ids)]  # a label training never saw cannot be predicted by any step
    val_ds = _dataset(known, tokenizer, label_ids, params.model.max_seq_len) if len(known) else None
    keep_best, early_stopping = _early_stopping(val_ds, cfg)
    resume = None
    if checkpoint_dir is not None:
        resume = _last_checkpoint(checkpoint_dir, _fingerprint(train_df, known, strategy, params, tokenizer))
        output_dir = checkpoint_dir
    else:
        output_dir = run_tempdir("trainer")  # a killed run's trainer folders are removed here
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,          # a float below 1 is a share of all steps
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=device.type == "cpu",
        ddp_backend="gloo" if device.type == "cpu" and world_size() > 1 else None,  # DDP on CPU: gloo
        bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
        train_sampling_strategy="group_by_length",  # similar lengths per batch: less padding
        save_strategy="steps" if checkpoint_dir is not None else "no",
        save_steps=cfg.checkpoint_steps or 500,
        save_total_limit=2,                     # the newest two: one may be half-written when killed
        eval_strategy="no" if keep_best is None else "steps" if cfg.eval_steps else "epoch",
        eval_steps=cfg.eval_steps or None,
        per_device_eval_batch_size=params.evaluate.batch_size,
        logging_steps=10,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,                      # progress goes to the `progress` hook (CLI line, Prefect artifact)
        auto_find_batch_size=cfg.auto_batch_size,  # halve the batch on CUDA out-of-memory and go on
        torch_compile=cfg.compile,
    )
    if cfg.gradient_checkpointing:  # recompute activations in backward: less memory, ~30% more compute
        model.encoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    callbacks = [] if progress is None else [_progress_callback(progress)]
    if keep_best is not None:
        callbacks.append(keep_best.callback())
        if resume:
            keep_best.load(Path(resume))
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds if keep_best else None,
        processing_class=tokenizer,
        # Dynamic padding (to the longest text of each length-grouped batch); multiples of 8 suit tensor cores.
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if device.type == "cuda" else None),
        optimizers=(make_optimizer(model, strategy, cfg, device), None),
        compute_metrics=_macro_f1 if keep_best else None,
        callbacks=callbacks or None)
    trainer.remove_callback(PrinterCallback)  # no loss dicts on stdout: progress goes to the `progress` hook
    trainer.l1 = cfg.l1
    trainer.keep_best = keep_best
    start = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    finally:
        if checkpoint_dir is None:
            shutil.rmtree(output_dir, ignore_errors=True)
    if keep_best is not None:
        keep_best.restore(trainer.model)
        early_stopping = keep_best.record(int(result.global_step), int(trainer.state.max_steps))
    seconds = time.perf_counter() - start
    return trainer.model, {"steps": int(result.global_step), "train_loss": float(result.training_loss),
                           "seconds": round(seconds, 2), "resumed_from": Path(resume).name if resume else None,
                           "early_stopping": early_stopping}


# The version of `diverged`'s test, for records that must say which one judged a run (bench.decision's redo):
# 2 judges a collapse by the validation labels' entropy; 1, a uniform guess's loss, missed a collapse to the prior.
DIVERGENCE_RULE = 2


def diverged(fit: dict, n_labels: int, val_labels: pd.Series, weights: dict[str, float] | None = None) -> str | None:
    """Why a Trainer run counts as diverged (collapsed), or None.

    Diverged: its training loss is not finite, or its best validation evaluation is no better than calling every
    row the commonest validation label (macro-F1 over all the model's labels) while its validation loss is no
    lower than that of knowing only how often each label occurs there (the entropy of the validation labels,
    each weighed by its class weight, as the loss weighs them; `weights` None: all 1). Such a run learnt nothing
    about the texts, after at least one pass over its rows (a run stopped sooner, as the tests' one or two
    steps, is not judged: it has not trained yet). A run that merely learnt little (a hard task) spreads its
    answers or gets its loss under the labels' entropy, and does not count. Bottleneck adapters with new labels
    beside every replayed old row collapsed this way on the decision benchmark (docs/decisions.md).
    """
    if not np.isfinite(fit.get("train_loss", 0.0)):
        return f"its training loss is {fit['train_loss']}"
    stopping = fit.get("early_stopping") or {}
    best, evaluations = stopping.get("best"), stopping.get("evaluations") or []
    if not best or not len(val_labels) or evaluations[-1]["epoch"] < 1.0:
        return None  # no validation to judge by, or the run stopped before one pass over its rows (not trained yet)
    if not np.isfinite(best["loss"]):
        return f"its validation loss is {best['loss']}"
    counts = val_labels.value_counts()
    share = float(counts.max() / counts.sum())
    constant = 2 * share / (1 + share) / n_labels  # macro-F1 of calling every row the commonest label
    weighed = counts * np.array([(weights or {}).get(label, 1.0) for label in counts.index])
    q = weighed / weighed.sum()
    entropy = float(-(q * np.log(q)).sum())
    if best["macro_f1"] <= constant + 1e-6 and best["loss"] >= entropy:
        return (f"its best validation macro-F1 {best['macro_f1']:.3f} is no better than calling every row one label "
                f"({constant:.3f}) and its validation loss {best['loss']:.3f} no lower than knowing only how often "
                f"each label occurs ({entropy:.3f})")
    return None


def _score(fit: dict) -> tuple:
    """Orders runs of the same data: best validation macro-F1, then lower validation loss; a finite loss first."""
    best = (fit.get("early_stopping") or {}).get("best") or {}
    loss = best.get("loss", fit.get("train_loss", float("inf")))
    finite = bool(np.isfinite(loss)) and bool(np.isfinite(fit.get("train_loss", 0.0)))
    return finite, best.get("macro_f1", 0.0), -(loss if np.isfinite(loss) else float("inf"))


def _fit_with_retries(model, tokenizer, train_df, val_df, label_ids, strategy, params, device, progress,
                      checkpoint_dir, weights, vocab) -> tuple[TextClassifier, dict, Params]:
    """`_fit`, and while the run diverged (`diverged`), up to train.divergence_retries fresh runs from the same
    seed at a third of the strategy's own learning rate each; the run best on validation is kept (`_score`).
    Returns the model, its fit log (with `divergence`, every run and which was kept, when a retry ran) and the
    params it trained with."""
    from transformers import set_seed

    knob, n_labels = spec(strategy).learning_rate, len(label_ids)
    val_labels = val_df["label"][val_df["label"].isin(label_ids)]
    runs, kept, run_params, done = [], None, params, 0
    while True:
        # a retry's steps continue the count of the runs before it (a progress bar extends, it does not restart)
        report = progress if progress is None or not runs else \
            (lambda step, total, logs, before=done, k=len(runs): progress(before + step, before + total,
                                                                         {**logs, "retry": k}))
        if runs:  # a retry: the same head draw and data order, a third of the rate
            run_params = run_params.model_copy(
                update={"train": run_params.train.model_copy(update={knob: getattr(run_params.train, knob) / 3})})
            set_seed(run_params.train.seed)
            model = build_model(strategy, run_params, n_labels, vocab)
        model.class_weights = torch.tensor(weights, dtype=torch.float32)
        model, fit = _fit(model, tokenizer, train_df, val_df, label_ids, strategy, run_params, device, report,
                          checkpoint_dir)
        done += fit["steps"]
        model.class_weights = None
        why = diverged(fit, n_labels, val_labels, dict(zip(label_ids, weights)))
        runs.append({knob: getattr(run_params.train, knob), "diverged": why, "seconds": fit["seconds"],
                     "best": (fit.get("early_stopping") or {}).get("best")})
        if kept is None or _score(fit) > _score(kept[1]):
            kept = (model, fit, run_params, len(runs) - 1)
        if not why or len(runs) > params.train.divergence_retries:
            break
        log.warning("%s diverged at %s=%g: %s; retrying at a third of that rate", strategy, knob,
                    getattr(run_params.train, knob), why)
    model, fit, run_params, index = kept
    if len(runs) > 1:
        fit = {**fit, "seconds": round(sum(r["seconds"] for r in runs), 2), "divergence": {"runs": runs, "kept": index}}
    return model, fit, run_params


def train_model(train_df: pd.DataFrame, val_df: pd.DataFrame, strategy: str, params: Params,
                out_dir: Path, *, progress: Progress | None = None, checkpoint_dir: Path | None = None,
                champion_dir: Path | None = None, feature_cache: str | Path | None = None) -> dict:
    """Train, save the classifier into out_dir (safetensors), return the training log.

    val_df: Trainer strategies stop early on it and keep their best evaluation's weights (log:
    `early_stopping`); the head chooses its regularisation on it (log: `head_fit`). Empty: neither.
    progress(step, total_steps, logs) is called after each step and each log line (e.g. for a UI); for
    the head, after each C of the grid.
    champion_dir: the serving champion's folder, for strategies that average with it (ensemble).
    feature_cache: a folder (driftfit.state.feature_cache) where the frozen pretrained encoder's features of each
    text are kept for the head, which reads the same replayed rows week after week; None: not cached.
    checkpoint_dir: save resumable checkpoints there every train.checkpoint_steps steps, and resume
    from the newest one left by an interrupted run of the same configuration and data; the caller
    removes the folder once the model is safely in place.
    """
    from transformers import set_seed

    cfg = params.train
    device = pick_device(cfg.device)
    labels = sorted(set(train_df["label"]))
    label_ids = {l: i for i, l in enumerate(labels)}
    set_seed(cfg.seed)  # the head (and scratch weights) are drawn from this seed
    tokenizer = load_tokenizer(params.model)
    entry = spec(strategy)
    vocab = None
    if entry.fresh_weights and wants_new_tokenizer(params):  # callers settle 'auto' from the shift report
        tokenizer = train_tokenizer(tokenizer, list(train_df["text"]), cfg.scratch_vocab_size)
        vocab = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}

    if entry.is_baseline:  # zero_shot: nothing trains, the head is the label names' embeddings
        from driftfit.modalities.text.zero_shot import zero_shot_classifier

        model = zero_shot_classifier(params, labels)
        trainable, total = 0, sum(p.numel() for p in model.parameters())
        fit = {"steps": 0, "train_loss": None, "seconds": 0.0, "resumed_from": None}
    elif not entry.trains:
        raise ConfigError(f"strategy '{strategy}': its table entry trains nothing and is not the baseline, so it "
                          "makes no model (set makes_model=False, or is_baseline=True)")
    else:
        body, other = None, None  # the head on the champion's own encoder: what it learnt stays (train.head_on)
        if entry.fit_on_features and cfg.head_on == "champion" and champion_dir is not None \
                and not entry.fresh_weights and BUILD[strategy].peft is None:
            other = champion_pretrained(champion_dir, params)
            if other is None:
                model, tokenizer, body = champion_body(champion_dir, len(labels), params.model.trust_remote_code)
                BUILD[strategy].prepare(model, cfg)
        if body is None:
            model = build_model(strategy, params, len(labels), vocab)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        if entry.fit_on_features:  # a frozen encoder: the head alone, solved to convergence (seconds)
            features = None
            if feature_cache is not None and not entry.fresh_weights and BUILD[strategy].peft is None:
                from driftfit.state.feature_cache import cached
                from driftfit.modalities.text.model import head_inputs, pretrained_identity

                max_len, batch = params.model.max_seq_len, params.evaluate.batch_size
                encoder_id = f"champion body {body}" if body else pretrained_identity(params.model)
                namespace = f"{encoder_id} {strategy} head_inputs max_len={max_len}"
                features = cached(feature_cache, namespace,
                                  lambda texts: head_inputs(model, tokenizer, texts, max_len, batch, device))
            model, fit = fit_head(model, tokenizer, train_df, val_df, label_ids, params, device, progress, features)
            if body:
                encoder = f"the champion's ({Path(champion_dir).name}, features {body[:12]})"
            elif other:
                encoder = f"pretrained (the champion was built on {other!r}, model.pretrained names " \
                          f"{params.model.pretrained!r})"
            else:
                encoder = "pretrained"
            fit["head_fit"] = {**fit["head_fit"], "encoder": encoder}
        elif BUILD[strategy].fit is not None:  # the strategy's own training (contrastive pairs, then a head)
            model, fit = BUILD[strategy].fit(model, tokenizer, train_df, val_df, label_ids, params, device, progress)
        else:
            weights = class_weights(train_df["label"], labels)
            checkpoints = checkpoint_dir if cfg.checkpoint_steps > 0 else None
            model, fit, params = _fit_with_retries(model, tokenizer, train_df, val_df, label_ids, strategy, params,
                                                   device, progress, checkpoints, weights, vocab)
            fit = {**fit, "class_weights": dict(zip(labels, (round(w, 4) for w in weights)))}
            cfg = params.train  # the learning rates of the run kept
        if entry.merges:
            model.encoder = model.encoder.merge_and_unload()  # ship plain weights: no peft needed to serve
    model = model.to("cpu").eval()
    if entry.averages_with_champion:
        from driftfit.modalities.text.averaging import average_with_champion

        fit = {**fit, "averaging": average_with_champion(model, labels, champion_dir, cfg.ensemble_champion_share,
                                                         params.model.trust_remote_code)}
    save_classifier(model, tokenizer, labels, out_dir)

    known = val_df["label"].isin(label_ids)
    probs = predict_proba(model, tokenizer, list(val_df["text"]), params.model.max_seq_len,
                          params.evaluate.batch_size, torch.device("cpu"))
    predicted = np.array(labels)[probs.argmax(1)] if len(probs) else np.array([])
    val_accuracy = float(((predicted == val_df["label"].to_numpy()) & known.to_numpy()).mean()) if len(val_df) else None
    return {"strategy": strategy, "device": device.type, "world_size": world_size(), "labels": labels,
            "train_rows": len(train_df),
            **fit, "trainable_params": trainable, "total_params": total,
            "tokenizer": f"new ({len(tokenizer)} tokens)" if vocab else "pretrained",
            "learning_rates": None if entry.fit_on_features else {  # the converged head has no learning rate
                "body": getattr(cfg, entry.learning_rate), "body_param": entry.learning_rate,
                "head": cfg.head_learning_rate},
            "val_accuracy": val_accuracy}


def champion_pretrained(champion_dir: Path, params: Params) -> str | None:
    """The pretrained model a registry champion was built on (its version.json), when it is not the one
    model.pretrained names now; None when they agree or nothing records it (a bare model folder). A user who
    switches models wants the head on the new encoder, not on the old champion's."""
    record = Path(champion_dir) / "version.json"
    if not record.is_file():
        return None
    built_on = ((read_json(record).get("params") or {}).get("model") or {}).get("pretrained")
    return built_on if built_on and built_on != params.model.pretrained else None


def champion_body(champion_dir: Path, n_labels: int, trust_remote_code: bool = False):
    """(model, tokenizer, features identity): the serving champion's encoder (its bottleneck adapters or peft
    adapter with it) and tokenizer under a fresh head of `n_labels`, for the head strategy: what an adapted or
    fine-tuned champion's encoder learnt stays, where a head on the pretrained encoder would drop it. On a head
    champion's body (the pretrained weights) it is the same head."""
    from driftfit.modalities.text.model import features_identity, load_classifier

    champion, tokenizer, _ = load_classifier(Path(champion_dir), trust_remote_code)
    model = TextClassifier(champion.encoder, n_labels)
    if getattr(champion, "adapters", None) is not None:  # their hooks sit on the encoder's layers already
        model.adapters = champion.adapters
        model.adapters.requires_grad_(False)
    return model, tokenizer, features_identity(Path(champion_dir))


def train(params: Params, train_df: pd.DataFrame, val_df: pd.DataFrame, strategy: str, folder: Path, *,
          progress: Progress | None = None, champion: Path | None = None, shift: dict | None = None,
          checkpoints: Path | None = None, cache: str | None = None) -> dict:
    """The modality's train: `strategy` trained into `folder` (scratch's tokenizer settled from the shift
    report's tokenizer fit); its training log."""
    params = settle_scratch_tokenizer(params, shift)
    return train_model(train_df, val_df, strategy, params, folder, progress=progress, checkpoint_dir=checkpoints,
                       champion_dir=champion, feature_cache=cache)
