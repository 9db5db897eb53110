"""The learning-rate sweep's verdict on hand-made runs (paired gains, the one-point bar, values not run
everywhere), and the budget's learning rates reaching the decision benchmark's params."""

from __future__ import annotations

import pytest

from bench import lr_sweep
from bench.decision import _base_params, load_scenarios
from driftfit.errors import ConfigError
from driftfit.io import write_json
from tests.conftest import ROOT


def _runs(folder, rows):
    for scenario, strategy, knob, value, factor, acc in rows:
        write_json(folder / "runs" / f"{scenario}--{strategy}--{knob}={value:g}.json",
                   {"scenario": scenario, "strategy": strategy, "knob": knob, "value": value, "factor": factor,
                    "current": value / factor, "accuracy": acc, "seconds": 1.0, "test_rows": 100, "train_rows": 50})


def test_a_value_replaces_the_current_one_only_with_a_paired_gain_over_one_point_everywhere(tmp_path):
    base = _base_params(load_scenarios(ROOT / "bench" / "scenarios-fit.yaml"), ROOT / "params.yaml")
    lr, lora = base.train.learning_rate, base.train.lora_learning_rate
    _runs(tmp_path, [
        # full: x2 gains 3 points on a, loses 2 on b (mean +0.5: stays); x4 gains 5 on a but never ran on b
        ("a", "full", "train.learning_rate", lr, 1.0, 0.80), ("b", "full", "train.learning_rate", lr, 1.0, 0.70),
        ("a", "full", "train.learning_rate", 2 * lr, 2.0, 0.83), ("b", "full", "train.learning_rate", 2 * lr, 2.0, 0.68),
        ("a", "full", "train.learning_rate", 4 * lr, 4.0, 0.85),
        # lora: x2 gains 2 and 1 points (mean +1.5: replaces)
        ("a", "lora", "train.lora_learning_rate", lora, 1.0, 0.70), ("b", "lora", "train.lora_learning_rate", lora, 1.0, 0.60),
        ("a", "lora", "train.lora_learning_rate", 2 * lora, 2.0, 0.72),
        ("b", "lora", "train.lora_learning_rate", 2 * lora, 2.0, 0.61),
    ])
    report = lr_sweep.combine(tmp_path, "fit.yaml", ["a", "b"], base)
    full, low = report["knobs"]["train.learning_rate"], report["knobs"]["train.lora_learning_rate"]
    assert full["recommended"] == lr and full["values"][f"{2 * lr:g}"]["gain_over_current_points"] == 0.5
    assert full["values"][f"{4 * lr:g}"]["paired_runs"] == 1  # ran on a only: not eligible
    assert low["recommended"] == 2 * lora and "gains 1.50 points" in low["why"]
    assert "train.head_learning_rate" not in report["knobs"]
    assert "| `train.lora_learning_rate` | lora |" in (tmp_path / "lr_sweep.md").read_text()


def test_the_budget_sets_learning_rates_and_names_a_bad_one(tmp_path):
    spec = load_scenarios(ROOT / "bench" / "scenarios-fit.yaml")
    assert _base_params(spec, ROOT / "params.yaml").train.lora_learning_rate == spec.budget.learning_rates[
        "lora_learning_rate"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("budget: {learning_rates: {warp_speed: 1.0}}\nscenarios: [{name: a, family: f, train: {path: x.csv}}]\n")
    with pytest.raises(ConfigError, match="learning_rates.warp_speed"):
        load_scenarios(bad)
    bad.write_text("budget: {learning_rates: {learning_rate: 0}}\nscenarios: [{name: a, family: f, train: {path: x.csv}}]\n")
    with pytest.raises(ConfigError, match="learning_rates.learning_rate must be > 0"):
        load_scenarios(bad)


def test_the_adapter_knob_sweeps_downwards_and_its_values_count(tmp_path):
    base = _base_params(load_scenarios(ROOT / "bench" / "scenarios-fit.yaml"), ROOT / "params.yaml")
    rate = base.train.adapter_learning_rate
    assert lr_sweep.factors("train.adapter_learning_rate") == (0.1, 0.3, 1.0)
    assert lr_sweep.factors("train.learning_rate") == lr_sweep.FACTORS
    assert lr_sweep.KNOBS["train.adapter_learning_rate"] == ["adapter"]
    _runs(tmp_path, [
        # a tenth gains 40 points where the current rate collapsed (a) and loses 2 on b: mean +19, replaces
        ("a", "adapter", "train.adapter_learning_rate", rate, 1.0, 0.10),
        ("b", "adapter", "train.adapter_learning_rate", rate, 1.0, 0.80),
        ("a", "adapter", "train.adapter_learning_rate", rate * 0.1, 0.1, 0.50),
        ("b", "adapter", "train.adapter_learning_rate", rate * 0.1, 0.1, 0.78),
        # a factor outside the knob's grid is kept in runs/ but not scored
        ("a", "adapter", "train.adapter_learning_rate", rate * 4, 4.0, 0.90),
        ("b", "adapter", "train.adapter_learning_rate", rate * 4, 4.0, 0.90),
    ])
    knob = lr_sweep.combine(tmp_path, "fit.yaml", ["a", "b"], base)["knobs"]["train.adapter_learning_rate"]
    assert knob["recommended"] == pytest.approx(rate * 0.1) and "gains 19.00 points" in knob["why"]
    assert f"{rate * 4:g}" not in knob["values"]
