"""The image decision benchmark: its scenario file (the suite's promises checked on the real images), errors that
name the key, and a tiny real scenario (three digits, a champion, two strategies, two seeds, one step) through
the CLI, judged by bench/stats.py as the text benchmark's results are."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench import stats
from bench.image_decision import ImageScenario, load_scenarios, main, scenario_indices
from driftfit.errors import ConfigError
from tests.conftest import ROOT

SHIPPED = ROOT / "bench" / "scenarios-image.yaml"


# ---- the shipped scenario file --------------------------------------------------------------

def test_shipped_file_covers_the_issue_and_shares_no_training_image():
    """Silhouettes and digits, rotated, inverted, noised and few-shot, with and without a champion; no two scenarios
    train on the same image (references included), none tests on an image any scenario trains on, and test splits
    have 300 images."""
    spec = load_scenarios(SHIPPED)
    assert len(spec.scenarios) >= 6 and spec.seeds == 3 and len({s.family for s in spec.scenarios}) >= 6
    sources = [src for s in spec.scenarios for src in (s.train, s.reference) if src is not None]
    assert {src.dataset for src in sources} == {"animals", "digits"}
    assert {s.train.transform for s in spec.scenarios} >= {"none", "rotate90", "rotate180", "invert", "noise"}
    assert any(s.reference is None for s in spec.scenarios) and any(s.reference for s in spec.scenarios)
    assert 8 in {s.train_per_class for s in spec.scenarios}
    trained: dict[str, dict[str, set]] = {"animals": {}, "digits": {}}
    tested: dict[str, set] = {"animals": set(), "digits": set()}
    for sc in spec.scenarios:
        idx = scenario_indices(sc, seed=13)  # refuses a test or reference that overlaps the incoming batch
        assert len(idx["test"]) >= 300, sc.name
        trained[sc.train.dataset][sc.name] = set(idx["incoming"])
        if sc.reference is not None:
            trained[sc.reference.dataset][f"{sc.name} (reference)"] = set(idx["reference"])
        tested[sc.test.dataset] |= set(idx["test"])
    for name, parts in trained.items():
        union = set().union(*parts.values())
        assert len(union) == sum(len(p) for p in parts.values()), name  # pairwise disjoint
        assert not union & tested[name], name


@pytest.mark.parametrize("text, match", [
    ("scenarios: []", "scenarios"),
    ("budget: {image_size: 16}\nscenarios: [{name: a, family: f, train: {dataset: digits}}]", "budget.image_size"),
    ("scenarios: [{name: a, family: f, train: {dataset: digits}, colour: red}]", "colour"),
    ("strategies: [lora, ia3]\nscenarios: [{name: a, family: f, train: {dataset: digits}}]", "strategies"),
    ("scenarios: [{name: a, train: {dataset: digits}}]", "scenarios.0.family"),
    ("scenarios: [{name: a, family: f, train: {dataset: cifar}}]", "scenarios.0.train.dataset"),
    ("scenarios: [{name: a, family: f, train: {dataset: digits, slice: [0.5, 0.2]}}]", "slice"),
    ("scenarios: [{name: a, family: f, train: {dataset: animals, labels: [cat, unicorn]}}]", "labels"),
    ("scenarios: [{name: a, family: f, train: {dataset: digits, labels: [0, 1]}}]", "scenarios.0.train.labels"),
    ("scenarios: [{name: a, family: f, train: {dataset: digits, transform: blur}}]", "transform"),
    ("scenarios: [{name: a, family: f, train: {dataset: digits}}, {name: a, family: g, train: {dataset: digits}}]",
     "unique"),
])
def test_bad_scenario_files_name_the_key(tmp_path, text, match):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_scenarios(path)


def test_overlapping_slices_are_refused_before_any_training():
    sc = ImageScenario(name="leaky", family="f", train={"dataset": "digits", "slice": [0.2, 0.6]},
                       test={"dataset": "digits", "slice": [0.0, 0.3]})
    with pytest.raises(ConfigError, match="'leaky': its test and train sources share"):
        scenario_indices(sc, seed=0)


# ---- a tiny real run, through the CLI -------------------------------------------------------

TINY = """# three digits, a champion on upright ones, the batch rotated; one step per training
budget: {image_size: 32, max_steps: 1, batch_size: 8}
seeds: 2
strategies: [head, partial]
scenarios:
  - name: tiny-digits-rot90
    family: tiny
    shift: near_domain
    reference: {dataset: digits, slice: [0.5, 0.75], labels: ['0', '1', '2'], per_class: 8}
    train: {dataset: digits, slice: [0.75, 1.0], labels: ['0', '1', '2'], per_class: 8, transform: rotate90}
    test: {dataset: digits, slice: [0.0, 0.5], labels: ['0', '1', '2'], per_class: 10, transform: rotate90}
