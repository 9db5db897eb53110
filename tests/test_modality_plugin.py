"""A third modality is one folder: a toy `tabular` modality (rows of numbers, scikit-learn's iris flowers) written
into a temporary package at test time, registered by its own __init__.py, runs the whole pipeline through the same
steps, CLI and registry as text and images, and its champion is loaded and scored by driftfit.serving, without a
line changed anywhere else in driftfit."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import yaml

from driftfit import cli, modalities
from driftfit.state import registry

TOY = '''
"""A toy modality: rows of numeric features (columns f0..fN) and a label; a logistic-regression head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from driftfit.data.hashing import file_hash
from driftfit.measures.shift import data_size, label_shift, linear_probe, mmd_test
from driftfit.modalities import Modality, register_modality
from driftfit.training.head_fit import fit_logistic, head_weights


def _x(rows):
    return rows[[c for c in rows.columns if c.startswith("f")]].to_numpy(dtype=float)


def write_default_data(params, folder):
    from sklearn.datasets import load_iris  # shipped with scikit-learn: nothing is downloaded

    iris = load_iris(as_frame=True)
    table = iris.data.set_axis([f"f{i}" for i in range(4)], axis=1).assign(label=[iris.target_names[t] for t in iris.target])
    table.iloc[0::2].to_csv(Path(folder) / "reference.csv", index=False)
    table.iloc[1::2].to_csv(Path(folder) / "incoming.csv", index=False)
    return {"rows": len(table)}


def load(params, source, path=None):
    rows = pd.read_csv(path or source.path)
    return rows.assign(label=rows["label"].astype(str))


def validate(params, splits, docs_dir, sources=None):
    errors = [f"{n}: {int(df['label'].isna().sum())} rows without a label" for n, df in splits.items()
              if df["label"].isna().any()]
    return {"success": not errors, "errors": errors, "warnings": [], "checks": []}


def measure(params, reference, reference_test, train, val, champion):
    report = {"label_shift": label_shift(None if reference is None else reference["label"], train["label"]),
              "probe": {**linear_probe(_x(train), list(train["label"]), _x(val), list(val["label"])),
                        "train_rows": len(train), "val_rows": len(val)},
              "data_size": data_size(train, val, reference), "seconds": 0.0}
    if reference is not None:
        report["embedding"] = mmd_test(_x(reference), _x(train), params.shift.permutations, params.shift.seed)
    return report


def train(params, train, val, strategy, folder, progress=None, **context):
    labels = sorted(set(train["label"]))
    ids = {l: i for i, l in enumerate(labels)}
    y_val = np.array([ids.get(l, -1) for l in val["label"]])
    clf, record = fit_logistic(_x(train), train["label"].map(ids).to_numpy(), _x(val), y_val, len(labels),
                               params.train.head_c_grid)
    weight, bias = head_weights(clf, len(labels))
    save_file({"weight": weight, "bias": bias}, str(Path(folder) / "head.safetensors"))
    (Path(folder) / "labels.json").write_text(json.dumps(labels))
    return {"strategy": strategy, "labels": labels, "steps": record["iterations"], "seconds": 0.0,
            "device": "cpu", "trainable_params": weight.size + bias.size, "total_params": weight.size + bias.size}


class Scorer:
    def __init__(self, weight, bias, labels, folder):
        self.weight, self.bias, self.labels, self.folder = weight, bias, labels, folder
        self.parameters = weight.size + bias.size

    def predict_proba(self, rows):
        logits = _x(rows) @ self.weight.T + self.bias
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def runtime(self):
        return {"device": "cpu", "torch_threads": 1}

    def latency(self, rows, examples):
        return {}


def classifier(params, folder):
    saved = load_file(str(Path(folder) / "head.safetensors"))
    return Scorer(saved["weight"], saved["bias"], json.loads((Path(folder) / "labels.json").read_text()), Path(folder))


def baseline(params, labels):
    return Scorer(np.zeros((len(labels), 4)), np.zeros(len(labels)), labels, None)


