"""Evaluation (quality, calibration, cost) against champion and baseline; the promotion gate in words."""

import json
from pathlib import Path

import numpy as np
import pytest

from driftfit import augment, evaluate, memory, promote, registry, train
from driftfit.config import PromoteConfig
from driftfit.evaluate import expected_calibration_error, score
from driftfit.io import read_json, write_json
from driftfit.promote import decide

GATE = PromoteConfig(min_improvement=0.0, max_forgetting=5.0, beat_baseline=True)


def metrics(cand_new, champ_new=None, cand_ref=None, champ_ref=None, base_new=0.1, strategy="lora"):
    def m(v):
        return {"accuracy": v, "macro_f1": v}
    out = {"strategy": strategy, "candidate": {"test": m(cand_new)}, "baseline": {"test": m(base_new)}}
    if cand_ref is not None:
        out["candidate"]["reference_test"] = m(cand_ref)
    if champ_new is not None:
        out["champion"] = {"test": m(champ_new)}
        if champ_ref is not None:
            out["champion"]["reference_test"] = m(champ_ref)
    return out


# ---- the gate ---------------------------------------------------------------------------------

def test_gate_first_model_is_promoted():
    verdict = decide(metrics(0.5), True, GATE)
    assert verdict["promote"] and "first model" in verdict["reason"]
    assert verdict["reason"].endswith("+40.0 over the pretrained baseline")


def test_gate_needs_improvement_beyond_margin():
    verdict = decide(metrics(0.80, 0.79, 0.9, 0.9), True, GATE.model_copy(update={"min_improvement": 2.0}))
    assert not verdict["promote"]
    assert verdict["reason"].startswith("rejected: +1.0 macro-F1 on new data, needs more than +2.0")


def test_gate_rejects_forgetting_and_reports_it_in_words():
    verdict = decide(metrics(0.90, 0.80, 0.70, 0.80), True, GATE)
    assert not verdict["promote"]
    assert verdict["reason"].startswith("rejected: -10.0 on reference, beyond the 5.0 limit: forgets too much")
    verdict = decide(metrics(0.90, 0.80, 0.786, 0.79), True, GATE.model_copy(update={"max_forgetting": 1.0}))
    assert verdict["promote"]
    assert verdict["reason"] == ("promoted: +10.0 macro-F1 on new data; -0.4 on reference, within the 1.0 limit; "
                                 "+80.0 over the pretrained baseline")
    assert [c["name"] for c in verdict["checks"]] == ["new_data", "forgetting", "baseline"]


def test_gate_must_beat_the_pretrained_baseline():
    verdict = decide(metrics(0.30, base_new=0.35), True, GATE)
    assert not verdict["promote"] and "-5.0 over the pretrained baseline, must beat it" in verdict["reason"]
    assert decide(metrics(0.30, base_new=0.35), True, GATE.model_copy(update={"beat_baseline": False}))["promote"]
    # the zero_shot strategy's candidate is the baseline: nothing to beat
    assert decide(metrics(0.35, base_new=0.35, strategy="zero_shot"), True, GATE)["promote"]


def test_gate_skip_keeps_champion():
    verdict = decide({"strategy": "skip"}, False, GATE)
    assert not verdict["promote"] and "skip" in verdict["reason"]


# ---- scores -------------------------------------------------------------------------------------

def test_expected_calibration_error():
    correct = np.array([1, 1, 0, 0], float)
    assert expected_calibration_error(np.array([1.0, 1.0, 0.0, 0.0]), correct, 10) == 0.0
    # always 90% sure, right half the time: off by 0.4
    assert expected_calibration_error(np.full(4, 0.9), correct, 10) == pytest.approx(0.4)
    assert expected_calibration_error(np.zeros(0), np.zeros(0), 10) == 0.0


def test_score_has_per_class_report_and_confusion():
    r = score(["a", "a", "b", "c"], ["a", "b", "b", "zz"], np.array([0.9, 0.6, 0.8, 0.5]), bins=5)
    assert r["accuracy"] == 0.5 and r["rows"] == 4
    assert r["per_class"]["a"]["recall"] == 0.5 and r["per_class"]["b"]["precision"] == 0.5
    assert r["confusion"]["labels"] == ["a", "b", "c"] and r["confusion"]["matrix"][0] == [1, 1, 0]
    assert 0 <= r["ece"] <= 1


# ---- the real steps on the shrunk data -------------------------------------------------------------

