"""Scores every modality shares: quality (accuracy, macro-F1, calibration, per-class report, confusion matrix),
per past batch of the memory, cost (parameters, size on disk, latency), and the metrics.json record.

`metrics.json` holds only numbers that the same inputs reproduce exactly (DVC compares runs with it); latency
varies run to run, so it goes to `<evaluation>/latency.json`. Labels a model does not know count as wrong.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from driftfit.config import Params
from driftfit.data.splits import TEST, read_split

LATENCY_BATCHES = (1, 32)
# Records kept beside a model (training log, registry record, model card): their length varies with timings
# and dates, so they are not part of the model's size, which is then the same whichever door trained it.
RECORDS = frozenset({"train_log.json", "version.json", "MODEL_CARD.md"})


# ---- quality ---------------------------------------------------------------------------------

def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence|, weighted by bin size."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def score(y_true: list[str], y_pred: list[str], confidence: np.ndarray, bins: int) -> dict:
    """Accuracy, macro-F1 over the true labels, ECE, per-class report and confusion matrix."""
    labels = sorted(set(y_true))
    correct = np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)
    return {
        "rows": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)) if y_true else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "ece": expected_calibration_error(np.asarray(confidence, dtype=float), correct.astype(float), bins),
        "per_class": classification_report(y_true, y_pred, labels=labels, output_dict=True, zero_division=0),
        "confusion": {"labels": labels,
                      "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }


def evaluate_rows(scorer, rows: pd.DataFrame, bins: int) -> tuple[dict, list[str]]:
    """A scorer's (driftfit.modalities.Scorer) quality on `rows`, and its answer for each row."""
    probs = scorer.predict_proba(rows)
    pred = [scorer.labels[i] for i in probs.argmax(1)] if len(probs) else []
    confidence = probs.max(1) if len(probs) else np.zeros(0)
    return score(list(rows["label"].astype(str)), pred, confidence, bins), pred


