"""The promotion gate's statistics: is a difference between candidate and champion real, or the noise of a few
test rows? Pure numpy; promote.py words the verdict.

Both models are scored on the same test rows, so the comparison is paired: the rows are resampled with
replacement (the same draw for both models), `resamples` times from a fixed `seed`, and the macro-F1 difference
(candidate minus champion, in points) is computed on every draw. Its spread is the noise of those rows:

- the interval at `confidence` (percentile: 2.5th to 97.5th at 0.95) is what the verdict reports;
- a one-sided p-value against a threshold (the share of draws on the wrong side of it) decides. A gain is
  significant when p <= alpha = (1 - confidence) / 2, i.e. when the interval's lower end clears the threshold;
  the same for a loss beyond `max_forgetting` and the interval's upper end.

Several past groups (batches, label sets) are judged together with Holm's step-down correction, so that ten
past batches do not give ten chances to reject on noise: the smallest p-value is held to alpha / K, the next
to alpha / (K - 1), and so on, stopping at the first that passes. (The gain on new data and the forgetting are
separate conditions that must all hold, so they need no correction between them.) How the past is grouped is
`promote.past` (past_groups): each batch alone sees one forgotten batch; the batches of one label set pooled see
a task forgotten a little everywhere, which no 80-row batch can show alone; the memory pooled dilutes one
forgotten batch among the others. bench/results/stream-gate/options.md measures them on simulated memories.

Enough rows: a loss of `limit` points on n rows is about n * limit / 100 rows gone wrong. Even when every one
of them went wrong and no other row changed (the cleanest loss there is), a sign test needs k rows for
significance, where 0.5 ** k <= alpha; a split with fewer than `rows_to_detect(limit, alpha)` rows cannot
detect a loss of `limit` points, and the verdict says so. The count is exact for accuracy and close for macro-F1
on balanced labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from driftfit.config import PAST  # promote.past: how the past batches are weighed

RESAMPLE_CHUNK = 250  # resamples drawn at once: bounds memory (chunk x rows counts) on a large memory
PREDICTIONS = "predictions.csv"  # evaluate writes it in the evaluation folder: per test row, the label and each
                                 # model's answer (columns split, batch, label, candidate, champion, baseline)


# ---- macro-F1 on resampled rows ----------------------------------------------------------------

def encode(truth, *predictions) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Labels as integers: the true labels (sorted) first, then labels only ever predicted. Returns (truth codes,
    prediction codes, number of true labels)."""
    truth = np.asarray(truth, dtype=object).astype(str)
    preds = [np.asarray(p, dtype=object).astype(str) for p in predictions]
    if any(len(p) != len(truth) for p in preds):
        raise ValueError(f"predictions and truth differ in length: {len(truth)} true labels, "
                         f"{[len(p) for p in preds]} predictions")
    known = sorted(set(truth))
    extra = sorted(set().union(*map(set, preds)) - set(known)) if preds else []
    index = {label: i for i, label in enumerate(known + extra)}
    code = np.vectorize(index.__getitem__, otypes=[np.int64])
    return (code(truth) if len(truth) else np.zeros(0, np.int64),
            [code(p) if len(p) else np.zeros(0, np.int64) for p in preds], len(known))


