"""Measure domain shift for texts: the report the selector (driftfit.policy.rules) reads.

Beside the shared statistics (driftfit.measures.shift: MMD² with a permutation test, a domain classifier, label
shift, linear probe, LogME, data size), texts get:
- tokenizer fit: does the pretrained vocabulary cover the new text? ([UNK] share, sub-words per word)
- zero-shot: how far the label names alone go (nearest label-name embedding, on validation)
- champion: the current champion's accuracy on the incoming rows (val alone, and every sampled row) and on
  its own test data (the memory's test splits of the batches it learnt): did it get worse here?

"Incoming" is train + val together, except for the probe (fit on train, scored on val). Cost is bounded by
the samples, not the batch: tokenizer fit reads a seeded sample of at most TOKENIZER_TEXTS texts per side
(its `texts` says how many); the embedding measures, the probe and the champion's score use seeded
fixed-size subsamples (`shift.sample_size`). Label shift and data size stay exact: they are label counts,
never a Python list of the rows. Every sampled text is embedded once (pretrained encoder, mean-pooled,
L2-normalised) and the embeddings are reused. Each section carries its own wall time in `seconds`;
embedding time is reported apart, in `embed`. bench/scale.py measures time and peak memory at 10k-1M rows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from driftfit.config import Params, ShiftConfig
from driftfit.errors import DataError
from driftfit.measures.shift import (data_size, domain_classifier, label_counts, label_shift, linear_probe, logme,
                                     mmd_test, probe_with_memory, sample as _sample)
from driftfit.state.feature_cache import Compute, cached

log = logging.getLogger(__name__)

# Texts per side the tokenizer fit reads (a seeded sample; a smaller side is read whole): reading every row holds
# the tokenizer's output for every text at once (gigabytes at a million rows). 5000 texts estimate tokens/word
# within about 1% and the [UNK] share within about 0.003 (bench/results/scale.md). More: tighter, slower.
TOKENIZER_TEXTS = 5000


# ---- tokenizer fit --------------------------------------------------------------------------

def tokenizer_fit(tokenizer, texts: list[str], max_len: int | None = None) -> dict:
    """Share of produced tokens that are [UNK], and sub-word tokens per whitespace word (no special tokens)."""
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"] if texts else []
    tokens = sum(len(x) for x in ids)
    words = sum(len(t.split()) for t in texts)
    unk = tokenizer.unk_token_id
    n_unk = sum(x.count(unk) for x in ids) if unk is not None else 0
    out = {"unk_rate": n_unk / tokens if tokens else 0.0,
           "tokens_per_word": tokens / words if words else 0.0,
           "texts": len(texts)}
    if max_len is not None:  # texts that max_seq_len cuts short (special tokens count towards it)
        room = max_len - tokenizer.num_special_tokens_to_add()
        out["truncated_rate"] = sum(len(x) > room for x in ids) / len(ids) if ids else 0.0
    return out


# ---- zero-shot: the label names alone -------------------------------------------------------

def zero_shot_fit(encoder, tokenizer, val_emb: np.ndarray, val_labels: list[str], max_len: int) -> dict:
    """Accuracy on validation of the `zero_shot` strategy: each text gets the label whose name embeds
    nearest (cosine; the embeddings are L2-normalised). Names that carry no meaning ('0', '1') score low."""
    from driftfit.modalities.text.model import embed_texts
    from driftfit.modalities.text.zero_shot import label_text

    labels = sorted(set(val_labels))
    if len(labels) < 2 or not len(val_labels):
        return {"accuracy": None, "note": "needs two labels in validation"}
    names = embed_texts(encoder, tokenizer, [label_text(l) for l in labels], max_len)
    predicted = np.asarray(labels)[(val_emb @ names.T).argmax(1)]
    return {"accuracy": float((predicted == np.asarray(val_labels)).mean()), "val_rows": len(val_labels),
            "labels": len(labels)}


# ---- the champion ----

def champion_predict(champion, max_len: int, batch_size: int, features: Compute | None = None) -> Compute:
    """texts -> the champion's class probabilities. features: texts -> what its head sees
    (`model.head_inputs`), e.g. from a feature cache; the head is applied here, as in the model."""
    from driftfit.modalities.text.model import predict_proba

    model, tokenizer, _ = champion
    if features is None:
        return lambda texts: predict_proba(model, tokenizer, list(texts), max_len, batch_size)

    def predict(texts):
        with torch.no_grad():
            x = features(list(texts))  # first: computing uncached features may move the model (to the GPU)
            head = model.head.eval()
            logits = head(torch.as_tensor(x, dtype=head.weight.dtype, device=head.weight.device))
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return predict


def _accuracy(champion, rows: pd.DataFrame, predict: Compute) -> float | None:
    if not len(rows):
        return None
    probs = predict(rows["text"].tolist())
    return float((np.asarray([str(x) for x in champion[2]])[probs.argmax(1)]
                  == rows["label"].astype(str).to_numpy()).mean())


def champion_fit(champion, val: pd.DataFrame, incoming_labels: set[str], max_len: int, batch_size: int,
                 incoming: pd.DataFrame | None = None, own_test: pd.DataFrame | None = None,
                 predict: Compute | None = None) -> dict:
    """The champion's accuracy on incoming val (labels it doesn't know count as wrong), on every sampled
    incoming row (train and val: it saw none of them, so more rows, less noise), on its own test data (the
    memory's test splits of the batches it learnt), and its label coverage."""
    predict = predict or champion_predict(champion, max_len, batch_size)
    known = [str(x) for x in champion[2]]
    uncovered = sorted(incoming_labels - set(known))
    out = {"val_accuracy": _accuracy(champion, val, predict), "covers_labels": not uncovered,
           "uncovered_labels": uncovered, "labels": len(known)}
    if incoming is not None:
        out.update(incoming_accuracy=_accuracy(champion, incoming, predict), incoming_rows=len(incoming))
    if own_test is not None:
        out.update(own_test_accuracy=_accuracy(champion, own_test, predict), own_test_rows=len(own_test))
    return out


# ---- the whole report ----

def measure_shift(reference: pd.DataFrame | None, incoming_train: pd.DataFrame, incoming_val: pd.DataFrame,
                  encoder, tokenizer, cfg: ShiftConfig, max_len: int, champion=None,
                  champion_test: pd.DataFrame | None = None, embed: Compute | None = None,
                  champion_features: Compute | None = None) -> dict:
    """All shift measures as a JSON-able dict (see the module docstring); reference=None skips the comparisons.

    embed: texts -> the pretrained encoder's normalised embeddings (default: computed here; `run` passes
    a feature-cached one). champion_features: texts -> what the champion's head sees (cached likewise)."""
    from driftfit.modalities.text.model import embed_texts

    embed = embed or (lambda texts: embed_texts(encoder, tokenizer, list(texts), max_len, cfg.batch_size))

    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    # Labels of every incoming row, as a column (no Python list): label shift and data size count them.
    all_labels = pd.concat([incoming_train["label"], incoming_val["label"]], ignore_index=True)
    # Embedding is the cost: only fixed-size subsamples are embedded (sample_size training rows, a quarter
    # of that for validation), so the time stays bounded however large the batch is.
    tr = incoming_train.iloc[_sample(len(incoming_train), cfg.sample_size, rng)]
    va = incoming_val.iloc[_sample(len(incoming_val), max(1, cfg.sample_size // 4), rng)]
    inc_text = tr["text"].tolist() + va["text"].tolist()
    inc_labels = tr["label"].astype(str).tolist() + va["label"].astype(str).tolist()
    report: dict = {}

    # Tokenizer fit on at most TOKENIZER_TEXTS texts per side, drawn from train + val together. Its own
    # random stream, so the embedding subsamples above and below do not depend on this bound.
    t = time.perf_counter()
    tok_rng = np.random.default_rng([cfg.seed, 1])
    cut = len(incoming_train)  # rows below it are train rows, the rest val rows
    rows = _sample(cut + len(incoming_val), TOKENIZER_TEXTS, tok_rng)
    tok_text = (incoming_train["text"].iloc[rows[rows < cut]].tolist()
                + incoming_val["text"].iloc[rows[rows >= cut] - cut].tolist())
    report["tokenizer"] = {"incoming": tokenizer_fit(tokenizer, tok_text, max_len)}
    if reference is not None:
        ref_text = reference["text"].iloc[_sample(len(reference), TOKENIZER_TEXTS, tok_rng)].tolist()
        report["tokenizer"]["reference"] = tokenizer_fit(tokenizer, ref_text, max_len)
    report["tokenizer"]["seconds"] = time.perf_counter() - t

    # Embed once: all incoming rows (the probe needs them), a sample of the reference.
    t = time.perf_counter()
    inc_emb = embed(inc_text)
    ref_rows = _sample(len(reference), cfg.sample_size, rng) if reference is not None else np.arange(0)
    ref_emb = embed(reference["text"].iloc[ref_rows].tolist()) if reference is not None else None
    report["embed"] = {"texts": len(inc_text) + len(ref_rows), "seconds": time.perf_counter() - t}
    log.info("embedded %d texts in %.1f s", report["embed"]["texts"], report["embed"]["seconds"])

    if reference is not None:
        t = time.perf_counter()
        x, y = ref_emb, inc_emb[_sample(len(inc_emb), cfg.sample_size, rng)]
        report["embedding"] = {**mmd_test(x, y, cfg.permutations, cfg.seed),
                               "domain_classifier": domain_classifier(x, y, cfg.seed),
                               "sample_size": {"reference": len(x), "incoming": len(y)},
                               "seconds": time.perf_counter() - t}

    t = time.perf_counter()
    ref_labels = reference["label"] if reference is not None else None
    report["label_shift"] = {**label_shift(ref_labels, all_labels), "seconds": time.perf_counter() - t}

    t = time.perf_counter()
    n_train = len(tr)
    train_labels, val_labels = inc_labels[:n_train], inc_labels[n_train:]
    report["probe"] = {**linear_probe(inc_emb[:n_train], train_labels, inc_emb[n_train:], val_labels),
                       "logme": logme(inc_emb[:n_train], train_labels),
                       "train_rows": n_train, "val_rows": len(val_labels)}
    if champion is not None:  # the skip rule's yardstick: a head on the memory + this batch, on this batch's rows
        report["probe"]["with_memory"] = probe_with_memory(
            ref_emb, reference["label"].iloc[ref_rows].astype(str).tolist() if reference is not None else [],
            inc_emb, inc_labels, seed=cfg.seed)
    report["probe"]["seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    report["zero_shot"] = {**zero_shot_fit(encoder, tokenizer, inc_emb[n_train:], val_labels, max_len),
                           "seconds": time.perf_counter() - t}

    t = time.perf_counter()
    report["data_size"] = {**data_size(incoming_train, incoming_val, reference), "seconds": time.perf_counter() - t}

    if champion is not None:
        t = time.perf_counter()
        own = (champion_test.iloc[_sample(len(champion_test), cfg.sample_size, rng)]
               if champion_test is not None and len(champion_test) else None)
        fit = champion_fit(champion, va, set(label_counts(all_labels).index), max_len, cfg.batch_size,
                           incoming=pd.concat([tr, va], ignore_index=True), own_test=own,
                           predict=champion_predict(champion, max_len, cfg.batch_size, champion_features))
        report["champion"] = {**fit, "seconds": time.perf_counter() - t}

    report["seconds"] = time.perf_counter() - start
    return report


# ---- the modality's measure ------------------------------------------------------------------------

def measure(params: Params, reference: pd.DataFrame | None, reference_test: pd.DataFrame | None,
            train: pd.DataFrame, val: pd.DataFrame, champion_dir: Path | None) -> dict:
    """The text shift report for the prepared splits and the serving champion (its folder, or None)."""
    for name, df in (("train", train), ("val", val), ("reference_train", reference), ("reference_test", reference_test)):
        missing = {"text", "label"} - set(df.columns) if df is not None else set()
        if missing:
            raise DataError(f"'{Path(params.paths.prepared) / name}.parquet': missing column(s) {sorted(missing)} "
                            "(expected 'text' and 'label')")
    from driftfit.modalities.text.model import (embed_texts, features_identity, head_inputs, load_classifier,
                                                load_encoder, load_tokenizer, pretrained_identity)

    champion = load_classifier(champion_dir, params.model.trust_remote_code) if champion_dir is not None else None
    tokenizer, encoder = load_tokenizer(params.model), load_encoder(params.model)
    max_len, batch = params.model.max_seq_len, params.shift.batch_size
    # The memory's texts come back every week: their features, and the champion's, are read from the cache.
    embed = cached(params.paths.cache, f"{pretrained_identity(params.model)} embed_texts max_len={max_len}",
                   lambda texts: embed_texts(encoder, tokenizer, texts, max_len, batch))
    champion_features = None
    if champion is not None:
        model, champ_tokenizer, _ = champion
        namespace = f"classifier features {features_identity(champion_dir)} head_inputs max_len={max_len}"
        champion_features = cached(params.paths.cache, namespace,
                                   lambda texts: head_inputs(model, champ_tokenizer, texts, max_len, batch))
    return measure_shift(reference, train, val, encoder, tokenizer, params.shift, max_len, champion,
                         champion_test=reference_test, embed=embed, champion_features=champion_features)
