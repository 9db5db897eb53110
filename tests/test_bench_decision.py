"""The decision benchmark on a tiny real scenario (chatterbot English -> Chinese), through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.decision import cap_per_class, chatterbot_frame, load_scenarios, summarise
from driftfit.errors import ConfigError
from tests.conftest import ROOT, write_params

TINY = ROOT / "tests" / "data" / "scenarios_tiny.yaml"


def test_shipped_scenario_file_parses_and_covers_the_cases():
    spec = load_scenarios(ROOT / "bench" / "scenarios.yaml")
    assert len(spec.scenarios) >= 6
    assert any(s.reference is None for s in spec.scenarios)                 # pretrained only
    assert any(s.train_per_class and s.train_per_class <= 8 for s in spec.scenarios)  # few-shot
    assert any(s.train.path.startswith("chatterbot:") and s.train.path != "chatterbot:english"
               for s in spec.scenarios)                                      # change of language


@pytest.mark.parametrize("text, match", [
    ("scenarios: []", "scenarios"),
    ("budget: {epochs: 0}\nscenarios: [{name: a, train: {path: x.csv}}]", "budget.epochs"),
    ("scenarios: [{name: a, train: {path: x.csv}, colour: red}]", "colour"),
    ("strategies: [lora, magic]\nscenarios: [{name: a, train: {path: x.csv}}]", "strategies"),
    ("scenarios: [{name: a, train: {path: x.csv}}, {name: a, train: {path: y.csv}}]", "unique"),
])
def test_bad_scenario_files_name_the_key(tmp_path, text, match):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_scenarios(path)


def test_chatterbot_source_and_per_class_cap():
    zh = chatterbot_frame("chinese")
    assert len(zh) > 300 and zh["text"].is_unique and zh["label"].nunique() > 5
    capped = cap_per_class(zh, None, 3, seed=0)
    assert capped.groupby("label").size().max() == 3
    assert len(cap_per_class(zh, 50, None, seed=0)) == pytest.approx(50, abs=zh["label"].nunique())


def test_summary_counts_regret_and_cost():
    rows = [{"regret_points": 0.0, "selector_cost_fraction": 0.1},
            {"regret_points": 2.5, "selector_cost_fraction": 0.3}]
    s = summarise(rows)
    assert s["regret_at_most_1_point"] == 1 and s["share_regret_at_most_1_point"] == 0.5
    assert s["max_selector_cost_fraction"] == 0.3 and s["mean_regret_points"] == 1.25


def test_bench_trains_every_listed_strategy_and_reports_regret(tmp_path):
    params = write_params(tmp_path)
    out = tmp_path / "results"
    proc = subprocess.run([str(Path(sys.executable).parent / "driftfit"), "bench", "decision", "--scenarios",
                           str(TINY), "--out", str(out), "--params", str(params)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "decision.json").read_text())
    assert (out / "scenarios" / "en-to-zh.json").is_file() and result["not_run"] == []
    (sc,) = result["results"]
    assert sc["choice"] in sc["strategies"]
    assert {"skip", "zero_shot", "head"} <= set(sc["strategies"])
    best = max(m["accuracy"] for m in sc["strategies"].values())
    assert sc["regret_points"] == pytest.approx(100 * (best - sc["strategies"][sc["choice"]]["accuracy"]), abs=0.01)
    assert sc["shift"]["unk_rate"] > 0.05  # an English tokenizer on Chinese
    assert 0 < sc["selector_cost_fraction"]
    md = (out / "decision.md").read_text()
    assert "en-to-zh" in md and "regret" in md and sc["choice"] in md


def test_rescore_maps_each_saved_rule_to_the_current_choice(tmp_path):
    from bench.decision import rescore
    from driftfit.io import write_json
    from driftfit.strategy import CHOICES

    saved = {"rule": "few_shot", "choice": "head", "regret_points": 10.0, "rows": {"train": 32},
             "strategies": {"head": {"accuracy": 0.5}, "ia3": {"accuracy": 0.55}, "zero_shot": {"accuracy": 0.6}}}
    write_json(tmp_path / "scenarios" / "en-to-zh.json", saved)
    summary = rescore(tmp_path, TINY, write_params(tmp_path))
    assert summary["scenarios"] == 1
    expected = 100 * (0.6 - saved["strategies"][CHOICES["few_shot"][0]]["accuracy"])
    assert summary["mean_regret_points"] == pytest.approx(expected, abs=0.01)
    assert "in-sample" in (tmp_path / "decision-rescored.md").read_text()
