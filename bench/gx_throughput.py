"""Throughput of the validation suite: rows/s at 10k, 100k and 1M rows, and the fixed cost of one run.

    python bench/gx_throughput.py [--sizes 10000 100000 1000000] [--repeats 3] [--out bench/results]

Rows are synthetic but made of real text: each is two SST-2 training sentences joined (so texts are
realistic in length and vocabulary, and almost all distinct), labelled with the first one's label,
then split 70/15/15 into train/val/test. Each size runs driftfit.validate.validate_splits without Data
Docs, as `prepare` checks a batch before writing it (the default contract: GX suite, pass/fail first,
+ duplicates + leakage), warm (GX already imported and initialised in this process): the first run at
a size is reported apart (new memory for the bigger frames), then the median of --repeats runs. The
fixed cost is the median time of a run on 30 rows. GX's import and first run in a process are
reported apart, as is the `validate` stage's report path (a new GX context, detailed results, Data
Docs HTML). Targets (issue 4): >= 500,000 rows/s at 100k rows; <= 0.2 s fixed cost.
Writes bench/results/gx_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import ValidateConfig
from driftfit.io import write_json, write_text
from driftfit.data.contract import contract_from_config
from driftfit.modalities.text.texts import text_ids
from driftfit.modalities.text.checks import validate_splits

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
TARGET_ROWS_PER_S, TARGET_FIXED_S = 500_000, 0.2


def make_splits(n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """n rows of joined real sentences, near-duplicates dropped (a clean batch), split 70/15/15."""
    base = pd.read_csv(SST2, sep="\t", quoting=3, dtype=str)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(base), int(n * 1.1) + 20), rng.integers(0, len(base), int(n * 1.1) + 20)
    sentences = base["sentence"].to_numpy()
    df = pd.DataFrame({"text": pd.Series(sentences[a], dtype="str") + " " + pd.Series(sentences[b], dtype="str"),
                       "label": base["label"].to_numpy()[a]})
    df = df[~pd.Series(text_ids({"all": df["text"]})["all"]).duplicated().to_numpy()].head(n)  # no near-duplicates
    cut1, cut2 = int(n * 0.7), int(n * 0.85)
    return {"train": df.iloc[:cut1], "val": df.iloc[cut1:cut2], "test": df.iloc[cut2:]}


def _thousands(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def timed(splits, contract, docs_dir=None) -> tuple[float, dict]:
    t = time.perf_counter()
    summary = validate_splits(splits, None, contract, docs_dir)
    return time.perf_counter() - t, summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    if not SST2.exists():
        sys.exit(f"{SST2} not found: this benchmark reads SST-2 from ../shared/data")
    contract = contract_from_config(ValidateConfig())
    load_before = os.getloadavg()[0]

    t = time.perf_counter()
    import great_expectations  # noqa: F401  (what the first validation in a process pays once)
    import_s = time.perf_counter() - t
    tiny = make_splits(30, seed=1)
    first_s, _ = timed(tiny, contract)
    fixed = [timed(tiny, contract)[0] for _ in range(7)]
    fixed_s = statistics.median(fixed)

    sizes = []
    for n in args.sizes:
        splits = make_splits(n)
        first = timed(splits, contract)[0]
        runs = [timed(splits, contract) for _ in range(args.repeats)]
        total = statistics.median(r[0] for r in runs)
        summary = runs[0][1]
        sections = {k: statistics.median(r[1]["seconds"][k] for r in runs)
                    for k in ("gx_suite", "duplicates_and_leakage")}
        sizes.append({"rows": n, "seconds": round(total, 4), "rows_per_s": round(n / total),
                      # None: the run was no longer than the fixed cost (the difference is noise)
                      "rows_per_s_after_fixed_cost": round(n / (total - fixed_s)) if total > fixed_s * 1.05 else None,
                      "sections_seconds": {k: round(v, 4) for k, v in sections.items()},
                      "first_run_at_size_seconds": round(first, 4),
                      "runs_seconds": [round(r[0], 4) for r in runs], "success": summary["success"],
                      "errors": len(summary["errors"]), "warnings": len(summary["warnings"])})
        print(json.dumps(sizes[-1]), flush=True)

    docs_n = 100_000 if 100_000 in args.sizes else args.sizes[0]
    with tempfile.TemporaryDirectory() as tmp:
        docs_total, docs_summary = timed(make_splits(docs_n), contract, Path(tmp) / "data_docs")
        docs_tiny = statistics.median(timed(tiny, contract, Path(tmp) / f"tiny_docs_{i}")[0] for i in range(3))
    at_100k = next((s for s in sizes if s["rows"] == 100_000), None)
    out = {
        "command": " ".join(["python bench/gx_throughput.py", *sys.argv[1:]]),
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"pandas {pd.__version__}, great_expectations {great_expectations.__version__}",
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2),
                              "note": "the machine is shared: a load above its CPU count slows every figure"},
        "data": "two real SST-2 training sentences per row, split 70/15/15; default contract",
        "gx_import_seconds": round(import_s, 3), "first_run_seconds": round(first_s, 3),
        "fixed_cost_seconds": round(fixed_s, 4), "fixed_cost_runs": [round(x, 4) for x in fixed],
        "sizes": sizes,
        "data_docs": {"rows": docs_n, "validate_seconds": round(docs_total, 3),
                      "validate_seconds_at_30_rows": round(docs_tiny, 3),
                      "build_seconds": docs_summary["seconds"].get("data_docs")},
        "targets": {"rows_per_s_at_100k": TARGET_ROWS_PER_S, "fixed_cost_seconds": TARGET_FIXED_S},
        "met": {"rows_per_s_at_100k": bool(at_100k and at_100k["rows_per_s"] >= TARGET_ROWS_PER_S),
                "rows_per_s_at_100k_after_fixed_cost":
                    bool(at_100k and (at_100k["rows_per_s_after_fixed_cost"] or 0) >= TARGET_ROWS_PER_S),
                "fixed_cost_seconds": fixed_s <= TARGET_FIXED_S},
    }
    write_json(Path(args.out) / "gx_throughput.json", out)
    load = out["load_average_1min"]
    md = ["# Validation suite throughput", "", f"Command: `{out['command']}`  ", f"Machine: {out['machine']}; "
          f"1-minute load average {load['before']} before, {load['after']} after (shared machine)", "",
          f"Data: {out['data']}. Warm runs without Data Docs, as `prepare` checks a batch (GX imported and "
          f"initialised once per process), median of {args.repeats}.", "",
          "| rows | seconds | rows/s | rows/s after the fixed cost | first run at this size s | GX suite s | "
          "duplicates + leakage s |", "|---|---|---|---|---|---|---|"]
    md += [f"| {s['rows']:,} | {s['seconds']} | {s['rows_per_s']:,} | {_thousands(s['rows_per_s_after_fixed_cost'])} | "
           f"{s['first_run_at_size_seconds']} | {s['sections_seconds']['gx_suite']} | "
           f"{s['sections_seconds']['duplicates_and_leakage']} |" for s in sizes]
    md += ["", f"- fixed cost per run (30 rows, median of 7): **{fixed_s:.3f} s** (target <= {TARGET_FIXED_S} s)",
           f"- once per process: importing GX {import_s:.2f} s; first run {first_s:.2f} s",
           f"- the `validate` stage's report path at {docs_n:,} rows (new GX context, detailed results, Data Docs): "
           f"{out['data_docs']['validate_seconds']} s, of which building the Data Docs HTML "
           f"{out['data_docs']['build_seconds']} s; at 30 rows {out['data_docs']['validate_seconds_at_30_rows']} s",
           f"- targets met: {out['met']}"]
    write_text(Path(args.out) / "gx_throughput.md", "\n".join(md) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
