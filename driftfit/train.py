"""Train the candidate with the strategy the decision record names.

Hugging Face `Trainer` runs the loop (CUDA + bf16 when present, CPU otherwise); `peft` provides
LoRA. Every strategy starts from the same classifier shape (encoder + mean pooling + linear head),
so evaluation and serving never depend on how a model was trained.

  head     frozen pretrained encoder, new head only
  partial  embeddings and the lower `partial_frozen_layers` layers frozen, the rest + head train
  lora     low-rank adapters on attention (merged into the weights before saving) + head
  full     every weight trains
  scratch  same architecture, fresh He/Xavier weights, everything trains
  skip     nothing trains; the champion stays
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from driftfit.config import Params, TrainConfig
from driftfit.data import read_split
from driftfit.errors import DataError
from driftfit.io import atomic_dir, read_json, write_json
from driftfit.model import (TextClassifier, load_encoder, load_tokenizer, pick_device, predict_proba,
                            save_classifier)

_LAYER = re.compile(r"\blayers?\.(\d+)\.")


# ---- training data --------------------------------------------------------------------------

def training_frame(train: pd.DataFrame, reference: pd.DataFrame | None, cfg: TrainConfig) -> pd.DataFrame:
    """Incoming (augmented) rows plus a seeded replay sample of reference rows against forgetting."""
    if reference is None or cfg.replay_fraction == 0:
        return train[["text", "label"]].reset_index(drop=True)
    n_original = int((~train["augmented"]).sum()) if "augmented" in train else len(train)
    n = min(len(reference), int(round(cfg.replay_fraction * n_original)))
    replay = reference.sample(n=n, random_state=cfg.seed)[["text", "label"]]
    return pd.concat([train[["text", "label"]], replay], ignore_index=True)


# ---- building the model for a strategy ------------------------------------------------------

def _reinit(module: nn.Module, scheme: str) -> None:
    """Fresh weights: He (Kaiming) or Xavier for linear layers, N(0, 0.02) embeddings, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            if scheme == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _lora_targets(encoder: nn.Module) -> list[str] | str:
    names = {n.rsplit(".", 1)[-1] for n, _ in encoder.named_modules()}
    for pair in (["query", "value"], ["q_proj", "v_proj"], ["q_lin", "v_lin"]):
        if set(pair) <= names:
            return pair
    return "all-linear"


def build_model(strategy: str, params: Params, num_labels: int) -> TextClassifier:
    cfg = params.train
    encoder = load_encoder(params.model, from_scratch=strategy == "scratch")
    if strategy == "scratch":
        _reinit(encoder, cfg.scratch_init)
    if strategy == "lora":
        from peft import LoraConfig, get_peft_model

        encoder = get_peft_model(encoder, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                                     lora_dropout=cfg.lora_dropout,
                                                     target_modules=_lora_targets(encoder)))
    model = TextClassifier(encoder, num_labels)
    if strategy == "head":
        for p in model.encoder.parameters():
            p.requires_grad = False
    elif strategy == "partial":
        for name, p in model.encoder.named_parameters():
            layer = _LAYER.search(name)
            if "embeddings" in name or (layer and int(layer.group(1)) < cfg.partial_frozen_layers):
                p.requires_grad = False
    return model


def make_optimizer(model: TextClassifier, strategy: str, cfg: TrainConfig, device: torch.device):
    """AdamW with the head on its own (larger) learning rate; no decay on biases and norms."""
    body_lr = cfg.scratch_learning_rate if strategy == "scratch" else cfg.learning_rate
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.head_learning_rate if name.startswith("head.") else body_lr
        decay = 0.0 if p.ndim < 2 else cfg.weight_decay
        groups.setdefault((lr, decay), []).append(p)
    param_groups = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    return torch.optim.AdamW(param_groups, fused=device.type == "cuda")


# ---- the training run -----------------------------------------------------------------------

def _dataset(df: pd.DataFrame, tokenizer, label_ids: dict[str, int], max_len: int):
    from datasets import Dataset

    enc = tokenizer(list(df["text"]), truncation=True, max_length=max_len)
    return Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                              "labels": [label_ids[l] for l in df["label"]]})


def train_model(train_df: pd.DataFrame, val_df: pd.DataFrame, strategy: str, params: Params,
                out_dir: Path) -> dict:
    """Train, save the classifier into out_dir (safetensors), return the training log."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    cfg = params.train
    device = pick_device(cfg.device)
    labels = sorted(set(train_df["label"]))
    label_ids = {l: i for i, l in enumerate(labels)}
    set_seed(cfg.seed)  # the head (and scratch weights) are drawn from this seed
    tokenizer = load_tokenizer(params.model)
    model = build_model(strategy, params, len(labels))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    train_ds = _dataset(train_df, tokenizer, label_ids, params.model.max_seq_len)

    scratch = Path(tempfile.mkdtemp(prefix="driftfit-trainer-"))
    args = TrainingArguments(
        output_dir=str(scratch),
        per_device_train_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,          # a float below 1 is a share of all steps
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=device.type == "cpu",
        bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(),
        train_sampling_strategy="group_by_length",  # similar lengths per batch: less padding
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer,
                      data_collator=DataCollatorWithPadding(tokenizer),
                      optimizers=(make_optimizer(model, strategy, cfg, device), None))
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    shutil.rmtree(scratch, ignore_errors=True)

    model = trainer.model
    if strategy == "lora":
        model.encoder = model.encoder.merge_and_unload()  # ship plain weights: no peft needed to serve
    model = model.to("cpu").eval()
    save_classifier(model, tokenizer, labels, out_dir)

    known = val_df["label"].isin(label_ids)
    probs = predict_proba(model, tokenizer, list(val_df["text"]), params.model.max_seq_len,
                          params.evaluate.batch_size, torch.device("cpu"))
    predicted = np.array(labels)[probs.argmax(1)] if len(probs) else np.array([])
    val_accuracy = float(((predicted == val_df["label"].to_numpy()) & known.to_numpy()).mean()) if len(val_df) else None
    return {"strategy": strategy, "device": device.type, "labels": labels, "train_rows": len(train_df),
            "steps": int(result.global_step), "train_loss": float(result.training_loss),
            "seconds": round(seconds, 2), "trainable_params": trainable, "total_params": total,
            "val_accuracy": val_accuracy}


def run(params: Params) -> dict:
    """Read the decision and the data, train (unless skip), write models/candidate/ atomically."""
    decision = read_json(params.paths.decision)
    strategy = decision["strategy"]
    train = pd.read_parquet(Path(params.paths.augmented) / "train.parquet")
    val = read_split(params.paths.prepared, "val")
    reference = read_split(params.paths.prepared, "reference_train")
    if len(train) == 0:
        raise DataError(f"{params.paths.augmented}/train.parquet has no rows; nothing to train on")
    with atomic_dir(params.paths.candidate) as tmp:
        if strategy == "skip":
            log = {"strategy": "skip", "reason": decision.get("reason"), "trained": False}
        else:
            log = {**train_model(training_frame(train, reference, params.train), val, strategy, params, tmp),
                   "trained": True}
        write_json(tmp / "train_log.json", log)
    return log
