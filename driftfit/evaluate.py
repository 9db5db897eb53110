"""Evaluate the candidate and the current champion on the new test split and the reference test split.

Scores on the reference split show forgetting. Labels a model does not know count as wrong.
Outputs: a DVC metrics file, per-class reports and confusion-matrix rows for DVC plots.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from driftfit.config import Params
from driftfit.data import read_split
from driftfit.io import atomic_dir, read_json, write_json
from driftfit.model import load_classifier, pick_device, predict_proba
from driftfit.registry import champion_dir, champion_info


def score(y_true: list[str], y_pred: list[str]) -> dict:
    """Accuracy, macro-F1 over the true labels, per-class report and confusion matrix."""
    labels = sorted(set(y_true))
    return {
        "rows": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": classification_report(y_true, y_pred, labels=labels, output_dict=True, zero_division=0),
        "confusion": {"labels": labels,
                      "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }


def predict(model_dir: Path, texts: list[str], params: Params) -> list[str]:
    model, tokenizer, labels = load_classifier(model_dir, params.model.trust_remote_code)
    probs = predict_proba(model, tokenizer, texts, params.model.max_seq_len, params.evaluate.batch_size,
                          pick_device(params.train.device))
    return [labels[i] for i in probs.argmax(1)] if len(probs) else []


def evaluate_models(models: dict[str, Path], splits: dict[str, pd.DataFrame], params: Params) -> dict:
    """{model name: {split name: score + predictions}} for every model on every split."""
    results: dict = {}
    for name, model_dir in models.items():
        results[name] = {}
        for split, df in splits.items():
            pred = predict(model_dir, list(df["text"]), params)
            results[name][split] = {**score(list(df["label"]), pred), "predicted": pred}
    return results


def run(params: Params) -> dict:
    candidate = Path(params.paths.candidate)
    log = read_json(candidate / "train_log.json")
    models: dict[str, Path] = {}
    if log.get("trained"):
        models["candidate"] = candidate
    champ = champion_dir(params.paths.registry)
    if champ is not None:
        models["champion"] = champ
    splits = {name: df for name in ("test", "reference_test")
              if (df := read_split(params.paths.prepared, name)) is not None}
    results = evaluate_models(models, splits, params)

    info = champion_info(params.paths.registry)
    metrics = {"strategy": log["strategy"], "champion_version": info["version"] if info else None}
    for name, per_split in results.items():
        metrics[name] = {split: {"accuracy": round(r["accuracy"], 6), "macro_f1": round(r["macro_f1"], 6)}
                         for split, r in per_split.items()}
    write_json(params.paths.metrics, metrics)

    with atomic_dir(params.paths.evaluation) as tmp:
        for name, per_split in results.items():
            for split, r in per_split.items():
                write_json(tmp / f"{name}_{split}.json", {k: v for k, v in r.items() if k != "predicted"})
                # One row per example: DVC's confusion-matrix plot template reads actual/predicted.
                pd.DataFrame({"actual": splits[split]["label"], "predicted": r["predicted"]}).to_csv(
                    tmp / f"confusion_{name}_{split}.csv", index=False)
    return metrics
