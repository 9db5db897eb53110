"""Measure domain shift between the reference data (what the champion learnt from) and the incoming batch.

Each measure answers one question the strategy policy (driftfit.strategy) asks:
- tokenizer fit: does the pretrained vocabulary cover the new text? ([UNK] share, sub-words per word)
- embedding shift: did the frozen sentence embeddings move? (MMD² + permutation test; a domain
  classifier's cross-validated ROC AUC, as in Rabanser et al. 2019, "Failing Loudly")
- label shift: labels new or vanished, Jensen–Shannon divergence of the label shares
- transferability: how far frozen features go on the new task (linear probe; LogME, You et al. 2021)
- zero-shot: how far the label names alone go (nearest label-name embedding, on validation)
- data size: rows, rows per class
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
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from driftfit.config import Params, ShiftConfig
from driftfit.errors import DataError
from driftfit.feature_cache import Compute, cached
from driftfit.io import read_json, write_json
from driftfit.modalities import runs_on

log = logging.getLogger(__name__)

MEDIAN_PAIRS_ROWS = 1000  # rows used to find the median distance (bandwidth); more is slower, no better
# Texts per side the tokenizer fit reads (a seeded sample; a smaller side is read whole): reading every row holds
# the tokenizer's output for every text at once (gigabytes at a million rows). 5000 texts estimate tokens/word
# within about 1% and the [UNK] share within about 0.003 (bench/results/scale.md). More: tighter, slower.
TOKENIZER_TEXTS = 5000


def _finite_or_none(x) -> float | None:
    """A plain float for JSON; NaN/inf become None."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


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


# ---- zero-shot: the label names alone -------------------------------------------------------

def zero_shot_fit(encoder, tokenizer, val_emb: np.ndarray, val_labels: list[str], max_len: int) -> dict:
    """Accuracy on validation of the `zero_shot` strategy: each text gets the label whose name embeds
    nearest (cosine; the embeddings are L2-normalised). Names that carry no meaning ('0', '1') score low."""
    from driftfit.model import embed_texts
    from driftfit.zero_shot import label_text

    labels = sorted(set(val_labels))
    if len(labels) < 2 or not len(val_labels):
        return {"accuracy": None, "note": "needs two labels in validation"}
    names = embed_texts(encoder, tokenizer, [label_text(l) for l in labels], max_len)
    predicted = np.asarray(labels)[(val_emb @ names.T).argmax(1)]
    return {"accuracy": float((predicted == np.asarray(val_labels)).mean()), "val_rows": len(val_labels),
            "labels": len(labels)}


# ---- data size and champion -----------------------------------------------------------------

def data_size(train: pd.DataFrame, val: pd.DataFrame, reference: pd.DataFrame | None) -> dict:
    counts = label_counts(train["label"])
    return {"rows": len(train), "val_rows": len(val), "classes": len(counts),
            "min_per_class": int(counts.min()) if len(counts) else 0,
            "per_class": {k: int(v) for k, v in counts.items()},
            "reference_rows": None if reference is None else len(reference)}


def champion_predict(champion, max_len: int, batch_size: int, features: Compute | None = None) -> Compute:
    """texts -> the champion's class probabilities. features: texts -> what its head sees
    (`model.head_inputs`), e.g. from a feature cache; the head is applied here, as in the model."""
    from driftfit.model import predict_proba

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


# ---- the whole report -----------------------------------------------------------------------

def _sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=k, replace=False)) if k < n else np.arange(n)


def measure_shift(reference: pd.DataFrame | None, incoming_train: pd.DataFrame, incoming_val: pd.DataFrame,
                  encoder, tokenizer, cfg: ShiftConfig, max_len: int, champion=None,
                  champion_test: pd.DataFrame | None = None, embed: Compute | None = None,
                  champion_features: Compute | None = None) -> dict:
    """All shift measures as a JSON-able dict (see the module docstring); reference=None skips the comparisons.

    embed: texts -> the pretrained encoder's normalised embeddings (default: computed here; `run` passes
    a feature-cached one). champion_features: texts -> what the champion's head sees (cached likewise)."""
    from driftfit.model import embed_texts

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


# ---- thin edge: files in, file out ----------------------------------------------------------

def _read_split(prepared: Path, name: str, required: bool = True) -> pd.DataFrame | None:
    """A prepared split (prepare.read_split, the one reader), checked for its text and label columns."""
    from driftfit.prepare import read_split

    df = read_split(prepared, name, required)
    missing = {"text", "label"} - set(df.columns) if df is not None else set()
    if missing:
        raise DataError(f"'{Path(prepared) / name}.parquet': missing column(s) {sorted(missing)} "
                        "(expected 'text' and 'label')")
    return df


@runs_on("text", "measure-shift")
def run(params: Params) -> dict:
    """Read the prepared splits (and champion, if any), measure shift, write params.paths.shift."""
    from driftfit.model import (embed_texts, features_identity, head_inputs, load_classifier, load_encoder,
                                load_tokenizer, pretrained_identity)
    from driftfit.registry import champion_dir

    prepared = Path(params.paths.prepared)
    train, val = _read_split(prepared, "train"), _read_split(prepared, "val")
    reference = _read_split(prepared, "reference_train", required=False)
    reference_test = _read_split(prepared, "reference_test", required=False)
    manifest = prepared / "manifest.json"
    learnt = (read_json(manifest).get("reference") or {}).get("champion_batches") if manifest.is_file() else None
    if learnt:  # the memory's batches the champion learnt from; batches accepted since (skipped) are new to it too
        reference, reference_test = (df[df["batch"].isin(learnt)].reset_index(drop=True)
                                     if df is not None and "batch" in df else df
                                     for df in (reference, reference_test))
    champ = champion_dir(params.paths.registry)
    champion = load_classifier(champ, params.model.trust_remote_code) if champ is not None else None
    tokenizer, encoder = load_tokenizer(params.model), load_encoder(params.model)
    max_len, batch = params.model.max_seq_len, params.shift.batch_size
    # The memory's texts come back every week: their features, and the champion's, are read from the cache.
    embed = cached(params.paths.cache, f"{pretrained_identity(params.model)} embed_texts max_len={max_len}",
                   lambda texts: embed_texts(encoder, tokenizer, texts, max_len, batch))
    champion_features = None
    if champion is not None:
        model, champ_tokenizer, _ = champion
        namespace = f"classifier features {features_identity(champ)} head_inputs max_len={max_len}"
        champion_features = cached(params.paths.cache, namespace,
                                   lambda texts: head_inputs(model, champ_tokenizer, texts, max_len, batch))
    report = measure_shift(reference, train, val, encoder, tokenizer, params.shift, max_len,
                           champion, champion_test=reference_test, embed=embed, champion_features=champion_features)
    if champ is not None:
        report["champion"]["dir"] = str(champ)
    write_json(params.paths.shift, report)
    log.info("shift report written to %s (%.1f s)", params.paths.shift, report["seconds"])
    return report