def plot_confusion(confusion: dict, title: str, path: Path) -> None:
    """The confusion matrix as a PNG (true labels down, predicted across)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    labels, matrix = confusion["labels"], np.array(confusion["matrix"])
    size = 2.5 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    for (i, j), n in np.ndenumerate(matrix):
        if n:
            ax.text(j, i, str(n), ha="center", va="center",
                    color="white" if n > matrix.max() / 2 else "black", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def per_batch(df: pd.DataFrame, predicted: list[str]) -> dict[str, dict]:
    """Macro-F1 and rows per past batch of the data memory (the reference test split's `batch` column):
    forgetting shows per batch, not averaged away."""
    out = {}
    pred = np.asarray(predicted, dtype=object)
    for batch, rows in df.groupby("batch", sort=False).indices.items():
        truth = df["label"].astype(str).to_numpy()[rows]
        out[str(batch)] = {"rows": len(rows), "macro_f1": round(float(
            f1_score(truth, pred[rows], labels=sorted(set(truth)), average="macro", zero_division=0)), 6)}
    return out


def headline(result: dict) -> dict:
    """The numbers metrics.json keeps per model and split (reproducible ones only)."""
    return {k: round(result[k], 6) for k in ("accuracy", "macro_f1", "ece")}


# ---- the test splits and the task's labels -----------------------------------------------------

def read_test_splits(params: Params, modality) -> dict[str, pd.DataFrame]:
    """test and reference_test (when present), as the modality reads rows."""
    return {name: modality.restored(params, df) for name in TEST
            if (df := read_split(params.paths.prepared, name)) is not None}


def task_labels(params: Params) -> list[str]:
    """The label set of the task: every label in the training data, new and reference."""
    labels: set[str] = set()
    for name in ("train", "reference_train"):
        df = read_split(params.paths.prepared, name)
        if df is not None:
            labels |= set(df["label"].astype(str))
    return sorted(labels)


def score_on_tests(params: Params, scorer, splits: dict[str, pd.DataFrame], batches: dict | None = None,
                   answers: dict | None = None) -> dict:
    """A scorer's headline scores on every test split (promote re-scores a champion with it); with `batches`,
    its per-batch scores on the reference test split are put there too; with `answers`, its predicted label
    for every row of each split (split -> list)."""
    scores = {}
    for split, df in splits.items():
        result, predicted = evaluate_rows(scorer, df, params.evaluate.calibration_bins)
        scores[split] = headline(result)
        if batches is not None and split == "reference_test" and "batch" in df:
            batches.update(per_batch(df, predicted))
        if answers is not None:
            answers[split] = predicted
    return scores


# ---- cost ------------------------------------------------------------------------------------

def size_on_disk(folder: Path) -> int:
    """Bytes of what serving loads: every file of the model folder but the records beside it."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.name not in RECORDS)


def time_per_example(run: Callable[[np.ndarray], object], examples: int) -> dict:
    """Milliseconds per example, p50/p95, at each batch size in LATENCY_BATCHES. `run(indices)` scores the
    examples at those positions of a pool of max(examples, 32) (a modality's rows, cycled)."""
    pool = max(examples, max(LATENCY_BATCHES))
    out = {}
    for batch in LATENCY_BATCHES:
        run(np.arange(batch))  # warm-up
        # batch 1: every example once; larger batches: at least 5 timed batches for a stable p95
        runs = examples if batch == 1 else max(5, math.ceil(examples / batch))
        per_example = []
        for r in range(runs):
            start = (r * batch) % pool
            t = time.perf_counter()
            run((start + np.arange(batch)) % pool)
            per_example.append(1000 * (time.perf_counter() - t) / batch)
        out[f"batch_{batch}"] = {"p50_ms": round(float(np.percentile(per_example, 50)), 3),
                                 "p95_ms": round(float(np.percentile(per_example, 95)), 3),
                                 "timed_batches": runs}
    return out


# ---- the record ----------------------------------------------------------------------------------

def forgetting_per_batch(metrics: dict) -> dict[str, float]:
    """Champion minus candidate macro-F1 points on each past batch both were scored on (metrics.json's
    `reference_batches`); the gate judges them, evaluate records them all."""
    cand = (metrics.get("reference_batches") or {}).get("candidate") or {}
    champ = (metrics.get("reference_batches") or {}).get("champion") or {}
    return {b: 100.0 * (champ[b]["macro_f1"] - cand[b]["macro_f1"]) for b in cand if b in champ}


def predictions_table(results: dict, splits: dict) -> pd.DataFrame:
    """One row per test row of every split, in split order: split, batch (the past batch a reference_test row
    came from; empty otherwise), label, and one column per model with its predicted label."""
    frames = []
    for split, df in splits.items():
        frame = pd.DataFrame({"split": split,
                              "batch": df["batch"].astype(str).to_numpy() if "batch" in df else "",
                              "label": df["label"].astype(str).to_numpy()})
        for name, per_split in results.items():
            if split in per_split:
                frame[name] = list(per_split[split][1])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "batch", "label"])


def metrics_record(strategy: str, champion_version: str | None, results: dict, splits: dict, scorers: dict) -> dict:
    """metrics.json from every model's (result, predictions) per split: headline scores, per-batch scores on
    the reference test split, forgetting per past batch and cost (of the models with a folder on disk)."""
    metrics: dict = {"strategy": strategy, "champion_version": champion_version}
    for name, per_split in results.items():
        metrics[name] = {split: headline(r) for split, (r, _) in per_split.items()}
        if "reference_test" in per_split and "batch" in splits["reference_test"]:
            metrics.setdefault("reference_batches", {})[name] = per_batch(splits["reference_test"],
                                                                          per_split["reference_test"][1])
    lost = {b: round(points, 4) for b, points in forgetting_per_batch(metrics).items()}
    if lost:
        worst = max(lost, key=lost.get)
        metrics["forgetting"] = {"per_batch": lost, "worst": lost[worst], "worst_batch": worst,
                                 "mean": round(sum(lost.values()) / len(lost), 4)}
    metrics["cost"] = {name: {"parameters": scorer.parameters, "size_mb": round(size_on_disk(scorer.folder) / 2**20, 3)}
                       for name, scorer in scorers.items() if scorer.folder is not None}
    return metrics
