"""Evaluate the candidate, the current champion and the untrained pretrained baseline.

Every model is scored on the new test split and on the reference test split (forgetting shows as a
number). Labels a model does not know count as wrong.

- quality: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix (rows for DVC's
  confusion plot + a PNG), expected calibration error (ECE);
- cost (candidate and champion, the models that would serve): parameters, size on disk, and latency
  per example, p50/p95, at batch 1 and batch 32 on the machine this runs on.

`metrics.json` holds only numbers that the same inputs reproduce exactly (DVC compares runs with it);
latency varies run to run, so it goes to `<evaluation>/latency.json`. `<evaluation>/predictions.csv` holds every
model's answer on every test row, side by side: the gate compares candidate and champion row by row (gate.py).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from driftfit.config import Params
from driftfit.gate import PREDICTIONS
from driftfit.io import atomic_dir, read_json, write_json
from driftfit.modalities import runs_on
from driftfit.model import load_classifier, load_tokenizer, pick_device, predict_proba
from driftfit.prepare import read_split
from driftfit.registry import champion_info, version_dir

SPLITS = ("test", "reference_test")
LATENCY_BATCHES = (1, 32)


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


# ---- cost ------------------------------------------------------------------------------------

# Records kept beside a model (training log, registry record, model card): their length varies with timings
# and dates, so they are not part of the model's size, which is then the same whichever door trained it.
RECORDS = frozenset({"train_log.json", "version.json", "MODEL_CARD.md"})


def size_on_disk(folder: Path) -> int:
    """Bytes of what serving loads: every file of the model folder but the records beside it."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.name not in RECORDS)


def latency(model, tokenizer, texts: list[str], examples: int, max_len: int, device: torch.device) -> dict:
    """Milliseconds per example, p50/p95, at each batch size in LATENCY_BATCHES (tokenizing included)."""
    pool = [texts[i % len(texts)] for i in range(max(examples, max(LATENCY_BATCHES)))]
    out = {}
    for batch in LATENCY_BATCHES:
        predict_proba(model, tokenizer, pool[:batch], max_len, batch, device)  # warm-up
        # batch 1: every example once; larger batches: at least 5 timed batches for a stable p95
        runs = examples if batch == 1 else max(5, math.ceil(examples / batch))
        per_example = []
        for r in range(runs):
            start = (r * batch) % len(pool)
            chunk = (pool + pool)[start:start + batch]
            t = time.perf_counter()
            predict_proba(model, tokenizer, chunk, max_len, batch, device)
            per_example.append(1000 * (time.perf_counter() - t) / batch)
        out[f"batch_{batch}"] = {"p50_ms": round(float(np.percentile(per_example, 50)), 3),
                                 "p95_ms": round(float(np.percentile(per_example, 95)), 3),
                                 "timed_batches": runs}
    return out


# ---- the models ------------------------------------------------------------------------------

def task_labels(params: Params) -> list[str]:
    """The label set of the task: every label in the training data, new and reference."""
    labels: set[str] = set()
    for name in ("train", "reference_train"):
        df = read_split(params.paths.prepared, name)
        if df is not None:
            labels |= set(df["label"])
    return sorted(labels)


def load_models(params: Params, champion: str | None) -> dict[str, tuple]:
    """{name: (model, tokenizer, labels, folder or None)} for candidate, champion (a version) and baseline."""
    from driftfit.zero_shot import zero_shot_classifier

    models: dict[str, tuple] = {}
    candidate = Path(params.paths.candidate)
    if read_json(candidate / "train_log.json").get("trained"):
        models["candidate"] = (*load_classifier(candidate, params.model.trust_remote_code), candidate)
    if champion is not None:
        champ = version_dir(params.paths.registry, champion)  # its files checked against their digest
        models["champion"] = (*load_classifier(champ, params.model.trust_remote_code), champ)
    labels = task_labels(params)
    models["baseline"] = (zero_shot_classifier(params, labels), load_tokenizer(params.model), labels, None)
    return models


def evaluate_model(model, tokenizer, labels: list[str], df: pd.DataFrame, params: Params,
                   device: torch.device) -> tuple[dict, list[str]]:
    probs = predict_proba(model, tokenizer, list(df["text"]), params.model.max_seq_len,
                          params.evaluate.batch_size, device)
    pred = [labels[i] for i in probs.argmax(1)] if len(probs) else []
    confidence = probs.max(1) if len(probs) else np.zeros(0)
    return score(list(df["label"]), pred, confidence, params.evaluate.calibration_bins), pred


