"""Measure shift for an image batch (`driftfit measure-shift` when task.modality is image).

The same report as for texts (driftfit.modalities.text.measures), from the pretrained image model's features (EfficientNet-Lite0's
pooled 1280, or what a local Hugging Face model's classifier reads; frozen; L2-normalised for the distance
measures) instead of sentence embeddings:
- embedding shift: MMD² with a permutation test and a domain classifier's ROC AUC, reference vs incoming;
- label shift, data size: exact, from the label counts;
- transferability: a linear probe (fit on train, scored on val) and LogME on the frozen features;
- champion: its accuracy on the incoming rows and on its own test data.
Text-only measures are there with their reason instead of a number: there is no tokenizer to fit, and no
label-name embedding to answer zero-shot; rules that read them do not fire. The shift.* knobs apply as for
texts (sample sizes, permutations, batch size, seed).
"""

from __future__ import annotations

import logging
import time

from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import Params
from driftfit.measures.shift import (data_size, domain_classifier, label_counts, label_shift, linear_probe, logme,
                                     mmd_test, probe_with_memory, sample as _sample)

log = logging.getLogger(__name__)

TEXT_ONLY = "text only: images have no tokenizer"


def _features(model, table: pd.DataFrame, params: Params) -> np.ndarray:
    """Pretrained features of the images in `table` (fed as the model expects), float64 N x d."""
    from driftfit.modalities.image.data import load_pixels
    from driftfit.modalities.image.model import features, normalize_for

    pixels = load_pixels(list(table["path"]), model.image_size, params.image.max_pixels)
    return features(model, normalize_for(model, pixels), params.shift.batch_size).numpy().astype(np.float64)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _accuracy(champion, table: pd.DataFrame | None, params: Params) -> float | None:
    from driftfit.modalities.image.data import load_pixels
    from driftfit.modalities.image.model import predict_proba

    model, labels, size = champion
    if table is None or not len(table):
        return None
    probs = predict_proba(model, load_pixels(list(table["path"]), size, params.image.max_pixels),
                          params.shift.batch_size)
    return float((np.asarray(labels)[probs.argmax(1)] == table["label"].astype(str).to_numpy()).mean())


def measure_image_shift(reference: pd.DataFrame | None, train: pd.DataFrame, val: pd.DataFrame, params: Params,
                        champion=None, champion_test: pd.DataFrame | None = None) -> dict:
    """Every measure as a JSON-able dict, in the text report's shape; reference=None skips the comparisons."""
    from driftfit.modalities.image.model import pretrained_classifier

    cfg = params.shift
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    all_labels = pd.concat([train["label"], val["label"]], ignore_index=True)
    tr = train.iloc[_sample(len(train), cfg.sample_size, rng)]
    va = val.iloc[_sample(len(val), max(1, cfg.sample_size // 4), rng)]
    report: dict = {"modality": "image",
                    "tokenizer": {"incoming": {"unk_rate": None, "tokens_per_word": None}, "note": TEXT_ONLY}}

    t = time.perf_counter()
    model = pretrained_classifier(params, 1)  # the pretrained network; its head is not used
    inc = _features(model, pd.concat([tr, va], ignore_index=True), params)
    ref_rows = _sample(len(reference), cfg.sample_size, rng) if reference is not None else np.arange(0)
    ref = _features(model, reference.iloc[ref_rows], params) if reference is not None else None
    report["embed"] = {"images": len(inc) + len(ref_rows), "seconds": time.perf_counter() - t}

    if ref is not None:
        t = time.perf_counter()
        x, y = _unit(ref), _unit(inc[_sample(len(inc), cfg.sample_size, rng)])
        report["embedding"] = {**mmd_test(x, y, cfg.permutations, cfg.seed),
                               "domain_classifier": domain_classifier(x, y, cfg.seed),
                               "sample_size": {"reference": len(x), "incoming": len(y)},
                               "seconds": time.perf_counter() - t}

    t = time.perf_counter()
    report["label_shift"] = {**label_shift(reference["label"] if reference is not None else None, all_labels),
                             "seconds": time.perf_counter() - t}

    t = time.perf_counter()
    n = len(tr)
    train_labels = tr["label"].astype(str).tolist()
    val_labels = va["label"].astype(str).tolist()
    report["probe"] = {**linear_probe(inc[:n], train_labels, inc[n:], val_labels),
                       "logme": logme(inc[:n], train_labels),
                       "train_rows": n, "val_rows": len(val_labels), "seconds": time.perf_counter() - t}
    if champion is not None:  # the skip rule's yardstick, as for texts: a head on the memory + this batch
        t = time.perf_counter()
        report["probe"]["with_memory"] = {**probe_with_memory(
            ref, reference["label"].iloc[ref_rows].astype(str).tolist() if reference is not None else [],
            inc, train_labels + val_labels, seed=cfg.seed), "seconds": time.perf_counter() - t}
    report["zero_shot"] = {"accuracy": None, "note": "text only: images have no label-name embeddings"}
    report["data_size"] = data_size(train, val, reference)

    if champion is not None:
        t = time.perf_counter()
        known = [str(x) for x in champion[1]]
        uncovered = sorted(set(label_counts(all_labels).index) - set(known))
        own = (champion_test.iloc[_sample(len(champion_test), cfg.sample_size, rng)]
               if champion_test is not None and len(champion_test) else None)
        incoming = pd.concat([tr, va], ignore_index=True)
        report["champion"] = {"val_accuracy": _accuracy(champion, va, params), "covers_labels": not uncovered,
                              "uncovered_labels": uncovered, "labels": len(known),
                              "incoming_accuracy": _accuracy(champion, incoming, params),
                              "incoming_rows": len(incoming),
                              **({"own_test_accuracy": _accuracy(champion, own, params), "own_test_rows": len(own)}
                                 if own is not None else {}),
                              "seconds": time.perf_counter() - t}
    report["seconds"] = time.perf_counter() - start
    return report


def measure(params: Params, reference: pd.DataFrame | None, reference_test: pd.DataFrame | None,
            train: pd.DataFrame, val: pd.DataFrame, champion_dir: Path | None) -> dict:
    """The image shift report for the prepared splits (absolute paths) and the serving champion, if any."""
    from driftfit.modalities.image.model import load_image_classifier

    champion = load_image_classifier(champion_dir, params.model.trust_remote_code) if champion_dir is not None else None
    return measure_image_shift(reference, train, val, params, champion, reference_test)
