"""Does image augmentation help? Test accuracy with and without each method on the animal-silhouette example.

    python -m bench.image_augmentation [--seeds 0 1 2] [--strategies head] [--out bench/results]

Scenario: the embedded image example (examples/image/params.yaml): 30 animal-mnist silhouettes of each of
10 animals at 64 x 64 pixels, split 20 / 4 / 6 per animal; the seed draws the silhouettes, the split and the
augmentation. Every run goes through the pipeline's own steps (default-data, prepare, validate, augment,
train with a forced strategy, evaluate; driftfit.modalities; shift and the selector are skipped) in a
temporary project, so the augmentation is exactly what `make run-image` does: one augmented copy per
training image, each method alone (the others off; `crop` alone keeps 60-100% of the area, the other
methods alone keep the whole image) and all together.
Writes bench/results/image_augmentation.json and .md.
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

import torch
import yaml

from driftfit.config import load_params, set_dotted
from driftfit.io import write_json, write_text
from driftfit.pipeline import runner

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "image" / "params.yaml"
OFF = {"image.flip": 0.0, "image.crop_min_scale": 1.0, "image.jitter": 0.0, "image.randaugment_n": 0}
SETTINGS = {  # name -> params overrides
    "none": {"augment.enabled": False},
    "crop": {**OFF, "image.crop_min_scale": 0.6},
    "flip": {**OFF, "image.flip": 0.5},
    "jitter": {**OFF, "image.jitter": 0.2},
    "randaugment": {**OFF, "image.randaugment_n": 2},
    "all": {},  # the example's own settings: crop 0.6, flip 0.5, jitter 0.2, RandAugment 2 x 9
}


def run_once(folder: Path, overrides: dict) -> dict:
    """One pipeline run up to evaluate in `folder`; the candidate's test scores and the training rows."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(folder / "params.yaml")
    results = {name: runner(name)(params) for name in ("default-data", "prepare", "validate", "augment")}
    # The strategy is forced: the decision record train reads, without measuring shift (the selector's choice
    # is not what is measured here).
    write_json(params.paths.decision, {"strategy": params.strategy.force, "reason": "forced", "replay": "fraction"})
    results.update({name: runner(name)(params) for name in ("train", "evaluate")})
    return {**results["evaluate"]["candidate"]["test"], "train_rows": results["augment"]["total_rows"],
            "train_seconds": results["train"]["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strategies", nargs="+", default=["head"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    cache = ROOT / "examples" / "image" / "models" / "pretrained" / "efficientnet_lite0"
    runs: dict[str, dict[str, list[dict]]] = {s: {name: [] for name in SETTINGS} for s in args.strategies}
    for seed in args.seeds:
        for strategy in args.strategies:
            for name, setting in SETTINGS.items():
                with tempfile.TemporaryDirectory(prefix="driftfit-image-aug-") as tmp:
                    row = run_once(Path(tmp), {**setting, "split.seed": seed, "augment.seed": seed,
                                               "train.seed": seed, "strategy.force": strategy,
                                               "image.weights_cache": str(cache)})
                runs[strategy][name].append({"seed": seed, **row})
                print(strategy, name, json.dumps(runs[strategy][name][-1]), flush=True)

    def mean_sd(values: list[float]) -> tuple[float, float]:
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    summary: dict = {}
    for strategy, by_setting in runs.items():
        base = [r["accuracy"] for r in by_setting["none"]]
        for name, rows in by_setting.items():
            (acc, acc_sd), (f1, f1_sd) = mean_sd([r["accuracy"] for r in rows]), mean_sd([r["macro_f1"] for r in rows])
            summary.setdefault(strategy, {})[name] = {
                "accuracy": round(acc, 4), "accuracy_sd": round(acc_sd, 4), "macro_f1": round(f1, 4),
                "macro_f1_sd": round(f1_sd, 4), "accuracy_minus_none": round(acc - statistics.mean(base), 4),
                "seeds_better_than_none": sum(r["accuracy"] > b for r, b in zip(rows, base)),
                "train_rows": rows[0]["train_rows"],
                "train_seconds": round(statistics.mean(r["train_seconds"] for r in rows), 1)}
    out = {"command": " ".join(["python -m bench.image_augmentation", *sys.argv[1:]]),
           "machine": f"{platform.node()}: {os.cpu_count()} CPUs, torch {torch.__version__} (CPU)",
           "scenario": "animal-mnist silhouettes, 10 animals x 30 (20 train / 4 val / 6 test each), 64 x 64 pixels; "
                       "examples/image/params.yaml (train.epochs 3)",
           "seeds": args.seeds, "summary": summary, "runs": runs, "seconds": round(time.perf_counter() - started, 1)}
    write_json(Path(args.out) / "image_augmentation.json", out)
    md = ["# Image augmentation benchmark", "", f"Command: `{out['command']}`  ", f"Machine: {out['machine']}", "",
          f"Scenario: {out['scenario']}. One augmented copy per training image; each method alone (the others "
          f"off) and all together; mean ± sd over seeds {args.seeds} (seed = silhouettes drawn, split, "
          "augmentation and initialisation). 60 test images per seed: one image is 1.7 points.", ""]
    for strategy, table in summary.items():
        md += [f"## {strategy}", "", "| setting | accuracy | macro-F1 | accuracy − none | seeds better than none "
               "| training images | train s |", "|---|---|---|---|---|---|---|"]
        md += [f"| {name} | {t['accuracy']:.3f} ± {t['accuracy_sd']:.3f} | {t['macro_f1']:.3f} ± "
               f"{t['macro_f1_sd']:.3f} | {t['accuracy_minus_none']:+.3f} | {t['seeds_better_than_none']}/"
               f"{len(args.seeds)} | {t['train_rows']} | {t['train_seconds']} |" for name, t in table.items()]
        md.append("")
    md.append(f"Wall time {out['seconds']} s on a shared machine.")
    write_text(Path(args.out) / "image_augmentation.md", "\n".join(md) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
