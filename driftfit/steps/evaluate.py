"""evaluate: score the candidate, the serving champion and the untrained pretrained baseline on the new test
split and on the reference test split (every past batch of the memory: forgetting shows as a number).

- quality: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix (rows for DVC's confusion plot +
  a PNG), expected calibration error (ECE) (driftfit.evaluation.scoring);
- cost (candidate and champion, the models that would serve): parameters, size on disk, and latency per
  example, p50/p95, at batch 1 and batch 32 on the machine this runs on (latency.json: it varies run to run);
- predictions.csv: every model's answer on every test row, side by side, for the gate (driftfit.evaluation.gate).
The candidate must have been trained for this decision and batch (driftfit.state.candidate); metrics.json
records its digest, which promote checks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from driftfit import modalities
from driftfit.config import Params
from driftfit.evaluation.gate import PREDICTIONS
from driftfit.evaluation.scoring import (evaluate_rows, metrics_record, plot_confusion, predictions_table,
                                         read_test_splits, task_labels)
from driftfit.io import atomic_dir, read_json, write_json
from driftfit.state import candidate as run_candidate
from driftfit.state import registry


def run(params: Params) -> dict:
    modality = modalities.get(params.task.modality)
    candidate = Path(params.paths.candidate)
    train_log = read_json(candidate / "train_log.json")
    run_candidate.check(params, train_log)  # trained for this decision and batch, or refused before any scoring
    splits = read_test_splits(params, modality)
    info = registry.champion_info(params.paths.registry)  # read once: the version scored is the version recorded
    scorers = {}
    if train_log.get("trained"):
        scorers["candidate"] = modality.classifier(params, candidate)
    if info is not None:  # its files checked against their digest
        scorers["champion"] = modality.classifier(params, registry.version_dir(params.paths.registry, info["version"]))
    scorers["baseline"] = modality.baseline(params, task_labels(params))

    bins = params.evaluate.calibration_bins
    results = {name: {split: evaluate_rows(scorer, df, bins) for split, df in splits.items()}
               for name, scorer in scorers.items()}
    metrics = metrics_record(train_log["strategy"], info["version"] if info else None, results, splits, scorers)

    latency = {**next(iter(scorers.values())).runtime(), "examples": params.evaluate.latency_examples, "models": {}}
    if params.evaluate.latency_examples and "test" in splits and len(splits["test"]):
        for name, scorer in scorers.items():
            if scorer.folder is not None:
                latency["models"][name] = scorer.latency(splits["test"], params.evaluate.latency_examples)

    with atomic_dir(params.paths.evaluation) as tmp:
        for name, per_split in results.items():
            for split, (result, predicted) in per_split.items():
                write_json(tmp / f"{name}_{split}.json", result)
                # One row per example: DVC's confusion-matrix plot template reads actual/predicted.
                pd.DataFrame({"actual": splits[split]["label"].astype(str), "predicted": predicted}).to_csv(
                    tmp / f"confusion_{name}_{split}.csv", index=False)
                if params.evaluate.plots:
                    plot_confusion(result["confusion"], f"{name} on {split}", tmp / f"confusion_{name}_{split}.png")
        if modality.evaluation_extras is not None:
            answers = {name: {split: predicted for split, (_, predicted) in per_split.items()}
                       for name, per_split in results.items()}
            modality.evaluation_extras(params, tmp, splits, answers)
        predictions_table(results, splits).to_csv(tmp / PREDICTIONS, index=False)
        write_json(tmp / "latency.json", latency)
    metrics["candidate_sha256"] = registry.model_digest(candidate)  # promote checks it scored this one
    write_json(params.paths.metrics, metrics)
    return metrics
