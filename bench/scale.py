"""Time and peak memory of prepare, validate, augment and measure-shift at 10k, 100k and 1M rows.

    python bench/scale.py [--sizes 10000 100000 1000000] [--steps prepare validate augment measure-shift]
                          [--work /tmp/driftfit-scale] [--out bench/results] [--name scale] [--stability 100000]

Per size, a reference file and an incoming batch of that many rows each are written as CSV (like a batch
that lands), then each step runs as the pipeline runs it, `python -m driftfit.cli STEP`, in a fresh
process, with the shipped params.yaml and data contract (only the paths point into --work). Wall time
and peak RSS are measured per step process (/usr/bin/time).
This is the shift benchmark at 10k/100k/1M rows as well (bench/shift_speed.py times the sections
at 5,000 vs 5,000 texts).

Rows are synthetic but made of real text (../shared/data): an incoming row is an AG News sentence
joined with an SST-2 phrase (AG News label, about 200 bytes), a reference row an SST-2 sentence joined
with another (the first one's label, about 100 bytes): the same real shift as bench/shift_speed.py.
Pairs are drawn at random and near-duplicates dropped (driftfit.texts), so the default contract's
duplicate and leakage checks pass, as they would on a clean batch.

--stability N also checks the bound on tokenizer fit (driftfit.modalities.text.measures.TOKENIZER_TEXTS): the fit on all
N incoming texts against seeded samples of the bound. Writes <out>/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from driftfit.io import read_json, write_json, write_text
from driftfit.modalities.text.texts import text_ids

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
STEPS = ("prepare", "validate", "augment", "measure-shift")
TARGET_GB = 3.0  # "no step above a few GB"


# ---- data -------------------------------------------------------------------------------------

def sources() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SST-2 sentences with labels, AG News sentences with labels) from ../shared/data."""
    sst = pd.read_csv(SHARED / "sst2" / "train.tsv", sep="\t", quoting=3, dtype=str)
    sst = sst[sst["sentence"].str.strip().str.len() > 0].rename(columns={"sentence": "text"})
    ag = pd.read_csv(SHARED / "agnews" / "dev.tsv", sep="\t", quoting=3, header=None, names=["text", "label"],
                     dtype=str)
    ag = ag.assign(text=ag["text"].str.replace(" #39;", "'", regex=False).str.split(r"(?<=[.!?])\s+", regex=True))
    ag = ag.explode("text")
    ag = ag[ag["text"].str.len() >= 20]
    return sst.reset_index(drop=True), ag.reset_index(drop=True)


def joined(first: pd.DataFrame, second: pd.Series, n: int, seed: int) -> pd.DataFrame:
    """n rows: a random row of `first` (text + its label) + ' ' + a random text of `second`, no near-duplicates."""
    rng = np.random.default_rng(seed)
    m = int(n * 1.05) + 100
    a, b = rng.integers(0, len(first), m), rng.integers(0, len(second), m)
    text = (pd.Series(first["text"].to_numpy()[a], dtype="str").str.strip() + " "
            + pd.Series(second.to_numpy()[b], dtype="str").str.strip())
    df = pd.DataFrame({"text": text, "label": first["label"].to_numpy()[a]})
    df = df[~pd.Series(text_ids({"all": df["text"]})["all"]).duplicated().to_numpy()]
    if len(df) < n:
        raise SystemExit(f"only {len(df)} distinct rows for {n}: the sources are too small")
    return df.head(n).reset_index(drop=True)


def write_data(folder: Path, n: int) -> dict:
    """reference.csv and incoming.csv of n rows each under folder; their sizes."""
    sst, ag = sources()
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, df in (("reference", joined(sst, sst["text"], n, seed=1)),
                     ("incoming", joined(ag, sst["text"], n, seed=2))):
        path = folder / f"{name}.csv"
        df.to_csv(path, index=False)
        out[name] = {"rows": len(df), "mb": round(path.stat().st_size / 1e6, 1),
                     "labels": int(df["label"].nunique())}
    return out


