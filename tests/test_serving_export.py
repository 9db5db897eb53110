"""The ONNX export (`driftfit export`): the same probabilities as torch on the version's own test split, the
card's label order, int8 beside it, files checked before use, and a runner that works with torch, transformers
and driftfit unimportable.

Tolerance: ONNX fp32 against torch fp32, every probability within 1e-4 (the export refuses beyond
export.tolerance, 1e-4; measured differences are about 1e-6: the same maths, other kernels). Labels are compared
where the top label leads by more than 1e-3, so a float tie cannot decide a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from driftfit.pipeline import runner
from driftfit import cli
from driftfit.errors import DriftfitError
from driftfit.data.splits import read_split
from driftfit.serving import load
from driftfit.serving.export import INT8_FILE, MODEL_FILE, export_model, run as export_version
from driftfit.serving.onnx_runner import ExportError, OnnxClassifier
from tests.serving_registry import clear_margin, shared_text_project

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def project(tmp_path_factory, default_data_dir):
    return shared_text_project(tmp_path_factory, default_data_dir, "serving-export")


@pytest.fixture(scope="module")
def exported(project) -> Path:
    """v1 exported by the CLI, as a user would."""
    params_file = Path(project.paths.registry).parents[1] / "params.yaml"
    assert cli.main(["export", "--params", str(params_file)]) == 0
    return Path(project.absolute(project.export.dir)) / "v1"


@pytest.fixture(scope="module")
def test_texts(project) -> list[str]:
    return list(read_split(project.paths.prepared, "test", required=True)["text"])


def card_labels(project, version: str) -> list[str]:
    card = (Path(project.paths.registry) / version / "MODEL_CARD.md").read_text(encoding="utf-8").splitlines()
    return card[card.index("## Labels") + 1].split(", ")


def test_onnx_matches_torch_on_the_versions_test_split(project, exported, test_texts):
    torch_probs = load(project.paths.registry, device="cpu").predict_proba(test_texts)
    onnx_probs = OnnxClassifier(exported).predict_proba(test_texts)
    assert onnx_probs.shape == torch_probs.shape == (len(test_texts), len(card_labels(project, "v1")))
    assert np.abs(onnx_probs - torch_probs).max() <= TOLERANCE
    sure = clear_margin(torch_probs)
    assert sure.sum() > len(test_texts) // 2
    assert (onnx_probs.argmax(1) == torch_probs.argmax(1))[sure].all()
    meta = json.loads((exported / "export.json").read_text())
    assert meta["check"]["fp32_max_abs_diff"] <= project.export.tolerance and meta["version"] == "v1"
    assert meta["fused"].get("attention") == 6  # export.fuse: each of MiniLM's six attention blocks is one operator
    # the same through the Python API's ONNX backends
    assert np.allclose(load(project.paths.registry, backend="onnx").predict_proba(test_texts), onnx_probs, atol=1e-6)
    int8 = load(project.paths.registry, backend="onnx_int8").predict_proba(test_texts)
    assert int8.shape == torch_probs.shape and np.allclose(int8.sum(1), 1, atol=1e-4) and (int8 >= 0).all()


def test_label_order_is_the_cards_in_every_file(project, exported):
    labels = card_labels(project, "v1")
    assert json.loads((Path(project.paths.registry) / "v1" / "labels.json").read_text()) == labels
    assert json.loads((exported / "export.json").read_text())["labels"] == labels
    for name in (MODEL_FILE, INT8_FILE):
        props = {p.key: p.value for p in onnx.load(str(exported / name), load_external_data=False).metadata_props}
        assert json.loads(props["labels"]) == labels and props["version"] == "v1", name
    assert OnnxClassifier(exported).labels == labels
    assert not [p for p in exported.rglob("*") if p.suffix in (".pkl", ".pt", ".pth", ".bin", ".pickle")]


def test_the_export_runs_without_torch_transformers_or_driftfit(project, exported, test_texts):
    texts = test_texts[:6]
    blocker = (
        "import runpy, sys, json\n"
        "BLOCKED = ('torch', 'transformers', 'driftfit', 'peft', 'safetensors')\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('blocked in this test: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.argv = ['predict_onnx.py', {str(exported)!r}, *{texts!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(exported / 'predict_onnx.py')!r}, run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print(json.dumps({'loaded': sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)}))\n")
    done = subprocess.run([sys.executable, "-c", blocker], cwd=exported.parent, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    *rows, tail = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert tail == {"loaded": []}
    probs = load(project.paths.registry, device="cpu").predict_proba(texts)
    champion_labels = card_labels(project, "v1")
    assert [r["input"] for r in rows] == texts
    assert np.allclose([r["probability"] for r in rows], probs.max(1), atol=TOLERANCE)
    sure = clear_margin(probs)
    assert [r["label"] for r, s in zip(rows, sure) if s] == [champion_labels[k] for k, s in
                                                             zip(probs.argmax(1), sure) if s]


def test_changed_files_are_refused(project, exported, tmp_path):
    import shutil

    copy = tmp_path / "v1"
    shutil.copytree(exported, copy)
    with open(copy / INT8_FILE, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(ExportError, match=r"model\.int8\.onnx': its SHA-256 differs from the one recorded at export"):
        OnnxClassifier(copy, int8=True)
    # an export made from other model files is not this version's: the API says how to make one
    meta = json.loads((exported / "export.json").read_text())
    other = tmp_path / "exports"
    shutil.copytree(exported, other / "v1")
    (other / "v1" / "export.json").write_text(json.dumps({**meta, "model_sha256": "0" * 64}))
    with pytest.raises(DriftfitError, match=r"v1 has no ONNX export made from its model files .* run 'driftfit "
                                            r"export --version v1'"):
        load(project.paths.registry, backend="onnx", exports=other)


def test_a_damaged_version_is_not_exported(project, tmp_path):
    import shutil

    from driftfit.config import load_params

    root = Path(project.paths.registry).parents[1]
    folder = tmp_path / "project"
    shutil.copytree(root / "models" / "registry", folder / "models" / "registry")
    shutil.copy(root / "params.yaml", folder / "params.yaml")
    (folder / "data").mkdir()
    encoder = folder / "models" / "registry" / "v1" / "encoder" / "config.json"
    encoder.write_text(encoder.read_text().replace('"hidden_act"', '"hidden_act" ', 1))  # one byte more
    with pytest.raises(DriftfitError, match="v1's model files do not match"):
        export_version(load_params(folder / "params.yaml"))
    assert not (folder / "models" / "exports").exists()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["adapter", "prompt", "prefix"])
def test_adapters_and_peft_prompts_export_into_one_graph(project, test_texts, tmp_path, strategy):
    """Bottleneck adapters (forward hooks) and peft's virtual tokens and prefixes become part of the graph; the
    candidate folder is exported as promotion would export it."""
    from driftfit.modalities.text import recipe as train
    from driftfit.config import load_params
    from driftfit.modalities.text.model import load_classifier, predict_proba
    from driftfit.io import write_json
    from tests.conftest import write_params

    import shutil
    import torch

    root = Path(project.paths.registry).parents[1]
    folder = tmp_path / "project"
    shutil.copytree(root / "data", folder / "data")
    params = load_params(write_params(folder, {"promote.beat_baseline": False}))
    write_json(params.paths.decision, {"strategy": strategy, "reason": "export test"})
    runner("train")(params)
    candidate = Path(params.paths.candidate)
    meta = export_model(candidate, tmp_path / "onnx", max_seq_len=params.model.max_seq_len, quantize=False)
    assert meta["int8_model"] is None and not (tmp_path / "onnx" / INT8_FILE).exists()
    model, tokenizer, labels = load_classifier(candidate)
    torch_probs = predict_proba(model, tokenizer, test_texts, params.model.max_seq_len, 32, torch.device("cpu"))
    onnx_probs = OnnxClassifier(tmp_path / "onnx").predict_proba(test_texts)
    assert np.abs(onnx_probs - torch_probs).max() <= TOLERANCE and meta["labels"] == labels
    kind = json.loads((candidate / "classifier.json").read_text())["kind"]
    assert kind != "plain"  # the graph really carried the extra modules
    # export.fuse: fused where that keeps torch's answers; a prefix's cached keys defeat the attention pattern,
    # so that graph is exported unfused, and export.json says why
    assert bool(meta["fused"]) != ("fusion_refused_max_abs_diff" in meta)
