"""Evaluation against the champion, the promotion gate, the atomic registry, the model card."""

import json
from pathlib import Path

import pytest

from driftfit import augment, evaluate, promote, train
from driftfit.io import read_json, write_json
from driftfit.promote import decide
from driftfit.registry import add_version, champion_dir, champion_info, set_champion


def metrics(cand_new, champ_new=None, cand_ref=None, champ_ref=None):
    m = {"strategy": "lora", "candidate": {"test": {"accuracy": cand_new, "macro_f1": cand_new}}}
    if cand_ref is not None:
        m["candidate"]["reference_test"] = {"accuracy": cand_ref, "macro_f1": cand_ref}
    if champ_new is not None:
        m["champion"] = {"test": {"accuracy": champ_new, "macro_f1": champ_new}}
        if champ_ref is not None:
            m["champion"]["reference_test"] = {"accuracy": champ_ref, "macro_f1": champ_ref}
    return m


def test_gate_first_model_is_promoted():
    ok, reason = decide(metrics(0.5), True, 0.0, 5.0)
    assert ok and "first model" in reason


def test_gate_needs_improvement_beyond_margin():
    ok, reason = decide(metrics(0.80, 0.79, 0.9, 0.9), True, min_improvement=2.0, max_forgetting=5.0)
    assert not ok and "+1.0 macro-F1" in reason and "needs more than +2.0" in reason


def test_gate_rejects_forgetting_and_reports_it_in_words():
    ok, reason = decide(metrics(0.90, 0.80, 0.70, 0.80), True, 0.0, 5.0)
    assert not ok and "-10.0 on reference" in reason and "forgets too much" in reason
    ok, reason = decide(metrics(0.90, 0.80, 0.78, 0.80), True, 0.0, 5.0)
    assert ok and reason.startswith("promoted: +10.0 macro-F1 on new data, -2.0 on reference")


def test_gate_skip_keeps_champion():
    ok, reason = decide({"strategy": "skip"}, False, 0.0, 5.0)
    assert not ok and "skip" in reason


def test_registry_pointer_switches_atomically(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.txt").write_text("1")
    reg = tmp_path / "registry"
    assert champion_dir(reg) is None
    v1 = add_version(reg, model)
    set_champion(reg, v1, {"note": "a"})
    v2 = add_version(reg, model)
    assert (v1, v2) == ("v1", "v2") and champion_dir(reg) == reg / "v1"
    set_champion(reg, v2, {"note": "b"})
    assert champion_info(reg)["version"] == "v2"
    assert not [p for p in reg.iterdir() if p.name.startswith(".")]  # no temp files left behind
    with pytest.raises(FileNotFoundError):
        set_champion(reg, "v9", {})


def test_first_run_promotes_then_a_worse_candidate_is_rejected(prepared_params, make_params):
    p = prepared_params
    augment.run(p)
    write_json(p.paths.decision, {"strategy": "head", "reason": "test"})
    train.run(p)
    m = evaluate.run(p)
    assert "champion" not in m and 0 <= m["candidate"]["test"]["accuracy"] <= 1
    assert "reference_test" in m["candidate"]
    verdict = promote.run(p)
    assert verdict["promoted"] and verdict["champion"] == "v1"
    card = Path(verdict["model_card"]).read_text()
    assert "strategy **head**" in card and "sha256" in card and "Limitations" in card
    evaluation = Path(p.paths.evaluation)
    assert (evaluation / "confusion_candidate_test.csv").is_file()
    report = read_json(evaluation / "candidate_test.json")
    assert sum(map(sum, report["confusion"]["matrix"])) == report["rows"]

    # A second candidate from the same data and seed scores the same: it must not replace v1.
    train.run(p)
    m2 = evaluate.run(p)
    assert m2["champion"]["test"] == m2["candidate"]["test"]
    verdict2 = promote.run(p)
    assert not verdict2["promoted"] and verdict2["champion"] == "v1"
    assert "rejected" in verdict2["reason"]
    assert json.loads((Path(p.paths.registry) / "champion.json").read_text())["version"] == "v1"