def retrain_with_new_bytes(p, n: int) -> None:
    """Train again from the same data and seed. Training may reproduce v1 byte for byte (then promote keeps
    it as "the candidate is v1, which serves already", tested in test_faults), so a note file makes this
    candidate a different model folder that predicts exactly as v1 does: the gate, not the digest, decides."""
    train.run(p)
    (Path(p.paths.candidate) / "retrain.txt").write_text(f"retrain {n}\n")


def test_first_run_promotes_then_an_equal_candidate_is_rejected(prepared_params, make_params):
    p = make_params({"evaluate.latency_examples": 2, "promote.beat_baseline": False})  # 2 steps can't beat it
    augment.run(p)
    write_json(p.paths.decision, {"strategy": "head", "reason": "test"})
    train.run(p)
    m = evaluate.run(p)
    assert "champion" not in m and {"test", "reference_test"} <= set(m["candidate"]) <= set(m["baseline"])
    assert 0 <= m["candidate"]["test"]["accuracy"] <= 1 and 0 <= m["candidate"]["test"]["ece"] <= 1
    assert m["cost"]["candidate"]["parameters"] > 1e6 and m["cost"]["candidate"]["size_mb"] > 1
    evaluation = Path(p.paths.evaluation)
    for model in ("candidate", "baseline"):
        assert (evaluation / f"confusion_{model}_test.csv").is_file()
        assert (evaluation / f"confusion_{model}_reference_test.png").read_bytes()[:4] == b"\x89PNG"
    report = read_json(evaluation / "candidate_test.json")
    assert sum(map(sum, report["confusion"]["matrix"])) == report["rows"]
    assert set(report["per_class"][report["confusion"]["labels"][0]]) >= {"precision", "recall", "f1-score"}
    latency = read_json(evaluation / "latency.json")["models"]["candidate"]
    assert latency["batch_1"]["p50_ms"] > 0 and latency["batch_32"]["p95_ms"] >= latency["batch_32"]["p50_ms"]

    remembered = memory.run(p)  # the batch joins the data memory, as the remember step does
    verdict = promote.run(p)
    assert verdict["promoted"] and verdict["champion"] == "v1"
    card = Path(verdict["model_card"]).read_text()
    for part in ("strategy **head**", "sha256", "## Why it was promoted", "first model", "## Inference cost",
                 "## Limitations", "| baseline | test |"):
        assert part in card, part
    record = read_json(Path(p.paths.registry) / "v1" / "version.json")
    assert record["data"]["test"] == read_json(Path(p.paths.prepared) / "manifest.json")["splits"]["test"]["sha256"]
    assert record["params"]["promote"]["beat_baseline"] is False and record["reason"] == verdict["reason"]
    # lineage that outlives this checkout: project paths relative, with the files' hashes
    assert record["params"]["paths"]["registry"] == "models/registry"
    assert record["sources"]["incoming"]["path"] == "data/default/incoming.csv"
    assert record["memory"]["batches"] == [remembered["batch"]] and record["memory"]["version"] == 1
    assert len(record["sources"]["incoming"]["sha256"]) == 64 and record["model_sha256"] == registry.model_digest(
        Path(p.paths.registry) / "v1")

    # metrics.json scored no champion, yet v1 serves now (as after a concurrent run): promote re-scores v1
    # rather than judging the new candidate "a first model, no champion to beat".
    retrain_with_new_bytes(p, 1)
    stale = promote.run(p)
    assert not stale["promoted"] and stale["champion"] == "v1", stale
    assert stale["reason"].startswith("rejected: +0.0 macro-F1 on new data"), stale["reason"]
    assert stale["notes"] == ["metrics.json scored no champion, but v1 serves now: v1 was re-scored on the same "
                              "test splits"]
    assert registry.versions(p.paths.registry) == ["v1"]

    # A second candidate from the same data and seed scores the same: it must not replace v1.
    retrain_with_new_bytes(p, 2)
    m2 = evaluate.run(p)
    assert m2["champion_version"] == "v1" and m2["champion"]["test"] == m2["candidate"]["test"]
    assert (evaluation / "confusion_champion_reference_test.png").is_file()
    verdict2 = promote.run(p)
    assert not verdict2["promoted"] and verdict2["champion"] == "v1"
    assert verdict2["reason"].startswith("rejected: +0.0 macro-F1 on new data, needs more than +0.0")
    assert json.loads((Path(p.paths.registry) / "champion.json").read_text())["version"] == "v1"