"""


def test_tiny_scenario_end_to_end_is_judged_and_resumes(tmp_path):
    scenarios, out = tmp_path / "tiny.yaml", tmp_path / "results"
    scenarios.write_text(TINY)
    args = ["--scenarios", str(scenarios), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "bench.image_decision", *args, "--threads", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved_file = out / "scenarios" / "tiny-digits-rot90.json"
    saved = json.loads(saved_file.read_text())
    assert saved["format"] == 2 and saved["modality"] == "image" and saved["seeds"] == [13, 14]
    assert saved["rows"]["test"] == 30 and len(saved["test_labels"]) == 30 and saved["rows"]["reference"]
    assert {"head", "partial"} <= set(saved["strategies"]) and saved["choice"] in saved["strategies"]
    for name in ("head", "partial"):
        s = saved["strategies"][name]
        assert len(s["predictions"]) == 2 and all(len(p) == 30 for p in s["predictions"]) and s["seconds"]["mean"] > 0
    assert saved["shift"]["mmd2"] is not None and saved["shift"]["champion_incoming_accuracy"] is not None

    verdict = stats.judge(saved)
    assert verdict["strategies"][verdict["best"]]["tied"] and verdict["choice"]["strategy"] == saved["choice"]
    result = json.loads((out / "decision.json").read_text())
    assert result["not_run"] == [] and result["verdicts"] == [verdict]
    assert set(result["headline"]["policies"]) >= {"selector", "always head", "always partial"}
    md = (out / "decision.md").read_text()
    assert md.startswith("# Image decision benchmark") and "tiny-digits-rot90" in md and "## Images" in md

    # a second run (in this process: no --threads, which would stay set for later tests) finds the scenario saved
    # for the same definition and trains nothing
    before = saved_file.read_text()
    assert main(args) == 0
    assert saved_file.read_text() == before
    assert json.loads((out / "decision.json").read_text())["verdicts"] == [verdict]


def test_unknown_only_name_is_an_error(tmp_path, capsys):
    scenarios = tmp_path / "tiny.yaml"
    scenarios.write_text(TINY)
    assert main(["--scenarios", str(scenarios), "--out", str(tmp_path / "r"), "--only", "nope"]) == 2
    assert "unknown scenario(s) ['nope']" in capsys.readouterr().err


def test_transforms_change_pixels_as_named():
    from bench.image_decision import ImageSource, dataset, transformed

    image = dataset("digits")[0][5]
    src = {t: ImageSource(dataset="digits", transform=t) for t in ("none", "rotate90", "rotate180", "invert", "noise")}
    assert np.array_equal(transformed(src["none"], 5), image)
    assert np.array_equal(transformed(src["rotate90"], 5), np.rot90(image))
    assert np.array_equal(transformed(src["rotate180"], 5), image[::-1, ::-1])
    assert np.array_equal(transformed(src["invert"], 5), 255 - image)
    noisy = transformed(src["noise"], 5)
    assert noisy.dtype == np.uint8 and not np.array_equal(noisy, image)
    assert np.array_equal(noisy, transformed(src["noise"], 5))  # seeded by the image: the same every run
