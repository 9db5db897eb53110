"""Shift statistics every modality computes on its own features (text embeddings, image features): each
answers one question the strategy rules (driftfit.policy.rules) ask.
- embedding shift: did the frozen features move? (MMD² + permutation test; a domain classifier's
  cross-validated ROC AUC, as in Rabanser et al. 2019, "Failing Loudly")
- label shift: labels new or vanished, Jensen–Shannon divergence of the label shares
- transferability: how far frozen features go on the new task (linear probe, and one fit on the memory plus
  the batch; LogME, You et al. 2021)
- data size: rows, rows per class
Each modality's `measure` (driftfit/modalities/*/measures.py) samples, embeds and assembles the report.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import torch
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


log = logging.getLogger(__name__)

MEDIAN_PAIRS_ROWS = 1000  # rows used to find the median distance (bandwidth); more is slower, no better


def _finite_or_none(x) -> float | None:
    """A plain float for JSON; NaN/inf become None."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


# ---- embedding shift: MMD² with a vectorised permutation test, and a domain classifier -------

def rbf_kernel(z: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """Gaussian kernel exp(-d²/2σ²) over the rows of z, σ = median pairwise distance; returns (K, σ)."""
    z = np.asarray(z, dtype=np.float64)
    sq = (z * z).sum(1)
    zt = torch.from_numpy(z)
    d2 = (zt @ zt.T).numpy()  # torch's matmul is ~2x numpy's here; d² = |a|² + |b|² - 2ab, then K, in place
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    rows = np.random.default_rng(seed).permutation(len(z))[:MEDIAN_PAIRS_ROWS]
    upper = np.triu_indices(len(rows), 1)
    med = float(np.median(d2[np.ix_(rows, rows)][upper])) if len(rows) > 1 else 0.0
    sigma2 = med if med > 0 else 1.0  # all points equal: any bandwidth gives the same answer
    d2 *= -1.0 / (2.0 * sigma2)
    np.exp(d2, out=d2)
    return d2, math.sqrt(sigma2)


def permuted_mmd2(kernel: np.ndarray, n: int, splits: np.ndarray) -> np.ndarray:
    """Unbiased MMD² for many splits at once. splits[p] orders all N points; its first n are "X".

    With a = the X-indicator of a split and b = 1 - a, the three kernel sums are quadratic forms,
    aᵀKa, bᵀKa and bᵀKb, and all of them follow from one product K @ A over every split (N × P),
    so there is no Python loop over permutations.
    """
    big_n, p = kernel.shape[0], splits.shape[0]
    m = big_n - n
    a = np.zeros((big_n, p), dtype=kernel.dtype)
    a[splits[:, :n], np.arange(p)[:, None]] = 1.0
    ka = kernel @ a
    col = ka.sum(0)                          # 1ᵀ K a
    kxx = (a * ka).sum(0)                    # aᵀ K a
    kxy = col - kxx                          # bᵀ K a
    kyy = kernel.sum() - 2.0 * col + kxx     # bᵀ K b
    diag = np.diag(kernel)
    dx = diag @ a                            # the i = j terms the unbiased estimator leaves out
    dy = diag.sum() - dx
    return (kxx - dx) / (n * (n - 1)) + (kyy - dy) / (m * (m - 1)) - 2.0 * kxy / (n * m)


def permutation_splits(n_total: int, permutations: int, seed: int = 0) -> np.ndarray:
    """The observed split (row 0: 0..N-1 in order) and `permutations` seeded shuffles of it."""
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(np.arange(n_total), (permutations, 1)), axis=1)
    return np.vstack([np.arange(n_total)[None, :], perms])


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int, seed: int = 0) -> dict:
    """MMD² between samples x and y (RBF kernel, median bandwidth) and its permutation p-value."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return {"mmd2": None, "p_value": None, "bandwidth": None, "permutations": 0}
    kernel, sigma = rbf_kernel(np.vstack([x, y]), seed)
    stats = permuted_mmd2(kernel, n, permutation_splits(n + m, permutations, seed))
    observed, null = stats[0], stats[1:]
    # The observed split counts as one of the permutations, so p is never 0 (Phipson & Smyth 2010).
    p_value = (1 + int((null >= observed - 1e-12).sum())) / (1 + permutations)
    return {"mmd2": _finite_or_none(observed), "p_value": p_value, "bandwidth": sigma, "permutations": permutations}


def domain_classifier(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """Cross-validated ROC AUC of logistic regression telling x (0) from y (1); 0.5 = indistinguishable."""
    folds = min(5, len(x), len(y))
    if folds < 2:
        return {"auc": None, "auc_std": None, "folds": 0}
    z = np.vstack([x, y])
    target = np.r_[np.zeros(len(x), int), np.ones(len(y), int)]
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(max_iter=1000), z, target, cv=cv, scoring="roc_auc")
    return {"auc": _finite_or_none(scores.mean()), "auc_std": _finite_or_none(scores.std()), "folds": folds}


# ---- label shift ----------------------------------------------------------------------------

def label_counts(labels) -> pd.Series:
    """Rows per label, labels as strings, sorted by label: one count over the column, no copy of the rows."""
    counts = pd.Series(labels).value_counts()
    counts.index = counts.index.map(str)
    return counts.groupby(level=0).sum().sort_index()  # 1 and '1' are one label once read as strings


def label_shift(reference_labels, incoming_labels) -> dict:
    """Label shares; with a reference also new and vanished labels and the JS divergence (base 2, 0..1).

    Labels are lists or pandas Series: the shares are exact, from counts."""
    counts = label_counts(incoming_labels)
    inc = counts / counts.sum()
    out = {"incoming_distribution": {k: float(v) for k, v in inc.items()}}
    if reference_labels is None:
        return out
    counts = label_counts(reference_labels)
    ref = counts / counts.sum()
    union = sorted(set(ref.index) | set(inc.index))
    p, q = ref.reindex(union, fill_value=0.0).to_numpy(), inc.reindex(union, fill_value=0.0).to_numpy()
    js = jensenshannon(p, q, base=2) ** 2 if len(ref) and len(inc) else None
    out["reference_distribution"] = {k: float(v) for k, v in ref.items()}
    out["new_labels"] = sorted(set(inc.index) - set(ref.index))
    out["vanished_labels"] = sorted(set(ref.index) - set(inc.index))
    out["js_divergence"] = _finite_or_none(js)
    return out


# ---- transferability of frozen features -----------------------------------------------------

def linear_probe(train_emb: np.ndarray, train_labels: list[str], val_emb: np.ndarray,
                 val_labels: list[str]) -> dict:
    """Logistic regression on frozen embeddings: accuracy and macro-F1 on the validation split."""
    if len(set(train_labels)) < 2 or len(val_labels) == 0:
        return {"accuracy": None, "macro_f1": None, "note": "needs two training classes and validation rows"}
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    pred = probe.fit(train_emb, train_labels).predict(val_emb)
    return {"accuracy": float(accuracy_score(val_labels, pred)),
            "macro_f1": float(f1_score(val_labels, pred, average="macro", zero_division=0))}


def probe_with_memory(memory_emb: np.ndarray | None, memory_labels: list[str], incoming_emb: np.ndarray,
                      incoming_labels: list[str], folds: int = 5, seed: int = 0) -> dict:
    """What a head trained on the memory plus this batch would score on this batch: a linear probe fit on the
    memory sample and all but one fold of the incoming rows, scored on that fold, over every fold (stratified
    k-fold). The skip rule compares it with the champion's score on the same incoming rows."""
    labels = np.asarray(incoming_labels)
    counts = pd.Series(labels).value_counts()
    k = int(min(folds, counts.min())) if len(counts) else 0
    if k < 2 or len(set(memory_labels) | set(labels)) < 2:
        return {"accuracy": None, "rows": len(labels), "note": "needs two rows of each incoming label"}
    mem_x = memory_emb if memory_emb is not None else np.zeros((0, incoming_emb.shape[1]), incoming_emb.dtype)
    mem_y = np.asarray(memory_labels, dtype=object)
    correct = np.zeros(len(labels), dtype=bool)
    for fit_rows, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(incoming_emb, labels):
        # weighted as the head is (driftfit.head_fit): a few new rows beside a large memory still count
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
        probe.fit(np.concatenate([mem_x, incoming_emb[fit_rows]]),
                  np.concatenate([mem_y, labels[fit_rows].astype(object)]))
        correct[held] = probe.predict(incoming_emb[held]) == labels[held]
    return {"accuracy": float(correct.mean()), "rows": len(labels), "folds": k, "memory_rows": len(mem_x)}


