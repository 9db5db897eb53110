"""Image decision benchmark: is the strategy the image selector picks as good as the best one, found by training all?

    python -m bench.image_decision --scenarios bench/scenarios-image.yaml --out bench/results/image-decision [--only NAME]

The image twin of bench/decision.py, judged the same way (bench/stats.py: ties by a paired bootstrap over the
test rows, regret, the cheapest tied strategy, the headline against every fixed policy) and saved in the same
format (scenarios/<name>.json, decision.json, decision.md: bench.decision.combine and render_md). Per scenario,
through driftfit's own image parts:
  1. the scenario's images (packaged data, no network) are written as PNGs into a scratch folder: animal-mnist
     silhouettes (28 x 28, white on black; exact and near-copies left out, driftfit.modalities.image.data) or scikit-
     learn's digits (8 x 8), optionally rotated, inverted or noised;
  2. with a reference, the champion "in production": a `head` on the reference's train split (set-up, not
     cost), which keeps a validation and a test split of its own, as the pipeline's memory does;
  3. the selector, timed: driftfit.modalities.image.measures.measure_image_shift (champion scored on the incoming rows and
     on its own test split) and driftfit.policy.rules.in_modality;
  4. the oracle: every image strategy (driftfit.strategies.names_for("image"); skip only with a champion)
     trained by driftfit.modalities.image.recipe.train_image_model on the incoming train split (early stopping on its
     validation split) with `seeds` training seeds each, and scored on the test split.
As in the text benchmark, training sees the new batch only (no replay of the reference) and no augmentation.

A finished scenario is saved at once; a run skips scenarios already saved for the same definition, budget and
seeds (so a killed run resumes where it stopped), and `--only NAME` (repeatable) reruns the named ones.

Scenario file:

    budget: {image_size: 32, epochs: 3, batch_size: 32}   # every strategy and seed; max_steps: N caps steps (tests)
    seeds: 3                                # training seeds per strategy (train.seed, train.seed + 1, ...)
    strategies: [head, partial, lora, full, scratch]   # optional: the oracle's strategies (default: all image ones)
    scenarios:
      - name: animals-rot180
        family: animals-rotated             # required: the scenarios telling one data story
        shift: near_domain                  # optional: same_domain | near_domain | far_domain | new_task
        note: what it tests
        reference: {dataset: animals, slice: [0.2, 0.25], per_class: 40}          # or left out: no champion
        train: {dataset: animals, slice: [0.25, 0.35], per_class: 60, transform: rotate180}
        test: {dataset: animals, slice: [0, 0.1], per_class: 40, transform: rotate180}  # or test_fraction: 0.3
        train_per_class: 8                  # optional: keep this many training images per class (few-shot)

An image source: `dataset` animals | digits; `slice: [lo, hi]` keeps the images whose pixels hash (blake2b)
into [lo, hi) of [0, 1), so slices that do not overlap share no image; `labels` keeps those classes (animal
names, or digits as quoted strings '0'..'9'); `per_class` draws that many of each class (seeded); `transform`
none | rotate90 | rotate180 | invert | noise (Gaussian, `noise_std` grey levels of 255, seeded per image).
The incoming images are split 85/15 into train and validation (with train_per_class, validation keeps
max(2, train_per_class // 2) per class); a reference 70/15/15 into the champion's train, validation and test.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from bench import stats
from bench.decision import (FORMAT, Scenario, ScenarioFile, cap_per_class, check_slice, combine, render_md,
                            strategy_record, with_seed)
from driftfit.config import Params, StrictModel, load_params, read_yaml_model
from driftfit.errors import ConfigError
from driftfit.io import write_json, write_text
from driftfit.strategies import names_for

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
IMAGE_STRATEGIES = names_for("image")
DATASETS = ("animals", "digits")
TRANSFORMS = ("none", "rotate90", "rotate180", "invert", "noise")
NEAR_COPY_BITS = 4  # animal-mnist: perceptual hashes this close are the same picture (examples/image's max_distance)


# ---- the scenario file ----------------------------------------------------------------------

class ImageBudget(StrictModel):
    image_size: int = Field(32, ge=32, le=1024)  # pixels per side the network sees: smaller is faster, coarser
    epochs: float = Field(3, gt=0)               # passes over the training images (early stopping may end sooner)
    max_steps: int = Field(-1, ge=-1)            # > 0: at most this many optimizer steps (tests); -1: epochs decide
    batch_size: int = Field(32, gt=0)


class ImageSource(StrictModel):
    dataset: Literal[DATASETS]  # type: ignore[valid-type]
    slice: tuple[float, float] = (0.0, 1.0)
    labels: list[str] | None = None
    per_class: int | None = Field(None, gt=0)
    transform: Literal[TRANSFORMS] = "none"  # type: ignore[valid-type]
    noise_std: float = Field(48.0, gt=0, le=255)

    @model_validator(mode="after")
    def _check(self) -> "ImageSource":
        check_slice(self.slice)
        known = dataset_classes(self.dataset)
        if self.labels is not None and (len(self.labels) < 2 or set(self.labels) - set(known)):
            raise ValueError(f"labels must name at least two classes of {self.dataset} ({', '.join(known)}), "
                             f"got {self.labels}")
        return self


class ImageScenario(Scenario):  # the text scenario's keys, with image sources
    reference: ImageSource | None = None
    train: ImageSource
    test: ImageSource | None = None


class ImageScenarioFile(ScenarioFile):  # the text file's keys and checks, with an image budget and strategies
    budget: ImageBudget = ImageBudget()
    strategies: list[Literal[IMAGE_STRATEGIES]] | None = None  # type: ignore[valid-type]
    scenarios: list[ImageScenario] = Field(..., min_length=1)


def load_scenarios(path: str | Path) -> ImageScenarioFile:
    return read_yaml_model(ImageScenarioFile, path, "image scenario file", f"{Path(__file__).name}'s docstring")


# ---- the images -----------------------------------------------------------------------------

def dataset_classes(name: str) -> tuple[str, ...]:
    from driftfit.modalities.image.data import ANIMAL_CLASSES

    return ANIMAL_CLASSES if name == "animals" else tuple(str(d) for d in range(10))


@functools.lru_cache(maxsize=2)
def dataset(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images N x H x W uint8, class names, each image's position in [0, 1)) of a packaged dataset, repeats
    left out: pixel-identical images, and for animal-mnist near-copies too (else a slice could split a pair)."""
    from driftfit.modalities.image.data import distinct_images, read_animal_mnist, read_digits

    if name == "animals":
        images, labels = read_animal_mnist()
        keep = distinct_images(images, NEAR_COPY_BITS)
    else:
        images, labels, _ = read_digits()
        keep = distinct_images(images)
    images, labels = images[keep], np.array(dataset_classes(name))[labels[keep]]
    position = np.array([int.from_bytes(hashlib.blake2b(x.tobytes(), digest_size=8).digest(), "big") / 2.0 ** 64
                         for x in images])
    return images, labels, position