def per_batch(df: pd.DataFrame, predicted: list[str]) -> dict[str, dict]:
    """Macro-F1 and rows per past batch of the data memory (the reference test split's `batch` column):
    forgetting shows per batch, not averaged away."""
    out = {}
    pred = np.asarray(predicted, dtype=object)
    for batch, rows in df.groupby("batch", sort=False).indices.items():
        truth = df["label"].to_numpy()[rows]
        out[str(batch)] = {"rows": len(rows), "macro_f1": round(float(
            f1_score(truth, pred[rows], labels=sorted(set(truth)), average="macro", zero_division=0)), 6)}
    return out


def read_test_splits(params: Params) -> dict[str, pd.DataFrame]:
    return {name: df for name in SPLITS if (df := read_split(params.paths.prepared, name)) is not None}


def headline(result: dict) -> dict:
    """The numbers metrics.json keeps per model and split (reproducible ones only)."""
    return {k: round(result[k], 6) for k in ("accuracy", "macro_f1", "ece")}


def score_folder(params: Params, folder: Path, batches: dict | None = None, answers: dict | None = None) -> dict:
    """One saved classifier's headline scores on every test split (promote re-scores a champion with it);
    with `batches`, its per-batch scores on the reference test split are put there too; with `answers`, its
    predicted label for every row of each split (split -> list)."""
    model, tokenizer, labels = load_classifier(folder, params.model.trust_remote_code)
    device = pick_device(params.train.device)
    scores = {}
    for split, df in read_test_splits(params).items():
        result, predicted = evaluate_model(model, tokenizer, labels, df, params, device)
        scores[split] = headline(result)
        if batches is not None and split == "reference_test" and "batch" in df:
            batches.update(per_batch(df, predicted))
        if answers is not None:
            answers[split] = predicted
    return scores



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


def metrics_record(strategy: str, champion_version: str | None, results: dict, splits: dict, models: dict) -> dict:
    """metrics.json from every model's (result, predictions) per split, for text and images alike: headline
    scores, per-batch scores on the reference test split, forgetting per past batch (the gate's own measure)
    and cost. models: name -> (model, ..., folder), the folder None for a model with nothing on disk."""
    from driftfit.promote import forgetting_per_batch

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
    metrics["cost"] = {name: {"parameters": sum(p.numel() for p in entry[0].parameters()),
                              "size_mb": round(size_on_disk(entry[-1]) / 2**20, 3)}
                       for name, entry in models.items() if entry[-1] is not None}
    return metrics


@runs_on("text", "evaluate")
def run(params: Params) -> dict:
    """Score every model on every test split; write metrics.json and the evaluation folder."""
    from driftfit import candidate as run_candidate, registry

    train_log = read_json(Path(params.paths.candidate) / "train_log.json")
    run_candidate.check(params, train_log)  # trained for this decision and batch, or refused before any scoring
    splits = read_test_splits(params)
    device = pick_device(params.train.device)
    info = champion_info(params.paths.registry)  # read once: the version scored is the version recorded
    models = load_models(params, info["version"] if info else None)

    results: dict = {}
    for name, (model, tokenizer, labels, _) in models.items():
        results[name] = {split: evaluate_model(model, tokenizer, labels, df, params, device)
                         for split, df in splits.items()}

    metrics = metrics_record(train_log["strategy"], info["version"] if info else None, results, splits, models)

    timing_texts = list(splits["test"]["text"]) if "test" in splits else []
    lat = {"device": device.type, "torch_threads": torch.get_num_threads(),
           "examples": params.evaluate.latency_examples, "models": {}}
    if params.evaluate.latency_examples and timing_texts:
        for name, (model, tokenizer, _, folder) in models.items():
            if folder is not None:
                lat["models"][name] = latency(model, tokenizer, timing_texts, params.evaluate.latency_examples,
                                              params.model.max_seq_len, device)

    with atomic_dir(params.paths.evaluation) as tmp:
        for name, per_split in results.items():
            for split, (r, pred) in per_split.items():
                write_json(tmp / f"{name}_{split}.json", r)
                # One row per example: DVC's confusion-matrix plot template reads actual/predicted.
                pd.DataFrame({"actual": splits[split]["label"], "predicted": pred}).to_csv(
                    tmp / f"confusion_{name}_{split}.csv", index=False)
                plot_confusion(r["confusion"], f"{name} on {split}", tmp / f"confusion_{name}_{split}.png")
        predictions_table(results, splits).to_csv(tmp / PREDICTIONS, index=False)
        write_json(tmp / "latency.json", lat)
    metrics["candidate_sha256"] = registry.model_digest(params.paths.candidate)  # promote checks it scored this one
    write_json(params.paths.metrics, metrics)
    return metrics
