"""The `head` strategy for texts: a converged logistic regression on the frozen encoder's features
(driftfit.training.head_fit), written into the classifier's head."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from driftfit.config import Params
from driftfit.modalities.text.model import TextClassifier, head_inputs
from driftfit.training.head_fit import fit_logistic, fit_one, head_weights, replay_holdout


def fit_head(model: TextClassifier, tokenizer, train_df: pd.DataFrame, val_df: pd.DataFrame,
             label_ids: dict[str, int], params: Params, device: torch.device,
             progress: Callable[[int, int, dict], None] | None = None,
             features: Callable[[list[str]], np.ndarray] | None = None) -> tuple[TextClassifier, dict]:
    """Fit `model.head` to convergence on the frozen encoder's features; (model, what the train log needs).
    features: texts -> what the head sees (`head_inputs` of this frozen encoder), e.g. from a feature cache:
    the replayed rows come back every week."""
    from sklearn.metrics import log_loss

    start = time.perf_counter()
    n_labels, max_len, batch = len(label_ids), params.model.max_seq_len, params.evaluate.batch_size
    features = features or (lambda texts: head_inputs(model, tokenizer, texts, max_len, batch, device))
    x_train, x_val = features(list(train_df["text"])), features(list(val_df["text"]))
    feature_seconds = time.perf_counter() - start
    y_train = np.array([label_ids[l] for l in train_df["label"]])
    y_val = np.array([label_ids.get(l, -1) for l in val_df["label"]], dtype=int)
    if n_labels == 1:  # one label: nothing to separate; a zero head predicts it with certainty
        weight, bias = np.zeros((1, x_train.shape[1])), np.zeros(1)
        record, train_loss = {"method": "one label: nothing to fit", "converged": True, "iterations": 0}, 0.0
    else:
        held = replay_holdout(train_df, params.train.seed)
        if held.any():  # C is chosen on the new batch's validation rows and held-out replayed rows, then refit on all
            clf, record = fit_logistic(x_train[~held], y_train[~held], np.concatenate([x_val, x_train[held]]),
                                       np.concatenate([y_val, y_train[held]]), n_labels, params.train.head_c_grid,
                                       progress)
            clf, iterations, converged = fit_one(np.asarray(x_train, np.float64), y_train, record["chosen_c"])
            record.update(chosen_by=record["chosen_by"] + f", with {int(held.sum())} held-out replayed rows; "
                          "then refit on every training row", iterations=iterations, converged=converged)
        else:
            clf, record = fit_logistic(x_train, y_train, x_val, y_val, n_labels, params.train.head_c_grid, progress)
        weight, bias = head_weights(clf, n_labels)
        train_loss = float(log_loss(y_train, clf.predict_proba(x_train), labels=list(range(n_labels))))
    with torch.no_grad():
        model.head.weight.copy_(torch.as_tensor(weight, dtype=model.head.weight.dtype))
        model.head.bias.copy_(torch.as_tensor(bias, dtype=model.head.bias.dtype))
    seconds = time.perf_counter() - start
    record.update(feature_seconds=round(feature_seconds, 2), fit_seconds=round(seconds - feature_seconds, 2))
    if params.train.l1 > 0:
        record["l1"] = f"not applied: the head's penalty is L2 (C); train.l1 = {params.train.l1} is for Trainer strategies"
    return model, {"steps": record["iterations"], "train_loss": round(train_loss, 4), "seconds": round(seconds, 2),
                   "resumed_from": None, "head_fit": record}