def select(src: ImageSource, seed: int) -> np.ndarray:
    """Indices (into dataset(src.dataset)) of the source's images: sliced, classes kept, per_class drawn."""
    from driftfit.modalities.image.data import stratified_sample

    _, labels, position = dataset(src.dataset)
    among = np.flatnonzero((position >= src.slice[0]) & (position < src.slice[1]))
    if src.labels is not None:
        among = among[np.isin(labels[among], src.labels)]
    if src.per_class is not None:
        among = stratified_sample(labels, src.per_class, seed, among=among)
    return np.sort(among)


def transformed(src: ImageSource, index: int) -> np.ndarray:
    """One image of the source, as the scenario shows it."""
    image = dataset(src.dataset)[0][index]
    if src.transform == "rotate90":
        return np.rot90(image).copy()
    if src.transform == "rotate180":
        return np.rot90(image, 2).copy()
    if src.transform == "invert":
        return 255 - image
    if src.transform == "noise":  # seeded by the image, so every run and split sees the same noisy picture
        noise = np.random.default_rng(index).normal(0, src.noise_std, image.shape)
        return np.clip(image + noise, 0, 255).round().astype(np.uint8)
    return image


def write_images(src: ImageSource, indices: np.ndarray, folder: Path) -> pd.DataFrame:
    """The images as PNGs in folder/<label>/<index>.png; their table (path, label, index)."""
    from PIL import Image

    labels = dataset(src.dataset)[1]
    rows = []
    for i in indices:
        path = folder / labels[i] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(transformed(src, int(i))).save(path)
        rows.append((str(path), str(labels[i]), int(i)))
    return pd.DataFrame(rows, columns=["path", "label", "index"])


