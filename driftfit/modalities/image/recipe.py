"""The image recipe: train an image classifier with one strategy (the train step calls it).

The model is what `model.pretrained` names, with a new head: the packaged EfficientNet-Lite0 or a local
Hugging Face image model (or the same network with fresh He/Xavier weights for `scratch`); what trains is the
strategy's entry in this modality's build table (modalities/image/strategies.py: frozen layer groups, or peft
LoRA). Images are fed as that model expects (modalities/image/model.py: image.size for EfficientNet-Lite0, the folder's
preprocessor_config.json for a Hugging Face model). Two ways to train, as for texts:
- `head` (fit_on_features): the network stays frozen, so the head is a convex problem: pooled features
  computed once, L-BFGS logistic regression per C of train.head_c_grid, best validation macro-F1 wins
  (driftfit.training.head_fit.fit_logistic);
- every other strategy: a plain torch loop (AdamW, the head at head_learning_rate, the rest at the entry's
  learning rate; train.lr_scheduler with warm-up), validation macro-F1 after each epoch (or every
  train.eval_steps), stopping after train.early_stopping_patience evaluations without improvement and
  ending with the best evaluation's weights. Not Trainer: the images are decoded once into one uint8 tensor
  (small at image.size), and a loop over it is shorter than Trainer's dataset and collator plumbing.
The candidate is written as safetensors with classifier.json (modalities/image/model.py, save_image_classifier).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from driftfit.config import Params
from driftfit.errors import ConfigError
from driftfit.modalities.image.strategies import BUILD
from driftfit.strategies import spec
from driftfit.training import Progress
from driftfit.training.replay import class_weights


# ---- the model each strategy starts from -------------------------------------------------------------

def build_model(strategy: str, params: Params, num_labels: int):
    """The classifier with the right parts trainable, as the strategy's table entry says."""
    from driftfit.modalities.image.model import pretrained_classifier

    entry, cfg = spec(strategy), params.train
    if strategy not in BUILD:
        raise ConfigError(f"strategy '{strategy}' (the decision in {params.paths.decision}): not available for "
                          "task.modality 'image'")
    model = pretrained_classifier(params, num_labels, cfg.seed, cfg.scratch_init if entry.fresh_weights else None)
    return BUILD[strategy](model, cfg) if BUILD[strategy] is not None else model


def _optimizer(model, strategy: str, params: Params) -> torch.optim.Optimizer:
    """AdamW: the head (new) at head_learning_rate, the rest at the entry's; no decay on biases and norms."""
    cfg = params.train
    body_lr = getattr(cfg, spec(strategy).learning_rate)
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            lr = cfg.head_learning_rate if f"{model.head_name}." in name else body_lr
            groups.setdefault((lr, 0.0 if p.ndim < 2 else cfg.weight_decay), []).append(p)
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()])


# ---- the two ways to train ----------------------------------------------------------------------------

def _macro_f1(model, pixels: torch.Tensor, y: np.ndarray, n_labels: int, batch_size: int) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    from driftfit.modalities.image.model import predict_proba

    predicted = predict_proba(model, pixels, batch_size).argmax(1)
    known = y >= 0
    f1 = f1_score(y[known], predicted[known], labels=list(range(n_labels)), average="macro", zero_division=0)
    return float(f1), float((predicted == y).mean())


def fit_head(model, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor, y_val: np.ndarray,
             params: Params, progress: Progress | None) -> dict:
    """The `head` strategy: logistic regression on the frozen network's pooled features, to convergence."""
    from sklearn.metrics import log_loss

    from driftfit.training.head_fit import fit_logistic, head_weights
    from driftfit.modalities.image.model import features, normalize_for

    start = time.perf_counter()
    n_labels = model.num_labels
    f_train = features(model, normalize_for(model, x_train), params.evaluate.batch_size).numpy().astype(np.float64)
    f_val = features(model, normalize_for(model, x_val), params.evaluate.batch_size).numpy().astype(np.float64)
    feature_seconds = time.perf_counter() - start
    # Standardised features: L-BFGS converges in a fraction of the iterations (the pooled features' scales
    # differ a lot); the scaling is folded back into the head, so it reads the raw features.
    mean, scale = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_val = (f_train - mean) / scale, (f_val - mean) / scale
    clf, record = fit_logistic(f_train, y_train, f_val, y_val, n_labels, params.train.head_c_grid, progress)
    weight, bias = head_weights(clf, n_labels)
    weight, bias = weight / scale, bias - (weight / scale) @ mean
    head = model.head
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
    loss = float(log_loss(y_train, clf.predict_proba(f_train), labels=list(range(n_labels))))
    record["features"] = "standardised on the training images; the scaling is folded into the head"
    seconds = time.perf_counter() - start
    record.update(feature_seconds=round(feature_seconds, 2), fit_seconds=round(seconds - feature_seconds, 2))
    return {"steps": record["iterations"], "train_loss": round(loss, 4), "seconds": round(seconds, 2),
            "head_fit": record}


