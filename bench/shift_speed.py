"""How long the shift measurement takes on 5,000 vs 5,000 real texts (target: at most 30 s on the 2-core CPU).

    python bench/shift_speed.py [--rows 5000] [--out bench/results]

Reference: SST-2 train sentences; incoming: AG News texts (a real shift). Runs driftfit.modalities.text.measures.measure_shift
exactly as the pipeline does, with the shipped params (tokenizer fit reads at most shift.TOKENIZER_TEXTS
texts per side, the embedding measures `shift.sample_size`; label shift and data size count every row),
and records each section's wall time. Writes bench/results/shift_speed.json and .md.
Time and peak memory of the whole step at 10k, 100k and 1M rows: bench/scale.py (bench/results/scale.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import torch

from driftfit.config import SourceConfig, load_params
from driftfit.io import write_json, write_text
from driftfit.modalities.text.loaders import load_table
from driftfit.modalities.text.model import load_encoder, load_tokenizer
from driftfit.data.splits import stratified_split
from driftfit.modalities.text.measures import TOKENIZER_TEXTS, measure_shift

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    n = args.rows
    params = load_params(ROOT / "params.yaml")  # shift.sample_size as shipped: the embedded subsample
    reference = load_table(SourceConfig(path=str(SHARED / "sst2" / "train.tsv"), text="sentence", label="label",
                                        sample=n))
    incoming = load_table(SourceConfig(path=str(SHARED / "agnews" / "dev.tsv"), header=False, text=0, label=1,
                                       sample=n))
    parts = stratified_split(incoming, {"val": 0.15}, seed=0)
    t = time.perf_counter()
    tokenizer, encoder = load_tokenizer(params.model), load_encoder(params.model)
    load_seconds = time.perf_counter() - t
    t = time.perf_counter()
    report = measure_shift(reference, parts["train"], parts["val"], encoder, tokenizer, params.shift,
                           params.model.max_seq_len)
    total = time.perf_counter() - t
    sections = {k: round(v["seconds"], 2) for k, v in report.items() if isinstance(v, dict) and "seconds" in v}
    out = {"command": f"python bench/shift_speed.py --rows {n}", "date": datetime.date.today().isoformat(),
           "machine": f"{platform.node()}: CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
           "rows": {"reference": len(reference), "incoming": len(incoming)},
           "max_seq_len": params.model.max_seq_len, "permutations": params.shift.permutations,
           "sample_size": params.shift.sample_size, "embedded_texts": report["embed"]["texts"],
           "tokenizer_texts": {k: report["tokenizer"][k]["texts"] for k in ("incoming", "reference")},
           "tokenizer_bound": TOKENIZER_TEXTS,
           "model_load_seconds": round(load_seconds, 2), "measure_seconds": round(total, 2),
           "sections_seconds": sections, "target_seconds": 30,
           "mmd2": report["embedding"]["mmd2"], "p_value": report["embedding"]["p_value"],
           "domain_auc": report["embedding"]["domain_classifier"].get("auc")}
    write_json(Path(args.out) / "shift_speed.json", out)
    md = ["# Shift measurement speed", "", f"Command: `{out['command']}`  ", f"Date: {out['date']}  ",
          f"Machine: {out['machine']}", "",
          f"{n} reference (SST-2) vs {n} incoming (AG News) texts, max_seq_len {out['max_seq_len']}, "
          f"{out['permutations']} permutations, shift.sample_size {out['sample_size']} "
          f"({out['embedded_texts']} texts embedded): **{total:.1f} s** for the whole measurement "
          f"(target at most 30 s), plus {load_seconds:.1f} s to load the model. Tokenizer fit read "
          f"{out['tokenizer_texts']['incoming']} incoming and {out['tokenizer_texts']['reference']} reference texts "
          f"(bound {TOKENIZER_TEXTS} per side). Time and peak memory at 10k, 100k and 1M rows: `scale.md`.", "",
          "| section | seconds |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sections.items()]
    write_text(Path(args.out) / "shift_speed.md", "\n".join(md) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
