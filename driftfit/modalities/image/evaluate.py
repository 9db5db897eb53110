"""Evaluate an image candidate, the champion and an untrained baseline (`driftfit evaluate` when
task.modality is image).

The same metrics.json, per-model JSON reports, confusion matrices (CSV for DVC's plot, PNG), latency.json,
predictions.csv (every model's answer per test row, for the gate) and forgetting per past batch as for texts (driftfit.evaluate: the scoring, the plot, the per-batch split
are its functions). The baseline is the pretrained network with a new, untrained head (seeded): images have
no label names, so there is no zero-shot answer; it scores at about chance, and `promote.beat_baseline`
then asks only that training bought something. Also `test_images.png`: a grid of test images with their
true and predicted labels (the candidate's, or the champion's when nothing was trained).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from driftfit.config import Params
from driftfit.evaluate import (SPLITS, LATENCY_BATCHES, headline, metrics_record, per_batch, plot_confusion,
                               predictions_table, score)
from driftfit.gate import PREDICTIONS
from driftfit.io import atomic_dir, read_json, write_json
from driftfit.modalities import runs_on
from driftfit.registry import champion_info, version_dir

GRID_FILE = "test_images.png"
GRID_MAX = 40  # test images shown in the grid: as many of each label, the first ones in split order


def task_labels(params: Params) -> list[str]:
    from driftfit.image_prepare import read_image_split

    labels: set[str] = set()
    for name in ("train", "reference_train"):
        df = read_image_split(params, name)
        if df is not None:
            labels |= set(df["label"].astype(str))
    return sorted(labels)


def load_models(params: Params, champion: str | None) -> dict[str, tuple]:
    """{name: (model, labels, size, folder or None)} for candidate, champion (a version) and baseline."""
    from driftfit.image_model import load_image_classifier, pretrained_classifier

    models: dict[str, tuple] = {}
    trust = params.model.trust_remote_code
    candidate = Path(params.paths.candidate)
    if read_json(candidate / "train_log.json").get("trained"):
        models["candidate"] = (*load_image_classifier(candidate, trust), candidate)
    if champion is not None:
        folder = version_dir(params.paths.registry, champion)  # its files checked against their digest
        models["champion"] = (*load_image_classifier(folder, trust), folder)
    labels = task_labels(params)
    baseline = pretrained_classifier(params, len(labels), params.train.seed).eval()
    models["baseline"] = (baseline, labels, baseline.image_size, None)
    return models


def evaluate_model(model, labels: list[str], size: int, df: pd.DataFrame, params: Params) -> tuple[dict, list[str]]:
    from driftfit.image_data import load_pixels
    from driftfit.image_model import predict_proba

    probs = predict_proba(model, load_pixels(list(df["path"]), size, params.image.max_pixels),
                          params.evaluate.batch_size)
    pred = [labels[i] for i in probs.argmax(1)] if len(probs) else []
    confidence = probs.max(1) if len(probs) else np.zeros(0)
    return score(list(df["label"].astype(str)), pred, confidence, params.evaluate.calibration_bins), pred


def read_test_splits(params: Params) -> dict[str, pd.DataFrame]:
    from driftfit.image_prepare import read_image_split

    return {name: df for name in SPLITS if (df := read_image_split(params, name)) is not None}


def score_folder(params: Params, folder: Path, batches: dict | None = None, answers: dict | None = None) -> dict:
    """One saved image classifier's headline scores on every test split (promote re-scores a champion); with
    `batches` and `answers`, its per-batch scores and its answer on every row, as for texts."""
    from driftfit.image_model import load_image_classifier

    model, labels, size = load_image_classifier(folder, params.model.trust_remote_code)
    scores = {}
    for split, df in read_test_splits(params).items():
        result, predicted = evaluate_model(model, labels, size, df, params)
        scores[split] = headline(result)
        if batches is not None and split == "reference_test" and "batch" in df:
            batches.update(per_batch(df, predicted))
        if answers is not None:
            answers[split] = predicted
    return scores


def latency(model, pixels: torch.Tensor, examples: int) -> dict:
    """Milliseconds per example, p50/p95, at batch 1 and 32 (normalising included; decoding not)."""
    from driftfit.image_model import predict_proba

    pool = pixels[torch.arange(max(examples, max(LATENCY_BATCHES))) % len(pixels)]
    out = {}
    for batch in LATENCY_BATCHES:
        predict_proba(model, pool[:batch], batch)  # warm-up
        runs = examples if batch == 1 else max(5, math.ceil(examples / batch))
        per_example = []
        for r in range(runs):
            start = (r * batch) % len(pool)
            chunk = torch.cat([pool, pool])[start:start + batch]
            t = time.perf_counter()
            predict_proba(model, chunk, batch)
            per_example.append(1000 * (time.perf_counter() - t) / batch)
        out[f"batch_{batch}"] = {"p50_ms": round(float(np.percentile(per_example, 50)), 3),
                                 "p95_ms": round(float(np.percentile(per_example, 95)), 3), "timed_batches": runs}
    return out


def plot_grid(paths: list[str], truth: list[str], predicted: list[str], title: str, path: Path) -> None:
    """A grid of images, each titled 'true / predicted' (green when right, red when wrong)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from driftfit.image_data import open_image

    n = min(len(paths), GRID_MAX)
    cols = min(8, max(n, 1))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        with open_image(paths[i]) as image:
            ax.imshow(np.asarray(image.convert("RGB")))
        right = truth[i] == predicted[i]
        ax.set_title(f"{truth[i]} / {predicted[i]}", fontsize=7, color="green" if right else "red")
    fig.suptitle(f"{title} (true / predicted)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


@runs_on("image", "evaluate")
def run(params: Params) -> dict:
    """Score every model on every test split; write metrics.json and the evaluation folder (+ the grid)."""
    from driftfit.image_data import load_pixels

    from driftfit import candidate as run_candidate, registry

    train_log = read_json(Path(params.paths.candidate) / "train_log.json")
    run_candidate.check(params, train_log)  # trained for this decision and batch, or refused before any scoring
    splits = read_test_splits(params)
    info = champion_info(params.paths.registry)
    models = load_models(params, info["version"] if info else None)
    results = {name: {split: evaluate_model(model, labels, size, df, params) for split, df in splits.items()}
               for name, (model, labels, size, _) in models.items()}

    metrics = metrics_record(train_log["strategy"], info["version"] if info else None, results, splits, models)

    lat = {"device": "cpu", "torch_threads": torch.get_num_threads(), "examples": params.evaluate.latency_examples,
           "models": {}}
    if params.evaluate.latency_examples and "test" in splits and len(splits["test"]):
        for name, (model, _, size, folder) in models.items():
            if folder is not None:
                pixels = load_pixels(list(splits["test"]["path"][:params.evaluate.latency_examples]), size)
                lat["models"][name] = latency(model, pixels, params.evaluate.latency_examples)

    shown = next((n for n in ("candidate", "champion") if n in results), "baseline")
    with atomic_dir(params.paths.evaluation) as tmp:
        for name, per_split in results.items():
            for split, (r, pred) in per_split.items():
                write_json(tmp / f"{name}_{split}.json", r)
                pd.DataFrame({"actual": splits[split]["label"].astype(str), "predicted": pred}).to_csv(
                    tmp / f"confusion_{name}_{split}.csv", index=False)
                plot_confusion(r["confusion"], f"{name} on {split}", tmp / f"confusion_{name}_{split}.png")
        if "test" in splits:  # up to GRID_MAX test images, as many of each label
            test = splits["test"].assign(predicted=results[shown]["test"][1])
            test = test.groupby("label", sort=True).head(max(1, GRID_MAX // max(test["label"].nunique(), 1)))
            plot_grid(list(test["path"]), list(test["label"].astype(str)), list(test["predicted"]),
                      f"{shown} on the new test split", tmp / GRID_FILE)
        predictions_table(results, splits).to_csv(tmp / PREDICTIONS, index=False)
        write_json(tmp / "latency.json", lat)
    metrics["candidate_sha256"] = registry.model_digest(params.paths.candidate)  # promote checks it scored this one
    write_json(params.paths.metrics, metrics)
    return metrics
