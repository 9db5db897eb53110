"""Registries of real trained champions for the serving tests (tests/test_serving_*.py).

A text project: the shrunk default data (tests/conftest.py), prepared and augmented by the real steps; each version
is a real `head` trained by driftfit.train on the packaged MiniLM. v1 goes through the real evaluate and promote
steps; later versions are heads with another regularisation (so their probabilities differ), added and pointed at
with the registry's own functions, as promote adds them. v1 serves at the end.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np

from driftfit.pipeline import runner
from driftfit.modalities.text import augment
from driftfit.modalities.text import evaluate
from driftfit.data import splits as prepare
from driftfit.steps import promote
from driftfit.state import registry
from driftfit.modalities.text import recipe as train
from driftfit.config import Params, load_params
from driftfit.io import read_json, write_json
from driftfit.data.splits import read_split
from tests.conftest import write_params

# Two heads of the same features that disagree: weak and strong regularisation (scikit-learn's C).
HEADS = ({"train.head_c_grid": [100.0]}, {"train.head_c_grid": [0.01]})
BASE = {"promote.beat_baseline": False}  # the gate has its own tests; these need a champion whatever it scores


def text_project(folder: Path, default_data: Path, heads: tuple[dict, ...] = HEADS,
                 overrides: dict | None = None) -> Params:
    """A project in `folder` whose registry holds one trained head per entry of `heads` (v1, v2, ...); v1 serves."""
    shutil.copytree(default_data, folder / "data" / "default")
    base = {**BASE, **(overrides or {})}
    params = load_params(write_params(folder, base))
    runner("prepare")(params)
    runner("augment")(params)
    write_json(params.paths.decision, {"strategy": "head", "reason": "the serving tests' champion"})
    for i, head in enumerate(heads):
        step_params = load_params(write_params(folder, {**base, **head}))
        runner("train")(step_params)
        if i == 0:  # the real gate and registry write v1
            runner("evaluate")(step_params)
            verdict = runner("promote")(step_params)
            assert verdict["promoted"] and verdict["version"] == "v1", verdict
        else:
            add_version(step_params, f"v{i + 1}")
    params = load_params(write_params(folder, base))
    if registry.champion_info(params.paths.registry)["version"] != "v1":
        registry.set_champion(params.paths.registry, "v1", action="rollback", reason="the tests start from v1")
    return params


def shared_text_project(tmp_path_factory, default_data: Path, name: str) -> Params:
    """text_project's registry (HEADS), built once per test process and copied for each module that asks, so each
    module may change its own copy (promote, roll back, damage a version) and the builds are not repeated."""
    built = tmp_path_factory.getbasetemp() / "serving-text-project"
    if not (built / ".complete").is_file():
        shutil.rmtree(built, ignore_errors=True)
        built.mkdir()
        text_project(built, default_data)
        (built / ".complete").touch()
    copy = tmp_path_factory.mktemp(name)
    shutil.copytree(built, copy, dirs_exist_ok=True)
    return load_params(copy / "params.yaml")


def add_version(params: Params, version: str) -> Path:
    """The candidate as `version`, recorded as promote records it (digest, params, its test macro-F1), and made
    champion."""
    import torch
    from sklearn.metrics import f1_score

    from driftfit.modalities.text.model import load_classifier, predict_proba

    root = params.paths.registry
    candidate = Path(params.paths.candidate)
    model, tokenizer, labels = load_classifier(candidate)
    test = read_split(params.paths.prepared, "test", required=True)
    probs = predict_proba(model, tokenizer, list(test["text"]), params.model.max_seq_len, 32, torch.device("cpu"))
    macro_f1 = float(f1_score(test["label"], np.array(labels)[probs.argmax(1)], average="macro"))
    serving = registry.champion_info(root)
    record = {"version": version, "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "strategy": read_json(candidate / "train_log.json")["strategy"], "reason": "added by the serving tests",
              "checks": [], "previous": serving and serving["version"], "model_sha256": registry.model_digest(candidate),
              "params": params.portable_dump(), "metrics": {"candidate": {"test": {"macro_f1": macro_f1}}}}
    folder = registry.add_version(root, version, candidate, record, f"# Model card: {version}\n")
    registry.set_champion(root, version, action="promote", reason="added by the serving tests")
    return folder


def offline(params: Params, version: str, texts: list[str]) -> np.ndarray:
    """The version's probabilities, computed in this process by the Python API (what the endpoint must match)."""
    from driftfit.serving import load

    return load(params.paths.registry, version, device="cpu").predict_proba(texts)


def clear_margin(probs: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    """Rows whose top label leads the runner-up by more than `margin`: there the predicted label is not a float
    accident, and two computations of the same model must agree on it."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) > margin


def image_project(folder: Path, weights_cache: str) -> Params:
    """A shrunk image project (tests/test_image_pipeline.py's shrink of examples/image) whose registry holds one
    real head on EfficientNet-Lite0, promoted by the real steps: v1."""
    from driftfit.pipeline import runner
    from tests.test_image_pipeline import write_image_params

    params = load_params(write_image_params(folder, {"image.weights_cache": weights_cache}))
    for name in ("default-data", "prepare", "validate", "remember", "augment"):
        runner(name)(params)
    write_json(params.paths.decision, {"strategy": "head", "reason": "the serving tests' champion"})
    for name in ("train", "evaluate"):
        runner(name)(params)
    verdict = runner("promote")(params)
    assert verdict["promoted"] and verdict["version"] == "v1", verdict
    return params
