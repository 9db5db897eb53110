"""Image training speed: driftfit's image training loop against a plain hand-written PyTorch loop, on the same
EfficientNet-Lite0, the same images, batch size, image size and number of steps.

    python -m bench.image_train_throughput [--steps 3] [--warmup 1] [--repeats 3] [--batch-size 32]
                                           [--size 64] [--device auto|cpu|cuda] [--note TEXT] [--out bench/results]

The images: the embedded animal silhouettes (driftfit.modalities.image.data), steps x batch of them (one epoch), decoded
once to a uint8 tensor at `--size` (the image example's image.size, 64), plus 10 per animal for validation.
Four loops, each on its own model, warmed up (`--warmup` steps), then timed `--repeats` times; in each repeat
a strategy's two loops run back to back, which one first alternating, so a neighbour's changing load falls on
both alike. Reported: the median images/s of each, and the median of the per-repeat ratios (the paired figure,
steadier on a shared machine):
  full   ours   driftfit.modalities.image.recipe.fit_loop for strategy full (AdamW with the head at head_learning_rate,
                the linear schedule with warm-up, per-step loss logging; early stopping off: validation
                evaluations are not training);
         plain  a DataLoader over the same tensor (shuffle), normalise the batch, forward, cross-entropy,
                backward, AdamW step: the loop of a torchvision tutorial, with transforms.Normalize written
                in torch (torchvision cannot be imported here: see driftfit.modalities.image.model);
  head   ours   driftfit.modalities.image.recipe.fit_head: the frozen network's features of every training image once
                (and of the validation images), then L-BFGS logistic regression per C of train.head_c_grid;
         plain  the same number of steps of the loop above with every layer but the head frozen (each step
                runs the whole network forward).
Both sides decode nothing in the timed part. Also the validation accuracy each model reached (context, not a
race: ours' head is fitted to convergence, the plain head saw each image once).
Writes bench/results/image_train_throughput_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from driftfit.config import load_params
from driftfit.modalities.image.data import load_pixels, write_animal_silhouettes
from driftfit.modalities.image.model import (MEAN, STD, convert_to_safetensors, features, image_classifier, normalize_for,
                                  packaged_weights_file, predict_proba)
from driftfit.modalities.image.recipe import build_model, fit_head, fit_loop
from driftfit.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "image" / "params.yaml"
VAL_PER_CLASS = 10


# ---- the plain loop ---------------------------------------------------------------------------------------

def plain_model(num_labels: int, cache: Path, seed: int, head_only: bool, device: torch.device):
    """The same EfficientNet-Lite0 with a new head; head_only: every other weight frozen (and in eval mode)."""
    model = image_classifier(num_labels, cache, seed).to(device)
    if head_only:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("backbone._fc."))
        model.eval()
    else:
        model.train()
    return model


def plain_loop(model, pixels: torch.Tensor, targets: torch.Tensor, steps: int, batch_size: int, lr: float,
               seed: int, device: torch.device) -> None:
    """`steps` steps of the textbook loop: DataLoader, normalise, forward, loss, backward, AdamW."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    loader = DataLoader(TensorDataset(pixels, targets), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)  # transforms.ConvertImageDtype + Normalize
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    step = 0
    while step < steps:
        for x, y in loader:
            x = (x.to(device, non_blocking=True).float() / 255 - mean) / std
            loss = F.cross_entropy(model(x), y.to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break


# ---- timing -------------------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(run, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - start


def accuracy(model, pixels: torch.Tensor, y: np.ndarray) -> float:
    return round(float((predict_proba(model, pixels, 64).argmax(1) == y).mean()), 4)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"CPU: {cpu}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per repeat (one epoch of images); "
                    "few, so the whole run fits in about 5 minutes on 2 busy cores")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first, per loop")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per loop; the median is reported")
    ap.add_argument("--batch-size", type=int, default=32, help="images per step (the example's train.batch_size)")
    ap.add_argument("--size", type=int, default=None, help="pixels per side (default: the example's image.size)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: cuda when available, else cpu")
    ap.add_argument("--note", default="", help="a sentence for the .md about the conditions (e.g. a shared machine)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    started, load_start = time.perf_counter(), os.getloadavg()

    work = Path(tempfile.mkdtemp(prefix="driftfit-bench-image-"))
    cache = work / "efficientnet_lite0"
    convert_to_safetensors(packaged_weights_file(), cache)
    size = args.size or load_params(EXAMPLE).image.size
    overrides = {"image.weights_cache": str(cache), "image.size": size, "train.batch_size": args.batch_size,
                 "train.early_stopping_patience": 0}
    params = load_params(EXAMPLE, {**overrides, "train.max_steps": args.steps})
    warm_params = load_params(EXAMPLE, {**overrides, "train.max_steps": args.warmup})
    cfg = params.train

    n_train = args.steps * args.batch_size
    per_class = -(-n_train // 10) + VAL_PER_CLASS
    table = write_animal_silhouettes(work / "animals", per_class, params.split.seed)
    labels = sorted(table["label"].unique())
    val = table.groupby("label").head(VAL_PER_CLASS)
    train = table.drop(val.index).sample(frac=1, random_state=0).iloc[:n_train]
    x_train, x_val = load_pixels(list(train["path"]), size), load_pixels(list(val["path"]), size)
    y_train = np.array([labels.index(l) for l in train["label"]])
    y_val = np.array([labels.index(l) for l in val["label"]])
    targets = torch.as_tensor(y_train)

    models = {("full", "ours"): build_model("full", params, len(labels)).to(device),
              ("full", "plain"): plain_model(len(labels), cache, cfg.seed, False, device),
              ("head", "ours"): build_model("head", params, len(labels)).to(device),
              ("head", "plain"): plain_model(len(labels), cache, cfg.seed, True, device)}
    warm = args.warmup * args.batch_size
    head_logs: list[dict] = []  # fit_head's record of each timed run: feature_seconds, fit_seconds

    def run(key, p, steps, warmup=False):
        model = models[key]
        if key == ("full", "ours"):
            return lambda: fit_loop(model, "full", x_train, y_train, x_val, y_val, p, None)
        if key == ("head", "ours"):
            if warmup:  # the network's forward only (a fit needs every label)
                return lambda: features(model, normalize_for(model, x_train[:warm]))
            return lambda: head_logs.append(fit_head(model, x_train, y_train, x_val, y_val, p, None)["head_fit"])
        lr = cfg.learning_rate if key[0] == "full" else cfg.head_learning_rate
        return lambda: (model.train(key[0] == "full"),
                        plain_loop(model, x_train, targets, steps, args.batch_size, lr, cfg.seed, device))

    for key in models:
        timed(run(key, warm_params, args.warmup, warmup=True), device)
    seconds: dict[tuple, list[float]] = {key: [] for key in models}
    for r in range(args.repeats):
        for strategy in ("full", "head"):
            for side in ("ours", "plain") if r % 2 == 0 else ("plain", "ours"):
                key = (strategy, side)
                seconds[key].append(timed(run(key, params, args.steps), device))
                print(key, f"{seconds[key][-1]:.2f} s", flush=True)

    results = {}
    for strategy in ("full", "head"):
        row = {}
        for side in ("ours", "plain"):
            s = seconds[(strategy, side)]
            row[side] = {"images_per_s": round(n_train / statistics.median(s), 2),
                         "seconds": [round(x, 3) for x in s], "median_seconds": round(statistics.median(s), 3),
                         "val_accuracy": accuracy(models[(strategy, side)], x_val, y_val)}
        row["ratio_ours_to_plain"] = round(row["ours"]["images_per_s"] / row["plain"]["images_per_s"], 3)
        row["paired_ratio_ours_to_plain"] = round(statistics.median(
            p / o for o, p in zip(seconds[(strategy, "ours")], seconds[(strategy, "plain")])), 3)
        results[strategy] = row
    results["head"]["ours"].update(
        feature_seconds=round(statistics.median(h["feature_seconds"] for h in head_logs), 2),
        lbfgs_seconds=round(statistics.median(h["fit_seconds"] for h in head_logs), 2),
        c_grid=head_logs[-1]["c_grid"], chosen_c=head_logs[-1]["chosen_c"])

    command = "python -m bench.image_train_throughput " + " ".join(
        a if " " not in a else repr(a) for a in sys.argv[1:])
    out = {"command": command, "machine": machine(device), "device": device.type, "torch": torch.__version__,
           "python": platform.python_version(), "date": datetime.date.today().isoformat(),
           "image_size": size, "batch_size": args.batch_size, "steps": args.steps, "warmup_steps": args.warmup,
           "repeats": args.repeats, "train_images": n_train, "val_images": len(val), "note": args.note,
           "load_average_1min": {"start": round(load_start[0], 2), "end": round(os.getloadavg()[0], 2)},
           "results": results, "wall_seconds": round(time.perf_counter() - started, 1)}
    stem = f"image_train_throughput_{device.type}"
    write_json(Path(args.out) / f"{stem}.json", out)
    md = [f"# Image training speed: driftfit against a plain PyTorch loop ({out['machine']})", "",
          f"Command: `{command}`  ", f"Date: {out['date']}; torch {out['torch']}, Python {out['python']}; "
          f"whole run {out['wall_seconds']} s.", "",
          f"EfficientNet-Lite0 (ImageNet weights, new 10-class head) on {n_train} animal silhouettes at "
          f"{size} x {size}, "
          f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up step(s), median of "
          f"{args.repeats} repeats (images per second of training; decoding is not timed on either side). "
          f"Load average (1 min) {out['load_average_1min']['start']} at the start, "
          f"{out['load_average_1min']['end']} at the end.", ""]
    if args.note:
        md += [f"**Conditions:** {args.note}", ""]
    md += ["| strategy | driftfit images/s | plain loop images/s | driftfit / plain (medians) | driftfit / plain "
           "(paired, median) | seconds per repeat, driftfit / plain | val accuracy driftfit / plain |",
           "|---|---|---|---|---|---|---|"]
    for strategy, r in results.items():
        o, p = r["ours"], r["plain"]
        per_repeat = ", ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(o["seconds"], p["seconds"]))
        md.append(f"| {strategy} | {o['images_per_s']} | {p['images_per_s']} | {r['ratio_ours_to_plain']}x | "
                  f"{r['paired_ratio_ours_to_plain']}x | {per_repeat} | {o['val_accuracy']} / {p['val_accuracy']} |")
    md += ["", "- full: driftfit's `fit_loop` (AdamW in parameter groups, the head at head_learning_rate, linear "
           "schedule with warm-up, the loss read back every step; early stopping off) against a DataLoader loop "
           "with one AdamW group and no schedule.",
           "- head: driftfit's `fit_head` runs the frozen network once over the training images (and the "
           f"{len(val)} validation images, not counted), then fits the head with L-BFGS for each C of "
           "train.head_c_grid; the plain loop runs the whole network forward at every step and trains the head "
           "with AdamW, each image seen once. Its accuracy is context, not a like-for-like race. Of driftfit's "
           f"median {results['head']['ours']['median_seconds']} s, {results['head']['ours']['feature_seconds']} s "
           f"went to the network's forward pass (training and validation images) and "
           f"{results['head']['ours']['lbfgs_seconds']} s to L-BFGS over C in {results['head']['ours']['c_grid']}.",
           "- The .json beside this file has every figure."]
    write_text(Path(args.out) / f"{stem}.md", "\n".join(md) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
