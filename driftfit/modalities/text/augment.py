"""Augment the training split only: seeded word/character noise, embedding-neighbour substitution,
class-balancing oversampling. Augmented rows are marked (`augmented`, and `methods` says which changed them).

Validation and test splits are never read here, so they cannot be changed by augmentation.
Each method is a params.yaml switch with its strength (augment.*). nlpaug was considered: its last
release is from 2022 and its seeding is global `random` state; these few functions are seeded per run.
The substitution looks up nearest neighbours in the pretrained model's own input-embedding matrix
(cosine, whole-word vocabulary entries), so it needs no download; the matrix is loaded once per process.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from driftfit.config import AugmentConfig, ModelConfig, Params

METHODS = ("synonym", "word_insert", "word_dropout", "word_swap", "char_noise")  # the order they apply in
NEIGHBOURS = 5  # a substitute is drawn from this many nearest words (variety vs faithfulness)

Neighbours = Callable[[str], list[str]]  # word -> nearest whole words, best first


# ---- word level -------------------------------------------------------------------------------

def word_dropout(words: list[str], p: float, rng: np.random.Generator) -> list[str]:
    """Drop each word with chance p; never return an empty text."""
    if p <= 0 or len(words) < 2:
        return words
    kept = [w for w in words if rng.random() >= p]
    return kept or [words[int(rng.integers(len(words)))]]


def word_swap(words: list[str], p: float, rng: np.random.Generator) -> list[str]:
    """Swap each word with its right neighbour with chance p."""
    words = list(words)
    for i in range(len(words) - 1):
        if rng.random() < p:
            words[i], words[i + 1] = words[i + 1], words[i]
    return words


def word_insert(words: list[str], p: float, rng: np.random.Generator) -> list[str]:
    """After each word, with chance p, insert a copy of a random word of the same text."""
    if p <= 0 or not words:
        return words
    out = []
    for w in words:
        out.append(w)
        if rng.random() < p:
            out.append(words[int(rng.integers(len(words)))])
    return out


def _typo(word: str, rng: np.random.Generator) -> str:
    """One typo: swap two neighbouring letters, drop one, or double one."""
    i = int(rng.integers(len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    return word[:i + 1] + word[i] + word[i + 1:]


def char_noise(words: list[str], p: float, rng: np.random.Generator) -> list[str]:
    """Give each word of two or more letters a typo with chance p."""
    return [_typo(w, rng) if len(w) >= 2 and w.isalpha() and rng.random() < p else w for w in words]


def synonym(words: list[str], p: float, rng: np.random.Generator, neighbours: Neighbours | None) -> list[str]:
    """Replace each word with chance p by one of its nearest neighbours in the model's embedding space."""
    if p <= 0 or neighbours is None:
        return words
    out = []
    for w in words:
        core = w.strip(string.punctuation)
        if len(core) >= 3 and core.isalpha() and rng.random() < p:
            near = neighbours(core.lower())
            if near:
                new = near[int(rng.integers(len(near)))]
                new = new.capitalize() if core[0].isupper() else new
                w = w.replace(core, new, 1)
        out.append(w)
    return out


# ---- the embedding neighbours of the pretrained model -------------------------------------------

_NEIGHBOUR_CACHE: dict[str, Neighbours] = {}  # model source -> lookup, once per process