def logme(features: np.ndarray, labels: list[str]) -> float | None:
    """LogME (You et al. 2021): mean per-class log evidence of a Bayesian linear model; higher transfers better."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    if n < 2 or len(set(labels)) < 2:
        return None
    s, v = np.linalg.eigh(f.T @ f)  # FᵀF = V diag(s) Vᵀ
    s = np.clip(s, 0.0, None)
    evidences = []
    for label in sorted(set(labels)):
        y = (np.asarray(labels) == label).astype(np.float64)
        proj = v.T @ (f.T @ y)
        alpha, beta = 1.0, 1.0
        for _ in range(11):  # fixed-point on (alpha, beta); converges in a few steps
            lam = alpha / beta
            gamma = (s / (s + lam)).sum()
            mean = v @ (proj * beta / (alpha + beta * s))
            alpha_de = (mean * mean).sum() + 1e-5
            beta_de = ((y - f @ mean) ** 2).sum() + 1e-5
            alpha, beta = gamma / alpha_de, (n - gamma) / beta_de
            if abs(alpha / beta - lam) / lam < 0.01:
                break
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * np.log(alpha + beta * s).sum()
                    - beta / 2 * beta_de - alpha / 2 * alpha_de - n / 2 * math.log(2 * math.pi))
        evidences.append(evidence / n)
    return _finite_or_none(np.mean(evidences))


# ---- data size and champion -----------------------------------------------------------------

def data_size(train: pd.DataFrame, val: pd.DataFrame, reference: pd.DataFrame | None) -> dict:
    counts = label_counts(train["label"])
    return {"rows": len(train), "val_rows": len(val), "classes": len(counts),
            "min_per_class": int(counts.min()) if len(counts) else 0,
            "per_class": {k: int(v) for k, v in counts.items()},
            "reference_rows": None if reference is None else len(reference)}


# ---- samples ----

def sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)