def write_params(folder: Path) -> Path:
    """The shipped params.yaml, with the data in folder and every output under folder (relative paths)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["reference"]["path"] = "reference.csv"
    raw["data"]["incoming"]["path"] = "incoming.csv"
    raw["validate"]["contract"] = str(ROOT / "data" / "contract.yaml")
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ---- one step in a fresh process --------------------------------------------------------------

def run_step(step: str, params: Path, log: Path) -> dict:
    """`python -m driftfit.cli STEP --params params` in a fresh process, under /usr/bin/time: wall seconds,
    peak RSS, CPU seconds, exit status. (A child forked from this process would start its ru_maxrss at
    this process's size, so a small process, time, starts it.)"""
    timing = log.with_suffix(".time")
    cmd = ["/usr/bin/time", "-f", "%e %M %U %S", "-o", str(timing),
           sys.executable, "-m", "driftfit.cli", step, "--params", str(params)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    load = os.getloadavg()[0]
    with open(log, "w") as out:
        code = subprocess.run(cmd, cwd=params.parent, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    wall, max_kib, user, system = timing.read_text().split()[-4:]  # after "Command exited with ..." if any
    return {"seconds": round(float(wall), 1), "peak_rss_mb": round(int(max_kib) / 1024),
            "cpu_seconds": round(float(user) + float(system), 1), "load_before": round(load, 1), "exit": code}


def step_details(step: str, folder: Path) -> dict:
    """A few numbers from what the step wrote: rows handled, and for measure-shift what it sampled."""
    if step == "augment":
        s = read_json(folder / "data" / "augmented" / "summary.json")
        return {"train_rows": s["original_rows"], "added_rows": s["augmented_rows"]}
    if step == "validate":
        s = read_json(folder / "reports" / "validation" / "summary.json")
        return {"rows": sum(v["rows"] for v in s["splits"].values()), "gx_seconds": s["seconds"].get("gx_suite"),
                "errors": len(s["errors"]), "warnings": len(s["warnings"])}
    if step == "measure-shift":
        r = read_json(folder / "reports" / "shift.json")
        return {"incoming_rows": r["data_size"]["rows"] + r["data_size"]["val_rows"],
                "reference_rows": r["data_size"]["reference_rows"],
                "tokenizer_texts": {k: r["tokenizer"][k]["texts"] for k in ("incoming", "reference")},
                "embedded_texts": r["embed"]["texts"], "measure_seconds": round(r["seconds"], 1),
                "sections_seconds": {k: round(v["seconds"], 2) for k, v in r.items()
                                     if isinstance(v, dict) and "seconds" in v}}
    if step == "prepare":
        m = read_json(folder / "data" / "prepared" / "manifest.json")
        return {"rows": {k: v["rows"] for k, v in m["splits"].items()}}
    return {}


# ---- is the tokenizer-fit bound stable? ----------------------------------------------------------

def _bound_check(tokenizer, texts: pd.Series, seeds: int) -> dict:
    """Tokenizer fit on all texts (in chunks) against `seeds` seeded samples of TOKENIZER_TEXTS of them."""
    from driftfit.measures.shift import sample as _sample
    from driftfit.modalities.text.measures import TOKENIZER_TEXTS, tokenizer_fit

    n, t = len(texts), time.perf_counter()
    unk = tokens = words = 0.0
    for start in range(0, n, 20_000):  # chunks: the fit of all texts without holding all their tokens at once
        chunk = texts.iloc[start:start + 20_000].tolist()
        fit, chunk_words = tokenizer_fit(tokenizer, chunk), sum(len(x.split()) for x in chunk)
        words += chunk_words
        tokens += fit["tokens_per_word"] * chunk_words
        unk += fit["unk_rate"] * fit["tokens_per_word"] * chunk_words
    full = {"unk_rate": unk / tokens, "tokens_per_word": tokens / words, "seconds": round(time.perf_counter() - t, 1)}
    fits = [tokenizer_fit(tokenizer, texts.iloc[_sample(n, TOKENIZER_TEXTS, np.random.default_rng([seed, 1]))].tolist())
            for seed in range(seeds)]
    tpw = np.array([f["tokens_per_word"] for f in fits])
    unks = np.array([f["unk_rate"] for f in fits])
    return {"rows": n, "bound": TOKENIZER_TEXTS, "seeds": seeds, "all_rows": full,
            "samples_tokens_per_word": [round(float(x), 4) for x in tpw],
            "samples_unk_rate": [round(float(x), 5) for x in unks],
            "tokens_per_word_max_rel_error": round(float(np.abs(tpw / full["tokens_per_word"] - 1).max()), 4),
            "unk_rate_max_abs_error": round(float(np.abs(unks - full["unk_rate"]).max()), 5)}


def stability(n: int, seeds: int = 5) -> dict:
    """Is TOKENIZER_TEXTS enough? On n incoming texts as benchmarked (English: no [UNK]), and on the same
    texts with every 4th replaced by a chatterbot-corpus Chinese utterance (an [UNK] share near the
    policy's 0.05 threshold)."""
    from driftfit.config import ModelConfig
    from driftfit.modalities.text.default_data import chatterbot_conversations
    from driftfit.modalities.text.model import load_tokenizer

    sst, ag = sources()
    texts = joined(ag, sst["text"], n, seed=2)["text"]
    chinese = [u for _, convs in chatterbot_conversations("chinese").values() for c in convs for u in c]
    rng = np.random.default_rng(3)
    mixed = texts.copy()
    mixed.iloc[::4] = np.asarray(chinese, dtype=object)[rng.integers(0, len(chinese), len(mixed.iloc[::4]))]
    tokenizer = load_tokenizer(ModelConfig())
    return {"english": _bound_check(tokenizer, texts, seeds),
            "with_25pct_chinese": _bound_check(tokenizer, mixed, seeds)}


# ---- report -------------------------------------------------------------------------------------

def markdown(out: dict) -> str:
    lines = [f"# Scale: time and peak memory per step at {', '.join(f'{n:,}' for n in out['sizes'])} rows", "",
             f"Command: `{out['command']}`  ", f"Date: {out['date']}  ", f"Machine: {out['machine']}", "",
             *([out["note"], ""] if out.get("note") else []),
             "Each step is `python -m driftfit.cli STEP` in a fresh process (shipped params and contract) "
             "under `/usr/bin/time` (peak RSS: its maximum resident set size); load: the 1-minute load average "
             "before the step (the machine is shared, so seconds vary with it). Rows: an incoming batch and a "
             "reference of N rows each (CSV; see the script's docstring). This is also the shift benchmark's "
             "10k/100k/1M rows (measure-shift); `bench/shift_speed.md` has its sections at 5,000 vs 5,000 texts. "
             "`scale_before_shift.md`: measure-shift before its tokenizer fit read a bounded sample.", "",
             "| rows | step | seconds | peak RSS (MB) | CPU seconds | load | exit |", "|---|---|---|---|---|---|---|"]
    for size in out["results"]:
        for step, r in size["steps"].items():
            lines.append(f"| {size['rows']:,} | {step} | {r['seconds']} | {r['peak_rss_mb']:,} | {r['cpu_seconds']} "
                         f"| {r['load_before']} | {r['exit']} |")
    lines += ["", "Data written per size (CSV): " + "; ".join(
        f"{s['rows']:,}: incoming {s['data']['incoming']['mb']} MB, reference {s['data']['reference']['mb']} MB"
        for s in out["results"]) + ".", ""]
    shift_rows = [s for s in out["results"] if "details" in s["steps"].get("measure-shift", {})]
    if shift_rows:
        lines += ["measure-shift, what it read and sampled:", "",
                  "| rows | incoming rows | reference rows | tokenizer texts (inc / ref) | embedded texts | "
                  "sections (s) |", "|---|---|---|---|---|---|"]
        for s in shift_rows:
            d = s["steps"]["measure-shift"]["details"]
            sections = ", ".join(f"{k} {v}" for k, v in d["sections_seconds"].items())
            lines.append(f"| {s['rows']:,} | {d['incoming_rows']:,} | {d['reference_rows']:,} | "
                         f"{d['tokenizer_texts']['incoming']:,} / {d['tokenizer_texts']['reference']:,} | "
                         f"{d['embedded_texts']:,} | {sections} |")
        lines.append("")
    if out.get("stability"):
        lines += ["Is the tokenizer-fit bound (`driftfit.modalities.text.measures.TOKENIZER_TEXTS`) enough? The fit on every text "
                  "against seeded samples of the bound (the policy's thresholds: 2.5 tokens/word, 0.05 [UNK]):", "",
                  "| texts | rows | all rows: tokens/word, [UNK] (s) | samples: tokens/word | largest rel. error | "
                  "samples: [UNK] | largest abs. error |", "|---|---|---|---|---|---|---|"]
        for name, st in out["stability"].items():
            lines.append(f"| {name} | {st['rows']:,} | {st['all_rows']['tokens_per_word']:.4f}, "
                         f"{st['all_rows']['unk_rate']:.5f} ({st['all_rows']['seconds']} s) | "
                         f"{', '.join(map(str, st['samples_tokens_per_word']))} | "
                         f"{st['tokens_per_word_max_rel_error']:.2%} | {', '.join(map(str, st['samples_unk_rate']))} | "
                         f"{st['unk_rate_max_abs_error']} |")
        lines.append("")
    over = [f"{s['rows']:,} {k} ({r['peak_rss_mb']:,} MB)" for s in out["results"] for k, r in s["steps"].items()
            if r["peak_rss_mb"] > TARGET_GB * 1024]
    lines.append(f"Steps above {TARGET_GB:g} GB: {', '.join(over) if over else 'none'}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    ap.add_argument("--work", default="/tmp/driftfit-scale", help="data and outputs per size go here")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--name", default="scale", help="results file name (without extension)")
    ap.add_argument("--stability", type=int, default=0, help="rows for the tokenizer-fit bound check (0: skip)")
    ap.add_argument("--note", default="", help="a line for the results (e.g. which code ran)")
    args = ap.parse_args()
    if not (SHARED / "sst2").is_dir():
        sys.exit(f"{SHARED} not found: this benchmark reads SST-2 and AG News from ../shared/data")
    command = " ".join(shlex.quote(a) for a in ["python", "bench/scale.py", *sys.argv[1:]])
    if os.environ.get("PYTHONPATH"):
        command = f"PYTHONPATH={os.environ['PYTHONPATH']} {command}"
    import torch

    out = {"command": command, "date": datetime.date.today().isoformat(),
           "machine": f"{platform.node()}: {os.cpu_count()} CPUs, "
                      f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
                      f"torch {torch.__version__}, load {os.getloadavg()[0]:.1f} at start",
           "note": args.note, "sizes": args.sizes, "steps": args.steps, "results": []}
    for n in args.sizes:
        folder = Path(args.work) / str(n)
        t = time.perf_counter()
        size = {"rows": n, "data": write_data(folder, n), "data_seconds": round(time.perf_counter() - t, 1),
                "steps": {}}
        params = write_params(folder)
        for step in args.steps:
            r = run_step(step, params, folder / f"{step}.log")
            if r["exit"] == 0:
                r["details"] = step_details(step, folder)
            size["steps"][step] = r
            print(f"{n:>9,} {step:<14} {r['seconds']:>7} s {r['peak_rss_mb']:>7,} MB  exit {r['exit']}", flush=True)
        out["results"].append(size)
        write_json(Path(args.out) / f"{args.name}.json", out)  # saved per size: a long run keeps what it did
    if args.stability:
        out["stability"] = stability(args.stability)
    write_json(Path(args.out) / f"{args.name}.json", out)
    write_text(Path(args.out) / f"{args.name}.md", markdown(out))
    print(json.dumps({k: out[k] for k in ("command", "date", "machine")}, indent=2))


if __name__ == "__main__":
    main()