def fit_loop(model, strategy: str, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
             y_val: np.ndarray, params: Params, progress: Progress | None) -> dict:
    """A plain torch loop with early stopping on validation macro-F1, keeping the best weights."""
    from transformers import get_scheduler

    from driftfit.modalities.image.model import normalize_for

    cfg = params.train
    generator = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * per_epoch))
    eval_every = cfg.eval_steps or per_epoch
    optimizer = _optimizer(model, strategy, params)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=int(cfg.warmup_ratio * total),
                              num_training_steps=total)
    watch = cfg.early_stopping_patience > 0 and (y_val >= 0).any()
    targets = torch.as_tensor(y_train)
    device = next(model.parameters()).device  # the model's (the pipeline trains on the CPU; bench may move it)
    # each label weighs inversely to its rows, as for texts: a new label's few images beside a replayed memory
    # are not drowned (every label id occurs: the labels are the training images')
    weights = torch.tensor(class_weights(y_train, range(model.num_labels)), dtype=torch.float32, device=device)
    best, best_state, stale, evaluations, losses, step = None, None, 0, [], [], 0
    start = time.perf_counter()
    model.train()
    while step < total:
        for batch in torch.randperm(len(x_train), generator=generator).split(cfg.batch_size):
            loss = F.cross_entropy(model(normalize_for(model, x_train[batch].to(device))), targets[batch].to(device),
                                   weight=weights)
            if cfg.l1 > 0:
                loss = loss + cfg.l1 * sum(p.abs().sum() for p in model.parameters() if p.requires_grad and p.ndim >= 2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, total, {"loss": losses[-1]})
            if watch and (step % eval_every == 0 or step == total):
                f1, acc = _macro_f1(model, x_val, y_val, model.num_labels, params.evaluate.batch_size)
                model.train()
                evaluations.append({"step": step, "macro_f1": round(f1, 6), "accuracy": round(acc, 6)})
                if best is None or f1 > best["macro_f1"]:
                    best, best_state, stale = evaluations[-1], copy.deepcopy(model.state_dict()), 0
                else:
                    stale += 1
            if step >= total or (watch and stale >= cfg.early_stopping_patience):
                break
        if watch and stale >= cfg.early_stopping_patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    early = ({"enabled": True, "metric": "validation macro-F1", "patience": cfg.early_stopping_patience,
              "evaluations": evaluations, "best": best, "stopped_early": step < total, "stopped_at_step": step,
              "budget_steps": total,
              "kept": f"the weights of step {best['step']} (the best evaluation)" if best else None}
             if watch else {"enabled": False, "reason": "train.early_stopping_patience is 0 or no validation "
                                                         "image has a training label: trained the whole budget"})
    return {"steps": step, "train_loss": round(float(np.mean(losses)), 4) if losses else None,
            "seconds": round(time.perf_counter() - start, 2), "early_stopping": early,
            "class_weights": [round(float(w), 4) for w in weights]}


# ---- the whole training run ----------------------------------------------------------------------------

def train_image_model(train: pd.DataFrame, val: pd.DataFrame, strategy: str, params: Params, out_dir: Path,
                      progress: Progress | None = None) -> dict:
    """Train, save the classifier into out_dir (safetensors + classifier.json), return the training log."""
    from driftfit.modalities.image.data import load_pixels
    from driftfit.modalities.image.model import predict_proba, save_image_classifier

    cfg, image = params.train, params.image
    torch.manual_seed(cfg.seed)  # dropout and fresh weights
    labels = sorted(set(train["label"].astype(str)))
    ids = {label: i for i, label in enumerate(labels)}
    entry = spec(strategy)
    model = build_model(strategy, params, len(labels))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    size = model.image_size  # image.size, or what a Hugging Face model's preprocessor_config.json says
    x_train = load_pixels(list(train["path"]), size, image.max_pixels)
    x_val = load_pixels(list(val["path"]), size, image.max_pixels)
    y_train = np.array([ids[str(l)] for l in train["label"]])
    y_val = np.array([ids.get(str(l), -1) for l in val["label"]], dtype=int)
    if entry.fit_on_features:
        fit = fit_head(model, x_train, y_train, x_val, y_val, params, progress)
    else:
        fit = fit_loop(model, strategy, x_train, y_train, x_val, y_val, params, progress)
    if entry.merges:
        model = model.merge_and_unload()  # plain weights: no peft needed to serve
        model.frozen = ()  # what was frozen mattered while training
    model = model.eval()
    save_image_classifier(model, labels, size, out_dir)
    predicted = np.array(labels)[predict_proba(model, x_val, params.evaluate.batch_size).argmax(1)] if len(val) else []
    val_accuracy = float((predicted == val["label"].astype(str).to_numpy()).mean()) if len(val) else None
    return {"strategy": strategy, "modality": "image", "device": "cpu", "world_size": 1, "labels": labels,
            "train_rows": len(train), **fit, "trainable_params": trainable, "total_params": total,
            "image_size": size, "resumed_from": None,
            "learning_rates": None if entry.fit_on_features else {
                "body": getattr(cfg, entry.learning_rate), "body_param": entry.learning_rate,
                "head": cfg.head_learning_rate},
            "val_accuracy": val_accuracy}


def train(params: Params, train_df: pd.DataFrame, val_df: pd.DataFrame, strategy: str, folder: Path, *,
          progress: Progress | None = None, **context) -> dict:
    """The modality's train: `strategy` trained into `folder` (the text recipe's champion, cache and
    checkpoint context does not apply to images); its training log."""
    return train_image_model(train_df, val_df, strategy, params, folder, progress)
