"""An image champion in use: the Python API on paths and pictures, `driftfit predict` on a folder and on a manifest,
the ONNX export against torch on the version's test images, and the endpoint's image requests.

The champion is a real head on the packaged EfficientNet-Lite0, trained and promoted by the real steps on the
shrunk silhouette example (tests/serving_registry.py). Tolerances as for texts: 1e-4 between ONNX and torch,
1e-5 between two torch computations; labels compared where the top label leads by more than 1e-3.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from driftfit.errors import DataError
from driftfit.modalities.image.sources import restored
from driftfit.data.splits import read_split
from driftfit.serving import load
from driftfit.serving import predict
from driftfit.serving.export import run as export_version
from driftfit.serving.onnx_runner import OnnxClassifier
from tests.serving_registry import clear_margin, image_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from driftfit.modalities.image.model import convert_to_safetensors, packaged_weights_file

    cache = tmp_path_factory.mktemp("pretrained") / "efficientnet_lite0"
    convert_to_safetensors(packaged_weights_file(), cache)
    return image_project(tmp_path_factory.mktemp("serving-image"), str(cache))


@pytest.fixture(scope="module")
def test_images(project) -> list[str]:
    return list(restored(project, read_split(project.paths.prepared, "test", required=True))["path"])


def card_labels(project) -> list[str]:
    card = (Path(project.paths.registry) / "v1" / "MODEL_CARD.md").read_text(encoding="utf-8").splitlines()
    return card[card.index("## Labels") + 1].split(", ")


def test_python_api_scores_paths_and_pictures(project, test_images):
    champion = load(project.paths.registry, device="cpu")
    assert champion.modality == "image" and champion.labels == card_labels(project)
    from_paths = champion.predict_proba(test_images)
    pictures = [np.asarray(Image.open(p).convert("RGB")) for p in test_images]
    assert np.allclose(champion.predict_proba(pictures), from_paths, atol=1e-5)
    rows = champion.predict(test_images[:3])
    assert [r["label"] for r in rows] == [champion.labels[k] for k in from_paths[:3].argmax(1)]


def test_predict_a_folder_and_a_manifest(project, test_images, tmp_path):
    root = Path(project.paths.registry).parents[1]
    champion = load(project.paths.registry, device="cpu")
    folder = root / "data" / "default" / "animals" / "bear"
    result = predict.run(project, folder, tmp_path / "bears.csv", progress=False)
    scored = pd.read_csv(tmp_path / "bears.csv")
    files = sorted(folder.glob("*.png"))
    assert result["rows"] == len(files) == len(scored) and scored["path"].tolist() == [f.name for f in files]
    assert np.allclose(scored["predicted_probability"], champion.predict_proba(files).max(1), atol=1e-5)

    manifest = root / "data" / "traffic.csv"  # paths relative to the manifest's folder, other columns kept
    rel = [Path(p).relative_to(root / "data").as_posix() for p in test_images]
    pd.DataFrame({"path": rel, "camera": "c1"}).to_csv(manifest, index=False)
    predict.run(project, manifest, tmp_path / "scored.jsonl", all_probabilities=True, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    probs = champion.predict_proba(test_images)
    assert [r["camera"] for r in rows] == ["c1"] * len(test_images)
    assert np.allclose([[r[f"p_{label}"] for label in champion.labels] for r in rows], probs, atol=1e-5)


def test_a_bad_image_stops_scoring_naming_the_file(project, test_images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(Path(test_images[0]).read_bytes()[:60])  # a truncated PNG
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": [test_images[0], str(broken)]}).to_csv(manifest, index=False)
    with pytest.raises(DataError, match=r"broken\.png'.*(truncated|does not)"):
        predict.run(project, manifest, tmp_path / "out.csv", progress=False)
    pd.DataFrame({"path": [test_images[0], "missing.png"]}).to_csv(manifest, index=False)
    with pytest.raises(DataError, match=r"manifest\.csv', line 3, column 'path': 'missing\.png' is not a file"):
        predict.run(project, manifest, tmp_path / "out.csv", progress=False)
    assert not (tmp_path / "out.csv").exists()


def test_image_export_matches_torch_and_keeps_the_label_order(project, test_images):
    result = export_version(project)
    folder = Path(result["folder"])
    torch_probs = load(project.paths.registry, device="cpu").predict_proba(test_images)
    onnx_probs = OnnxClassifier(folder).predict_proba(test_images)
    assert np.abs(onnx_probs - torch_probs).max() <= 1e-4
    sure = clear_margin(torch_probs)
    assert (onnx_probs.argmax(1) == torch_probs.argmax(1))[sure].all()
    assert OnnxClassifier(folder).labels == card_labels(project)
    int8 = load(project.paths.registry, backend="onnx_int8").predict_proba(test_images)
    assert int8.shape == torch_probs.shape and np.allclose(int8.sum(1), 1, atol=1e-4)


def test_the_endpoint_reads_base64_images(project, test_images):
    from fastapi.testclient import TestClient

    from driftfit.serving.app import build

    app, _ = build(project)
    encoded = [base64.b64encode(Path(p).read_bytes()).decode() for p in test_images[:4]]
    expected = load(project.paths.registry, device="cpu").predict_proba(test_images[:4])
    with TestClient(app) as client:
        body = client.post("/predict", json={"images": encoded}).json()
        assert body["version"] == "v1"
        assert np.allclose([p["probability"] for p in body["predictions"]], expected.max(1), atol=1e-5)
        bad = client.post("/predict", json={"images": ["not base64!"]})
        assert bad.status_code == 422 and "images[0] is not base64" in bad.json()["error"]
        junk = client.post("/predict", json={"images": [base64.b64encode(b"GIF89a" + b"\0" * 20).decode()]})
        assert junk.status_code == 422 and "images[0] does not decode as an image" in junk.json()["error"]
        texts = client.post("/predict", json={"texts": ["a bear"]})
        assert texts.status_code == 422 and "this champion reads images, not texts" in texts.json()["error"]