def resample_counts(rows: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each row is drawn in each of `resamples` draws of `rows` rows with replacement."""
    picks = rng.integers(0, rows, size=(resamples, rows))
    flat = picks + rows * np.arange(resamples)[:, None]
    return np.bincount(flat.ravel(), minlength=resamples * rows).reshape(resamples, rows)


def per_label_f1(truth: np.ndarray, pred: np.ndarray, n_true: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F1 of each true label, how many rows of it) under each row of `weights` (draws x rows): F1 = 2 TP /
    (rows of the label + predictions of it); labels a model predicts that are not true labels only cost recall."""
    truth_hot = truth[:, None] == np.arange(n_true)[None, :]
    pred_hot = pred[:, None] == np.arange(n_true)[None, :]
    w = np.asarray(weights, dtype=float)
    true_n = w @ truth_hot
    both = true_n + w @ pred_hot
    tp = w @ (truth_hot & pred_hot)
    f1 = np.divide(2 * tp, both, out=np.zeros_like(both), where=both > 0)
    return f1, true_n


def macro_f1(truth: np.ndarray, pred: np.ndarray, n_true: int, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 over the labels present in each weighted draw (as sklearn's f1_score with labels = the sorted
    true labels, zero_division=0, on the unweighted rows)."""
    f1, true_n = per_label_f1(truth, pred, n_true, weights)
    present = true_n > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


@dataclass(frozen=True)
class Paired:
    """Candidate minus champion macro-F1 on the same rows, in points: the point estimate and its bootstrap draws."""
    rows: int
    difference: float
    draws: np.ndarray

    def interval(self, confidence: float) -> tuple[float, float]:
        tail = (1 - confidence) / 2
        low, high = np.quantile(self.draws, [tail, 1 - tail])
        return float(low), float(high)

    def p_not_above(self, threshold: float) -> float:
        """One-sided p-value of 'the difference is above threshold' (a gain beyond it): the share of draws at or
        below it (with one added to count and total, so it is never 0)."""
        return float((1 + np.count_nonzero(self.draws <= threshold)) / (1 + len(self.draws)))

    def p_not_below(self, threshold: float) -> float:
        """One-sided p-value of 'the difference is below threshold' (a loss beyond it)."""
        return float((1 + np.count_nonzero(self.draws >= threshold)) / (1 + len(self.draws)))


def paired_bootstrap(truth, candidate, champion, resamples: int, seed: int,
                     row_weights: np.ndarray | None = None) -> Paired:
    """Candidate minus champion macro-F1 (points) on the same rows, resampled in pairs; `row_weights` (optional)
    weigh the rows within every draw (a recency-weighted memory)."""
    t, (a, b), n_true = encode(truth, candidate, champion)
    if len(t) == 0:
        raise ValueError("a paired comparison needs at least one test row")
    base = np.ones((1, len(t))) if row_weights is None else np.asarray(row_weights, float)[None, :]
    point = 100 * float(macro_f1(t, a, n_true, base)[0] - macro_f1(t, b, n_true, base)[0])
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, RESAMPLE_CHUNK):
        w = resample_counts(len(t), min(RESAMPLE_CHUNK, resamples - start), rng) * base
        draws.append(100 * (macro_f1(t, a, n_true, w) - macro_f1(t, b, n_true, w)))
    return Paired(rows=len(t), difference=point, draws=np.concatenate(draws))


# ---- several tests at once ---------------------------------------------------------------------

def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (compare each with alpha): the i-th smallest times (K - i + 1), kept monotone."""
    adjusted, running = {}, 0.0
    order = sorted(pvalues, key=pvalues.get)
    for i, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * pvalues[name]))
        adjusted[name] = running
    return adjusted


def resamples_for(tests: int, alpha: float, asked: int) -> int:
    """Enough resamples for Holm over `tests` tests: the smallest bootstrap p-value, 1 / (resamples + 1), must be
    well under alpha / tests (here a quarter of it), or even the clearest loss could never be significant."""
    return max(asked, math.ceil(4 * tests / alpha))


def rows_to_detect(limit: float, alpha: float) -> int | None:
    """The fewest test rows on which a loss of `limit` macro-F1 points can be significant at one-sided `alpha`
    (every lost row against none gained: a sign test needs k rows with 0.5 ** k <= alpha); None for limit 0."""
    if limit <= 0:
        return None
    k = math.ceil(math.log2(1 / alpha) - 1e-12)
    return math.ceil(100 * k / limit - 1e-9)


# ---- the past, grouped -------------------------------------------------------------------------



