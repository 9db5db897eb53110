"""A converged head on a frozen encoder: L2-regularised logistic regression on its cached features.

When the encoder does not change (the `head` strategy), training the head is a convex problem: a
softmax regression on the pooled features the head sees. So instead of epochs of stochastic steps,
the features are computed once and scikit-learn's L-BFGS solves the problem to convergence, once per
regularisation strength C in `train.head_c_grid`; the C with the best validation macro-F1 wins (ties:
the smaller C, the stronger regularisation). Classes are weighted inversely to their row counts (scikit-learn's
`class_weight="balanced"`), the loss that macro-F1 asks for: a week that brings new labels replays every
remembered row, and 8 new rows per class beside 600 old ones would otherwise be drowned (docs/decisions.md has
the figures); where the classes are balanced the weights are all about 1. When the head replays the memory, the validation rows are the new batch's plus a held-out fifth of the replayed rows, and
the chosen C is then refit on every row (`replay_holdout`). Seconds, not epochs, and no learning rate to tune.

When the validation split is too small to choose with (fewer than MIN_VAL_ROWS_PER_LABEL rows per
label), C falls back to DEFAULT_C. Cross-validation on the training rows would not be honest here:
they hold augmented copies of the same texts, which would land on both sides of a fold.

Each modality computes the features and writes the fitted weights into its classifier's `nn.Linear` head
(modalities/text/head.py, modalities/image/recipe.py), so the saved model is the same as any other strategy's.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

DEFAULT_C = 1.0               # scikit-learn's default strength, used when validation cannot choose
MIN_VAL_ROWS_PER_LABEL = 2    # fewer validation rows per label than this: too few to choose C with
MAX_ITER = 5000               # L-BFGS iterations at most; far more than a few thousand 384-d rows need
REPLAY_HOLDOUT = 0.2          # share of the replayed memory rows that also choose C (then every row is fit)


# ---- the fit on arrays ----------------------------------------------------------------------

def fit_one(features: np.ndarray, y: np.ndarray, c: float):
    """One L-BFGS logistic regression; (model, iterations, converged)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf = LogisticRegression(C=c, solver="lbfgs", max_iter=MAX_ITER, class_weight="balanced").fit(features, y)
    iterations = int(np.max(clf.n_iter_))
    converged = iterations < MAX_ITER and not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return clf, iterations, converged


def _scores(clf, features: np.ndarray, y: np.ndarray, n_labels: int) -> dict:
    from sklearn.metrics import f1_score

    predicted = clf.predict(features)
    return {"val_accuracy": round(float((predicted == y).mean()), 4),
            "val_macro_f1": round(float(f1_score(y, predicted, labels=list(range(n_labels)), average="macro",
                                                 zero_division=0)), 4)}


def head_weights(clf, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(weight [n_labels, dim], bias [n_labels]) of a softmax layer computing the same probabilities.

    scikit-learn keeps one row for two classes (p1 = sigmoid(w.x + b)); a two-row softmax with rows
    -w/2 and +w/2 gives exactly that probability."""
    coef, intercept = clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)
    if n_labels == 2 and coef.shape[0] == 1:
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return np.ascontiguousarray(coef), np.ascontiguousarray(intercept)  # scikit-learn may keep coef_ column-major


def fit_logistic(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_labels: int,
                 c_grid: list[float], progress: Callable[[int, int, dict], None] | None = None):
    """Fit one model per C on the training features, keep the best on validation; (model, record).

    y holds label ids 0..n_labels-1; validation rows whose label the training rows lack are left out
    of the choice (no C can get them right). The record says what was tried and why C was chosen."""
    x_train = np.asarray(x_train, np.float64)
    known = y_val >= 0
    x_val, y_val = np.asarray(x_val, np.float64)[known], y_val[known]
    enough = len(y_val) >= MIN_VAL_ROWS_PER_LABEL * n_labels
    grid = sorted(set(c_grid)) if enough else [DEFAULT_C]
    tried, best = [], None
    for i, c in enumerate(grid, 1):
        start = time.perf_counter()
        clf, iterations, converged = fit_one(x_train, y_train, c)
        row = {"C": c, **(_scores(clf, x_val, y_val, n_labels) if len(y_val) else {}),
               "iterations": iterations, "converged": converged, "seconds": round(time.perf_counter() - start, 3)}
        tried.append(row)
        if best is None or (row["val_macro_f1"], row["val_accuracy"]) > (best[1]["val_macro_f1"],
                                                                         best[1]["val_accuracy"]):
            best = (clf, row)
        if progress is not None:
            progress(i, len(grid), dict(row))
    clf, chosen = best
    if enough:
        chosen_by = f"validation macro-F1 ({len(y_val)} rows; ties go to the smaller C)"
    else:
        chosen_by = (f"default C={DEFAULT_C}: the validation split has {len(y_val)} usable rows, fewer than "
                     f"{MIN_VAL_ROWS_PER_LABEL} per label ({MIN_VAL_ROWS_PER_LABEL * n_labels}), too few to choose C")
    record = {"method": "L2 logistic regression, L-BFGS (scikit-learn), classes weighted inversely to their counts, "
                        "on the frozen encoder's pooled features",
              "c_grid": grid, "tried": tried, "chosen_c": chosen["C"], "chosen_by": chosen_by,
              "iterations": chosen["iterations"], "converged": chosen["converged"]}
    return clf, record


# ---- the classifier's head ------------------------------------------------------------------

def replay_holdout(train_df: pd.DataFrame, seed: int) -> np.ndarray:
    """Which training rows also choose C: REPLAY_HOLDOUT of the replayed memory rows, per label (seeded).

    A new batch's validation split is small (tens of rows), and the C it picks swings from week to week;
    the head then moves on the past batches it replays, and the gate sees forgetting. Replayed rows are the
    past batches' own training rows (never augmented, so no copy lands on both sides): a held-out part of
    them makes the choice weigh the past too."""
    held = np.zeros(len(train_df), dtype=bool)
    if "replayed" not in train_df:
        return held
    rng = np.random.default_rng(seed)
    replayed = train_df["replayed"].to_numpy(dtype=bool)
    for _, idx in train_df[replayed].groupby("label").indices.items():
        rows = np.flatnonzero(replayed)[idx]
        k = int(len(rows) * REPLAY_HOLDOUT)
        if k and len(rows) - k >= 1:
            held[rng.choice(rows, size=k, replace=False)] = True
    return held