# Serving (driftfit.serving: load, predict, the endpoint) asks this module too: rows are sent as "f0,f1,f2,f3".
REQUEST_KEY, REQUEST_EXAMPLE = "rows", '{"rows": ["5.1,3.5,1.4,0.2"]}'
INPUT_COLUMN, ITEMS_ARE_FILES = "text_column", False
EXAMPLE = ("[[5.1, 3.5, 1.4, 0.2]]", "[{'label': 'setosa', 'probability': 0.97}]")


def check_items(items):
    from driftfit.errors import DriftfitError

    bad = next((i for i, row in enumerate(items) if len(row) != 4), None)
    if bad is not None:
        raise DriftfitError(f"input {bad} has {len(items[bad])} numbers; a flower is 4")


def open_item(item):
    return item


def decode_request_item(data, index, max_pixels):
    return [float(x) for x in data.split(",")]


def saved_scorer(folder, record, device, batch_size, trust_remote_code):
    scorer = classifier(None, folder)
    return scorer.labels, lambda items: scorer.predict_proba(pd.DataFrame(items, columns=[f"f{i}" for i in range(4)]))


register_modality(Modality(
    name="tabular", summary="rows of numbers (a toy)", default_data="iris flowers", shift_measures=("embedding",),
    strategies={"skip": None, "head": None}, stores_files=False,
    check_params=lambda params: None, write_default_data=write_default_data, check_sources=lambda params: None,
    load=load, source_digest=file_hash, stored=lambda params, rows: rows, restored=lambda params, rows: rows,
    validate=validate, augment=lambda params, train, folder: (train.assign(augmented=False, methods=""), {}),
    measure=measure, train=train, classifier=classifier, baseline=baseline,
    describe_input=lambda params, log: ("4 numbers per row", "Rows are four numbers"), serving=__name__,
))
'''


def test_a_toy_modality_in_one_folder_runs_the_whole_pipeline(tmp_path, monkeypatch):
    plugin = tmp_path / "plugins" / "toy_tabular"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(plugin.parent))
    monkeypatch.setattr(modalities, "_REGISTERED", dict(modalities._REGISTERED))  # the toy leaves with the test
    monkeypatch.delitem(sys.modules, "toy_tabular", raising=False)
    assert "tabular" not in modalities.available()
    __import__("toy_tabular")  # its registration, as an installed plug-in's import would run it
    assert "tabular" in modalities.available()

    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["task"] = {"modality": "tabular"}
    params["validate"]["contract"] = None
    params["data"]["roots"] = ["data"]
    params["shift"].update(permutations=20)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["run", "--params", str(project / "params.yaml")]) == 0

    decision = json.loads((project / "reports" / "decision.json").read_text())
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert decision["strategy"] == "head"  # the rules, unchanged, read the toy's shift report
    assert metrics["candidate"]["test"]["macro_f1"] > 0.8  # iris is easy: a real fit, not a stub
    assert registry.champion_info(project / "models" / "registry")["version"] == "v1"
    card = (project / "models" / "registry" / "v1" / "MODEL_CARD.md").read_text()
    assert "4 numbers per row" in card
    assert cli.main(["run", "--params", str(project / "params.yaml"), "--strategy", "lora"]) == 2  # not a toy strategy

    # The champion in use: loaded, scored, asked over the endpoint's request format, all by the toy's own parts.
    from driftfit.serving import load, usage
    from driftfit.serving.app import parse_request

    clf = load(project / "models" / "registry")
    assert clf.modality == "tabular" and clf.version == "v1"
    assert [p["label"] for p in clf.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])] == ["setosa", "virginica"]
    rows, _ = parse_request({"rows": ["5.1,3.5,1.4,0.2"]}, clf.parts, max_items=8, max_chars=100)
    assert clf.predict(rows)[0]["label"] == "setosa"
    assert "[[5.1, 3.5, 1.4, 0.2]]" in usage(modality="tabular")