def past_groups(batches: dict[str, np.ndarray], how: str) -> dict[str, list[str]]:
    """The groups the gate judges the past by, each a list of past batches (their rows pooled):
    batches            every past batch alone;
    batches_and_labels every past batch alone, and the batches that share a label set (two or more) together;
    memory             every past row together (a batch weighs by its size).
    `batches` maps each past batch to its true labels."""
    if how not in PAST:
        raise ValueError(f"unknown way to weigh the past: {how!r}; expected one of {PAST}")
    if how == "memory":
        return {"memory": list(batches)} if batches else {}
    groups = {b: [b] for b in batches}
    if how == "batches_and_labels":
        sets: dict[tuple, list[str]] = {}
        for b, truth in batches.items():
            sets.setdefault(tuple(sorted(set(np.asarray(truth).astype(str)))), []).append(b)
        for labels, members in sets.items():
            if len(members) > 1:
                groups["labels " + ", ".join(labels)] = members
    return groups


# ---- the verdicts --------------------------------------------------------------------------------

def alpha_of(confidence: float) -> float:
    """The one-sided level that matches a two-sided interval at `confidence`."""
    return (1 - confidence) / 2


def _numbers(paired: Paired, confidence: float) -> dict:
    low, high = paired.interval(confidence)
    return {"rows": paired.rows, "difference": round(paired.difference, 4), "low": round(low, 4),
            "high": round(high, 4)}


def judge_gain(truth, candidate, other, threshold: float, confidence: float, resamples: int, seed: int) -> dict:
    """Candidate against another model (the champion, or the baseline) on one test split: `verdict` is 'gain'
    (significantly above `threshold`), 'worse' (significantly below 0) or 'tie' (neither)."""
    paired = paired_bootstrap(truth, candidate, other, resamples, seed)
    alpha = alpha_of(confidence)
    p_gain, p_worse = paired.p_not_above(threshold), paired.p_not_below(0.0)
    verdict = "gain" if p_gain <= alpha else "worse" if p_worse <= alpha else "tie"
    return {**_numbers(paired, confidence), "p_gain": round(p_gain, 6), "p_worse": round(p_worse, 6),
            "verdict": verdict}


def judge_past(past: dict[str, tuple], limit: float, how: str, confidence: float, resamples: int, seed: int) -> dict:
    """Forgetting over the past batches: past maps each batch to (truth, candidate, champion) on its test rows.

    Every group of `past_groups(.., how)` is compared; its p-value against a loss beyond `limit` is Holm-adjusted
    over the groups, and the candidate forgets when some adjusted p <= alpha. Each group's `state`: 'beyond' (a
    loss significantly beyond the limit), 'loss' (a real loss, the interval below 0, not significantly beyond
    the limit), 'gain' (the interval above 0) or 'noise' (the interval holds 0); `too_small` when it has fewer
    rows than `rows_to_detect(limit)`."""
    alpha = alpha_of(confidence)
    groups = past_groups({b: rows[0] for b, rows in past.items()}, how)
    draws = resamples_for(len(groups), alpha, resamples)
    needed = rows_to_detect(limit, alpha)
    judged, pvalues = {}, {}
    for name, members in groups.items():
        truth, cand, champ = (np.concatenate([np.asarray(past[b][i], dtype=object) for b in members]) for i in range(3))
        paired = paired_bootstrap(truth, cand, champ, draws, seed)
        pvalues[name] = paired.p_not_below(-limit)
        judged[name] = {"group": name, "batches": members, **_numbers(paired, confidence),
                        "p_beyond": round(pvalues[name], 6),
                        "too_small": needed is not None and paired.rows < needed}
    adjusted = holm(pvalues)
    for name, g in judged.items():
        g["p_adjusted"] = round(adjusted[name], 6)
        g["state"] = ("beyond" if adjusted[name] <= alpha else "loss" if g["high"] < 0
                      else "gain" if g["low"] > 0 else "noise")
    return {"groups": list(judged.values()), "passed": not any(g["state"] == "beyond" for g in judged.values()),
            "alpha": alpha, "resamples": draws, "rows_needed": needed, "how": how}