def embedding_neighbours(model: ModelConfig, k: int = NEIGHBOURS) -> Neighbours:
    """word -> its k nearest whole-word vocabulary entries by cosine of the input embeddings."""
    from driftfit.modalities.text.model import load_encoder, load_tokenizer, resolve_pretrained

    source = resolve_pretrained(model.pretrained)
    if source in _NEIGHBOUR_CACHE:
        return _NEIGHBOUR_CACHE[source]
    tokenizer, encoder = load_tokenizer(model, source), load_encoder(model, source)
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    words = sorted((w for w in vocab if w.isalpha() and len(w) >= 2 and w not in special), key=vocab.get)
    matrix = encoder.get_input_embeddings().weight.detach().float().numpy()[[vocab[w] for w in words]]
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True).clip(1e-9)
    row = {w: i for i, w in enumerate(words)}
    found: dict[str, list[str]] = {}

    def lookup(word: str) -> list[str]:
        if word not in found:
            i = row.get(word)
            if i is None:
                found[word] = []
            else:
                sims = matrix @ matrix[i]
                sims[i] = -np.inf
                best = np.argpartition(-sims, k)[:k]
                found[word] = [words[j] for j in best[np.argsort(-sims[best])]]
        return found[word]

    _NEIGHBOUR_CACHE[source] = lookup
    return lookup


# ---- the split --------------------------------------------------------------------------------

def _noisy(text: str, cfg: AugmentConfig, rng: np.random.Generator,
           neighbours: Neighbours | None) -> tuple[str, list[str]]:
    """A noisy copy of `text` and the methods that changed it."""
    words, changed = str(text).split(), []
    steps = {"synonym": lambda ws: synonym(ws, cfg.synonym, rng, neighbours),
             "word_insert": lambda ws: word_insert(ws, cfg.word_insert, rng),
             "word_dropout": lambda ws: word_dropout(ws, cfg.word_dropout, rng),
             "word_swap": lambda ws: word_swap(ws, cfg.word_swap, rng),
             "char_noise": lambda ws: char_noise(ws, cfg.char_noise, rng)}
    for method in METHODS:
        if getattr(cfg, method) > 0:
            new = steps[method](words)
            if new != words:
                changed.append(method)
            words = new
    return " ".join(words), changed


def augment_frame(train: pd.DataFrame, cfg: AugmentConfig, neighbours: Neighbours | None = None) -> pd.DataFrame:
    """Original rows (augmented=False), then `cfg.copies` noisy copies of each, then (balance) copies of
    smaller classes' rows until every class is as large as the largest; added rows are augmented=True."""
    out = train[["text", "label"]].assign(augmented=False, methods="").reset_index(drop=True)
    if not cfg.enabled:
        return out
    rng = np.random.default_rng(cfg.seed)
    noise_on = any(getattr(cfg, m) > 0 for m in METHODS)
    rows = []
    for _ in range(cfg.copies if noise_on else 0):
        for text, label in zip(train["text"], train["label"]):
            new, changed = _noisy(text, cfg, rng, neighbours)
            if changed and new != text:  # an unchanged copy adds nothing but weight
                rows.append((new, label, True, "+".join(changed)))
    if cfg.balance:
        counts = pd.Series([r[1] for r in rows], dtype=object).value_counts().add(
            train["label"].value_counts(), fill_value=0)
        for label, n in counts.items():
            pool = train["text"][train["label"] == label].tolist()
            for i in rng.integers(len(pool), size=int(counts.max() - n)):
                new, changed = _noisy(pool[i], cfg, rng, neighbours) if noise_on else (pool[i], [])
                rows.append((new, label, True, "+".join(["balance", *changed])))
    extra = pd.DataFrame(rows, columns=["text", "label", "augmented", "methods"])
    return pd.concat([out, extra], ignore_index=True) if rows else out


def method_counts(augmented: pd.DataFrame) -> dict[str, int]:
    """How many added rows each method changed (a row can count for several)."""
    added = augmented.loc[augmented["augmented"], "methods"]
    return {m: int(added.str.split("+").map(lambda ms: m in ms).sum()) for m in (*METHODS, "balance")}


def augment(params: Params, train: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The modality's augment: the training rows and their augmented copies, and how many each method changed."""
    cfg = params.augment
    neighbours = embedding_neighbours(params.model) if cfg.enabled and cfg.synonym > 0 else None
    augmented = augment_frame(train, cfg, neighbours)
    return augmented, method_counts(augmented)