def scenario_indices(sc: ImageScenario, seed: int) -> dict[str, np.ndarray | None]:
    """Which images each part uses: incoming (train + validation), test (None: a part of incoming), reference.
    A ConfigError when the test or the reference shares an image with the incoming batch."""
    incoming, test = select(sc.train, seed), None if sc.test is None else select(sc.test, seed)
    reference = None if sc.reference is None else select(sc.reference, seed)
    for name, other, src in (("test", test, sc.test), ("reference", reference, sc.reference)):
        if other is not None and src.dataset == sc.train.dataset and np.intersect1d(other, incoming).size:
            raise ConfigError(f"scenario '{sc.name}': its {name} and train sources share "
                              f"{np.intersect1d(other, incoming).size} images; give them slices that do not overlap")
    if test is not None and reference is not None and sc.test.dataset == sc.reference.dataset \
            and np.intersect1d(test, reference).size:
        raise ConfigError(f"scenario '{sc.name}': its test and reference sources share images; give them slices "
                          "that do not overlap")
    return {"incoming": incoming, "test": test, "reference": reference}


def scenario_data(sc: ImageScenario, seed: int, folder: Path) -> dict[str, pd.DataFrame | None]:
    """train, val, test, and the champion's reference_train, reference_val, reference_test (path, label) tables,
    their images written under `folder`; `seed` draws the samples and splits (not the training seeds)."""
    from driftfit.data.splits import stratified_split

    idx = scenario_indices(sc, seed)
    incoming = write_images(sc.train, idx["incoming"], folder / "incoming")
    if idx["test"] is not None:
        test = write_images(sc.test, idx["test"], folder / "test")
    else:
        parts = stratified_split(incoming, {"test": sc.test_fraction}, seed)
        incoming, test = parts["train"], parts["test"]
    parts = stratified_split(incoming, {"val": 0.15}, seed)
    train, val = cap_per_class(parts["train"], None, sc.train_per_class, seed), parts["val"]
    if sc.train_per_class is not None:  # few-shot: the validation split is as small as the data
        val = cap_per_class(val, None, max(2, sc.train_per_class // 2), seed)
    out = {"train": train, "val": val, "test": test, "reference_train": None, "reference_val": None,
           "reference_test": None}
    if idx["reference"] is not None:
        ref = stratified_split(write_images(sc.reference, idx["reference"], folder / "reference"),
                               {"val": 0.15, "test": 0.15}, seed)
        out.update(reference_train=ref["train"], reference_val=ref["val"], reference_test=ref["test"])
    for name in ("train", "test"):
        if len(out[name]) == 0 or out[name]["label"].nunique() < 2:
            raise ConfigError(f"scenario '{sc.name}': its {name} images ({len(out[name])}) need at least two "
                              "classes; widen the slice or the labels")
    return out


# ---- one scenario ---------------------------------------------------------------------------

def _predict(model_dir: Path, test: pd.DataFrame, params: Params) -> list[str]:
    from driftfit.modalities.image.data import load_pixels
    from driftfit.modalities.image.model import load_image_classifier, predict_proba

    model, labels, size = load_image_classifier(model_dir, params.model.trust_remote_code)
    probs = predict_proba(model, load_pixels(list(test["path"]), size, params.image.max_pixels),
                          params.evaluate.batch_size)
    return [labels[i] for i in probs.argmax(1)]


def _rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def run_scenario(sc: ImageScenario, spec: ImageScenarioFile, base: Params, work: Path) -> dict:
    from driftfit.modalities.image.model import load_image_classifier
    from driftfit.modalities.image.measures import measure_image_shift
    from driftfit.policy.rules import in_modality, select_strategy
    from driftfit.modalities.image.recipe import train_image_model
    from driftfit.strategies import spec as strategy_spec

    load_before = os.getloadavg()
    seed = base.train.seed
    data = scenario_data(sc, seed, work / "images")
    train, val, test = data["train"], data["val"], data["test"]
    reference = data["reference_train"]
    labels = sorted(set(train["label"]) | set(test["label"]) | set([] if reference is None else reference["label"]))
    if len(labels) > len(stats.ALPHABET):
        raise ConfigError(f"scenario '{sc.name}': {len(labels)} labels; predictions are saved one character per "
                          f"row, at most {len(stats.ALPHABET)}")
    log.info("scenario %s: %d train, %d val, %d test images, reference %s", sc.name, len(train), len(val), len(test),
             "none" if reference is None else len(reference))

    champion_dir = None
    if reference is not None:  # the model "in production": a head on the reference (set-up, not cost)
        champion_dir = work / "champion"
        champion_dir.mkdir()
        train_image_model(reference, data["reference_val"], "head", base, champion_dir)

    start = time.perf_counter()
    champion = load_image_classifier(champion_dir, base.model.trust_remote_code) if champion_dir else None
    report = measure_image_shift(reference, train, val, base, champion, data["reference_test"])
    decision = in_modality(select_strategy(report, base.strategy, champion is not None), "image")
    selector_seconds = time.perf_counter() - start
    log.info("scenario %s: the selector chose %s (rule %s) in %.1f s", sc.name, decision["strategy"],
             decision["rule"], selector_seconds)

    names = list(spec.strategies or IMAGE_STRATEGIES)
    if champion_dir is None:
        names = [n for n in names if strategy_spec(n).makes_model]  # skip: nothing to keep
    if decision["strategy"] not in names:
        names.append(decision["strategy"])
    seeds = [seed + k for k in range(spec.seeds)]
    truth = list(test["label"])
    oracle: dict[str, dict] = {}
    for name in names:
        entry = strategy_spec(name)
        runs = []
        for s in seeds if entry.trains else seeds[:1]:  # nothing trains: the same model for every seed
            params = with_seed(base, s)
            t = time.perf_counter()
            model_dir = work / f"{name}-{s}" if entry.makes_model else champion_dir
            if entry.makes_model:
                model_dir.mkdir()
                train_image_model(train, val, name, params, model_dir)
            seconds = time.perf_counter() - t if entry.makes_model else 0.0
            runs.append((_predict(model_dir, test, params), seconds))
            if model_dir != champion_dir:
                shutil.rmtree(model_dir, ignore_errors=True)
        oracle[name] = strategy_record(runs * (len(seeds) if not entry.trains else 1), truth, labels,
                                       deterministic=not entry.trains)
        log.info("scenario %s: %s -> accuracy %s, %s s", sc.name, name, oracle[name]["accuracy"]["mean"],
                 oracle[name]["seconds"]["mean"])

    embedding, champ = report.get("embedding") or {}, report.get("champion") or {}
    return {
        "format": FORMAT, "modality": "image", "name": sc.name, "family": sc.family, "shift_kind": sc.shift,
        "note": sc.note, "definition": definition_hash(sc, spec),
        "rows": {"train": len(train), "val": len(val), "test": len(test),
                 "reference": None if reference is None else len(reference),
                 "classes": int(train["label"].nunique())},
        "seeds": seeds,
        "choice": decision["strategy"], "runner_up": decision["runner_up"], "rule": decision["rule"],
        "rules_choice": decision.get("rules_choice"),  # the rules' text-only pick, where its stand-in trained
        "measures": decision["measures"], "reason": decision["reason"],
        "selector_seconds": round(selector_seconds, 2),
        "shift": {"mmd2": _rounded(embedding.get("mmd2"), 6), "p_value": _rounded(embedding.get("p_value")),
                  "domain_classifier_auc": _rounded((embedding.get("domain_classifier") or {}).get("auc")),
                  "probe_accuracy": _rounded(report["probe"].get("accuracy")),
                  "new_labels": report["label_shift"].get("new_labels"),
                  "champion_incoming_accuracy": _rounded(champ.get("incoming_accuracy")),
                  "champion_own_test_accuracy": _rounded(champ.get("own_test_accuracy")),
                  "seconds": round(report["seconds"], 2)},
        "load_average": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],  # 1-min, at start and end
        "labels": labels,
        "test_labels": stats.encode(truth, labels),
        "strategies": oracle,
    }


# ---- the whole benchmark --------------------------------------------------------------------

def definition_hash(sc: ImageScenario, spec: ImageScenarioFile) -> str:
    """What a saved result was run for: the scenario, the budget, the seeds and the oracle's strategies."""
    what = {"scenario": sc.model_dump(mode="json"), "budget": spec.budget.model_dump(mode="json"),
            "seeds": spec.seeds, "strategies": spec.strategies}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def base_params(spec: ImageScenarioFile, params_path: str | Path) -> Params:
    b = spec.budget
    return load_params(params_path, {
        "image.size": b.image_size, "train.epochs": b.epochs, "train.batch_size": b.batch_size,
        "train.max_steps": b.max_steps, "train.replay_fraction": 0.0, "strategy.force": None,
        "strategy.mode": "rules", "image.weights_cache": str(ROOT / "models" / "pretrained" / "efficientnet_lite0")})


def is_saved(sc: ImageScenario, spec: ImageScenarioFile, out_dir: Path) -> bool:
    path = out_dir / "scenarios" / f"{sc.name}.json"
    return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("definition") == definition_hash(sc, spec)


def image_notes(out_dir: Path) -> str:
    """The image-specific lines under decision.md: the data, and how loaded the shared machine was."""
    out = json.loads((out_dir / "decision.json").read_text(encoding="utf-8"))
    lines = ["", "## Images", "",
             "Data: animal-mnist silhouettes (28 x 28, white on black, near-copies left out) and scikit-learn's "
             "digits (8 x 8), both packaged, written as PNGs and fed to EfficientNet-Lite0 (ImageNet) at "
             f"{out['budget']['image_size']} x {out['budget']['image_size']} pixels; the champion is a head on the "
             "reference. Training sees the new batch only (no replay, no augmentation). Strategies are trained one "
             "after the other in one process; seconds are wall-clock on a machine shared with other benchmarks, so "
             "they are slower than idle and vary with its load (1-minute load average on 2 cores below).", "",
             "| scenario | rules' own pick | MMD² (p) | probe accuracy | champion on incoming / own test "
             "| load average (start, end) |", "|---|---|---|---|---|---|"]
    for r in out["results"]:
        s = r["shift"]
        mmd = "" if s["mmd2"] is None else f"{s['mmd2']:.4f} ({s['p_value']:.3f})"
        champ = ("" if s["champion_incoming_accuracy"] is None
                 else f"{s['champion_incoming_accuracy']:.3f} / {s['champion_own_test_accuracy']:.3f}")
        lines.append(f"| {r['name']} | {r.get('rules_choice') or r['choice']} | {mmd} | {s['probe_accuracy']} | "
                     f"{champ} | {r['load_average'][0]}, {r['load_average'][1]} |")
    return "\n".join(lines) + "\n"


def run(scenarios_path: str | Path, out_dir: str | Path, params_path: str | Path = ROOT / "examples/image/params.yaml",
        only: list[str] | None = None, command: str | None = None) -> dict:
    """Run the file's scenarios not yet saved for their current definition (or rerun `only`); each finished
    scenario is saved at once under out_dir/scenarios/, and decision.json/.md are rebuilt from every saved one."""
    import platform

    import torch

    spec = load_scenarios(scenarios_path)
    base = base_params(spec, params_path)
    out_dir = Path(out_dir)
    if only:
        chosen = [s for s in spec.scenarios if s.name in only]
        if len(chosen) != len(set(only)):
            raise ConfigError(f"unknown scenario(s) {sorted(set(only) - {s.name for s in chosen})}; "
                              f"the file has {[s.name for s in spec.scenarios]}")
    else:
        chosen = [s for s in spec.scenarios if not is_saved(s, spec, out_dir)]
    for sc in spec.scenarios:
        scenario_indices(sc, base.train.seed)  # every slice checked before any training
    machine = f"{platform.node() or 'host'}: CPU ({torch.get_num_threads()} threads), torch {torch.__version__}"
    for sc in chosen:
        with tempfile.TemporaryDirectory(prefix=f"driftfit-image-bench-{sc.name}-") as work:
            result = run_scenario(sc, spec, base, Path(work))
        result.update(machine=machine, finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                      command=command or f"python -m bench.image_decision --scenarios {scenarios_path} --out {out_dir}")
        write_json(out_dir / "scenarios" / f"{sc.name}.json", result)
    summary = combine(spec, base, out_dir, str(scenarios_path))
    md = out_dir / "decision.md"
    write_text(md, md.read_text(encoding="utf-8").replace("# Decision benchmark:", "# Image decision benchmark:", 1)
               + image_notes(out_dir))
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from driftfit.errors import DriftfitError

    ap = argparse.ArgumentParser(prog="python -m bench.image_decision", description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="bench/scenarios-image.yaml", help="image scenario YAML file")
    ap.add_argument("--out", default="bench/results/image-decision", help="folder for decision.json and decision.md")
    ap.add_argument("--params", default=str(ROOT / "examples" / "image" / "params.yaml"),
                    help="base image params (model, shift, strategy thresholds, learning rates)")
    ap.add_argument("--only", action="append", default=None, metavar="NAME", help="(re)run only this scenario")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch and BLAS (default: torch's); "
                    "1 when other jobs share the cores: torch's threads spin-wait, and two processes with 2 "
                    "threads each on 2 cores trained 7x slower here than with 1")
    args = ap.parse_args(argv)
    if args.threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        print(json.dumps(run(args.scenarios, args.out, args.params, args.only,
                             command=" ".join(["python -m bench.image_decision", *(argv or sys.argv[1:])]))))
    except DriftfitError as err:
        print(f"bench image decision: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
