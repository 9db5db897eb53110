"""Evaluation (quality, calibration, cost) against champion and baseline; the promotion gate in words."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftfit.pipeline import runner
from driftfit.modalities.text import augment
from driftfit.modalities.text import evaluate
from driftfit.state import memory
from driftfit.steps import promote
from driftfit.state import registry
from driftfit.modalities.text import recipe as train
from driftfit.config import PromoteConfig
from driftfit.evaluation.scoring import expected_calibration_error, score
from driftfit.io import read_json, write_json
from driftfit.steps.promote import decide
from driftfit.report import promotion_md
from tests.conftest import SHARED_DATA
from tests.test_gate import batch, flip

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


# ---- the gate on point estimates (promote.test: point, or no per-row predictions) -----------------

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


# ---- the gate on the same rows (promote.test: bootstrap) --------------------------------------------

def gate_rows(new: tuple, past: dict | None = None) -> pd.DataFrame:
    """evaluate's predictions.csv, built: new = (label, candidate, champion or None, baseline) on the new test
    split; past = {batch: (label, candidate, champion)} on the reference test split."""
    label, cand, champ, base = new
    frames = [pd.DataFrame({"split": "test", "batch": "", "label": label, "candidate": cand, "baseline": base,
                            **({"champion": champ} if champ is not None else {})})]
    for name, (label, cand, champ) in (past or {}).items():
        frames.append(pd.DataFrame({"split": "reference_test", "batch": name, "label": label, "candidate": cand,
                                    "champion": champ, "baseline": champ}))
    return pd.concat(frames, ignore_index=True)


def noisy_past(batches: int = 3, rows: int = 80) -> dict:
    """Past batches where the candidate moved 4 rows each way against the champion: differences of noise only."""
    out = {}
    for i in range(batches):
        truth, champion = batch(rows, 0.85, seed=i)
        out[f"week{i + 1}"] = (truth, flip(truth, champion, 4, 4, seed=i), champion)
    return out


def new_task(rows: int = 80) -> tuple:
    """The new batch brings new labels: the champion knows none of them, the candidate learnt them (70% right)."""
    truth, learnt = batch(rows, 0.7, labels=("Sports", "World"))
    return truth, learnt, np.full(rows, "neg"), np.full(rows, "Sports")


PAIRED = GATE.model_copy(update={"resamples": 1000})


def test_paired_gate_promotes_a_new_task_whose_past_differences_are_noise():
    verdict = decide({"strategy": "head"}, True, PAIRED, gate_rows(new_task(), noisy_past()))
    assert verdict["promote"] and verdict["judged_on"] == "bootstrap", verdict["reason"]
    checks = {c["name"]: c for c in verdict["checks"]}
    assert checks["new_data"]["verdict"] == "gain" and checks["new_data"]["low"] > 0
    assert "a real gain" in checks["new_data"]["text"] and "95% interval" in checks["new_data"]["text"]
    forgetting = checks["forgetting"]
    assert forgetting["passed"] and {g["state"] for g in forgetting["groups"]} == {"noise"}
    assert [g["group"] for g in forgetting["groups"]] == ["week1", "week2", "week3", "labels neg, pos"]
    assert "within noise; nothing lost significantly more than the 5.0 limit (4 within noise)" in forgetting["text"]
    assert "3 of 4 past comparisons have fewer than 120 rows" in forgetting["text"]  # the pooled 240 rows have not
    assert [r["reads"] for r in verdict["comparisons"]][:2] == ["a real gain", "within noise; too few rows to detect "
                                                                "a loss of 5.0"]


def test_paired_gate_rejects_injected_forgetting():
    past = noisy_past()
    truth, cand, champion = past["week2"]
    past["week2"] = (truth, flip(truth, cand, 30, 0, seed=7), champion)  # 30 of 80 rows forgotten
    verdict = decide({"strategy": "head"}, True, PAIRED, gate_rows(new_task(), past))
    assert not verdict["promote"]
    forgetting = next(c for c in verdict["checks"] if c["name"] == "forgetting")
    assert not forgetting["passed"] and forgetting["batch"] == "week2"
    assert "week2" in [g["group"] for g in forgetting["groups"] if g["state"] == "beyond"]
    assert {g["group"] for g in forgetting["groups"] if g["state"] == "noise"} == {"week1", "week3"}
    assert verdict["reason"].startswith("rejected: ") and "on past batch week2 (80 rows; 95% interval" in \
        verdict["reason"] and "significantly beyond the 5.0 limit (Holm-adjusted over 4 tests, p = " in \
        verdict["reason"] and "forgets too much" in verdict["reason"]


def test_paired_gate_takes_a_tie_only_when_it_is_cheaper_to_serve():
    truth, champion = batch(80, 0.8)
    tie = (truth, flip(truth, champion, 3, 4), champion, champion)
    same_cost = {"strategy": "head", "cost": {"candidate": {"parameters": 100}, "champion": {"parameters": 100}}}
    verdict = decide(same_cost, True, PAIRED, gate_rows(tie, noisy_past(1)))
    assert not verdict["promote"] and verdict["checks"][0]["verdict"] == "tie"
    assert "within noise" in verdict["reason"] and "not cheaper" in verdict["reason"]
    cheaper = {"strategy": "head", "cost": {"candidate": {"parameters": 90}, "champion": {"parameters": 100}}}
    verdict = decide(cheaper, True, PAIRED, gate_rows(tie, noisy_past(1)))
    assert verdict["promote"] and "within noise, and cheaper to serve (90 parameters against the champion's 100)" \
        in verdict["reason"]


def test_paired_gate_flags_tiny_test_splits_and_not_large_ones():
    past = {**noisy_past(1, rows=40), "big": noisy_past(1, rows=200)["week1"]}
    verdict = decide({"strategy": "head"}, True, PAIRED, gate_rows(new_task(), past))
    forgetting = next(c for c in verdict["checks"] if c["name"] == "forgetting")
    assert forgetting["too_small"] == ["week1"] and forgetting["rows_needed"] == 120
    assert "1 of 3 past comparisons have fewer than 120 rows, too few to detect a loss of 5.0 points" in \
        forgetting["text"]  # week1 alone; the big batch and the two pooled have enough


def test_paired_gate_baseline_blocks_only_a_significant_loss_to_it():
    truth, learnt, knows_nothing, _ = new_task()
    below = (truth, learnt, knows_nothing, truth)  # the baseline is right on every row
    verdict = decide({"strategy": "head"}, True, PAIRED, gate_rows(below, noisy_past(1)))
    assert not verdict["promote"] and "over the pretrained baseline" in verdict["reason"]
    assert "significantly below it, must not lose to it" in verdict["reason"]
    near = (truth, learnt, knows_nothing, flip(truth, learnt, 2, 2))
    verdict = decide({"strategy": "head"}, True, PAIRED, gate_rows(near, noisy_past(1)))
    assert verdict["promote"] and "within noise of it" in verdict["reason"]


def test_paired_gate_words_reach_the_artifact():
    verdict = decide({"strategy": "head"}, True, PAIRED, gate_rows(new_task(), noisy_past()))
    md = promotion_md({"promoted": verdict["promote"], "reason": verdict["reason"], "checks": verdict["checks"],
                       "comparisons": verdict["comparisons"], "confidence": 0.95, "champion": "v2"})
    assert "## How sure" in md and "| the new test split | champion | 80 |" in md
    assert "| past batch week1 | champion | 80 |" in md and "within noise" in md


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
    runner("train")(p)
    (Path(p.paths.candidate) / "retrain.txt").write_text(f"retrain {n}\n")


def test_first_run_promotes_then_an_equal_candidate_is_rejected(prepared_params, make_params, tmp_path):
    p = make_params({"evaluate.latency_examples": 2, "evaluate.plots": True,  # the suite shrinks both away
                     "promote.beat_baseline": False})  # 2 steps can't beat it
    runner("augment")(p)
    write_json(p.paths.decision, {"strategy": "head", "reason": "test"})
    evaluation = Path(p.paths.evaluation)

    # A candidate evaluated while no champion served, set aside: promoted later, after v1 took over.
    retrain_with_new_bytes(p, 0)
    runner("evaluate")(p)
    stale = tmp_path / "stale"
    for folder in (Path(p.paths.candidate), evaluation):
        shutil.copytree(folder, stale / folder.name)
    shutil.copy(p.paths.metrics, stale / "metrics.json")

    runner("train")(p)
    m = runner("evaluate")(p)
    assert "champion" not in m and {"test", "reference_test"} <= set(m["candidate"]) <= set(m["baseline"])
    assert 0 <= m["candidate"]["test"]["accuracy"] <= 1 and 0 <= m["candidate"]["test"]["ece"] <= 1
    assert m["cost"]["candidate"]["parameters"] > 1e6 and m["cost"]["candidate"]["size_mb"] > 1
    for model in ("candidate", "baseline"):
        assert (evaluation / f"confusion_{model}_test.csv").is_file()
        assert (evaluation / f"confusion_{model}_reference_test.png").read_bytes()[:4] == b"\x89PNG"
    report = read_json(evaluation / "candidate_test.json")
    assert sum(map(sum, report["confusion"]["matrix"])) == report["rows"]
    assert set(report["per_class"][report["confusion"]["labels"][0]]) >= {"precision", "recall", "f1-score"}
    latency = read_json(evaluation / "latency.json")["models"]["candidate"]
    assert latency["batch_1"]["p50_ms"] > 0 and latency["batch_32"]["p95_ms"] >= latency["batch_32"]["p50_ms"]
    # every model's answer on every test row, side by side, as the confusion files have them
    rows = pd.read_csv(evaluation / "predictions.csv", dtype=str, keep_default_na=False)
    assert list(rows.columns) == ["split", "batch", "label", "candidate", "baseline"]
    for split in ("test", "reference_test"):
        confusion = pd.read_csv(evaluation / f"confusion_candidate_{split}.csv", dtype=str, keep_default_na=False)
        assert rows.loc[rows["split"] == split, ["label", "candidate"]].values.tolist() == confusion.values.tolist()

    remembered = runner("remember")(p)  # the batch joins the data memory, as the remember step does
    verdict = runner("promote")(p)
    assert verdict["promoted"] and verdict["champion"] == "v1"
    card = Path(verdict["model_card"]).read_text()
    for part in ("strategy **head**", "sha256", "## Why it was promoted", "first model", "## Inference cost",
                 "## Limitations", "| baseline | test |", "test bootstrap (confidence 0.95"):
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

    # The candidate set aside: its metrics.json scored no champion, yet v1 serves now (as after a concurrent run):
    # promote re-scores v1, answers per row included, rather than judging it "a first model, no champion to beat".
    for folder in (Path(p.paths.candidate), evaluation):
        shutil.rmtree(folder)
        shutil.copytree(stale / folder.name, folder)
    shutil.copy(stale / "metrics.json", p.paths.metrics)
    late = runner("promote")(p)
    assert not late["promoted"] and late["champion"] == "v1", late
    assert late["reason"].startswith("rejected: +0.0 macro-F1 on new data (") and "within noise" in late["reason"]
    assert late["notes"] == ["metrics.json scored no champion, but v1 serves now: v1 was re-scored on the same "
                             "test splits"]
    assert {c["name"] for c in late["checks"]} == {"new_data", "forgetting"} and late["judged_on"] == "bootstrap"
    assert registry.versions(p.paths.registry) == ["v1"]

    # A second candidate from the same data and seed answers as v1 on every row: a tie, at the same cost.
    retrain_with_new_bytes(p, 2)
    m2 = runner("evaluate")(p)
    assert m2["champion_version"] == "v1" and m2["champion"]["test"] == m2["candidate"]["test"]
    assert (evaluation / "confusion_champion_reference_test.png").is_file()
    rows = pd.read_csv(evaluation / "predictions.csv", dtype=str, keep_default_na=False)
    assert (rows["candidate"] == rows["champion"]).all()
    verdict2 = runner("promote")(p)
    assert not verdict2["promoted"] and verdict2["champion"] == "v1"
    new_data = verdict2["checks"][0]
    assert new_data["verdict"] == "tie" and new_data["low"] == new_data["high"] == 0.0
    assert verdict2["reason"].startswith("rejected: +0.0 macro-F1 on new data (") and \
        "within noise, and not cheaper to serve" in verdict2["reason"]
    assert "## How sure" in promotion_md(verdict2) and "within noise" in promotion_md(verdict2)
    assert json.loads((Path(p.paths.registry) / "champion.json").read_text())["version"] == "v1"


def test_predictions_from_another_evaluation_are_refused(prepared_params, make_params):
    """predictions.csv must be the candidate metrics.json scored: mixed files stop promote, which changes nothing."""
    p = make_params({"evaluate.latency_examples": 0, "promote.beat_baseline": False})
    runner("augment")(p)
    write_json(p.paths.decision, {"strategy": "head", "reason": "test"})
    runner("train")(p)
    runner("evaluate")(p)
    assert not list(Path(p.paths.evaluation).glob("*.png"))  # evaluate.plots is off in the suite's shrink
    assert list(Path(p.paths.evaluation).glob("confusion_candidate_*.csv"))  # the CSVs are always written
    path = Path(p.paths.evaluation) / "predictions.csv"
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    test = rows.index[rows["split"] == "test"]
    rows.loc[test, "candidate"] = rows.loc[test, "label"].iloc[::-1].to_numpy()  # another model's answers
    rows.to_csv(path, index=False)
    from driftfit.errors import DataError

    with pytest.raises(DataError, match=r"predictions.csv does not match .*metrics.json .*run `driftfit evaluate` again"):
        runner("promote")(p)
    assert registry.versions(p.paths.registry) == []


# ---- real models: a new task, learnt or forgetting the old one --------------------------------------

@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (news topics, a task of its own)")
def test_a_real_candidate_that_forgets_is_rejected_and_one_that_learns_a_new_task_is_promoted(prepared_params,
                                                                                             tmp_path):
    """Week 1 (the default chatterbot topics) promotes a head, v1. Week 2 brings news topics, new labels: a head
    trained on week 2 alone knows none of week 1's labels and forgets it (rejected, however few its test rows);
    a head that replays the memory learns the new task and keeps the old one within noise (promoted)."""
    from driftfit.data import splits as prepare
    from driftfit.modalities.text import checks as validate
    from driftfit.config import load_params
    from tests.conftest import write_params

    fast = {"evaluate.latency_examples": 0, "promote.beat_baseline": False}
    p = load_params(write_params(tmp_path, fast))
    runner("validate")(p)
    week1 = runner("remember")(p)["batch"]
    runner("augment")(p)
    write_json(p.paths.decision, {"strategy": "head", "reason": "week 1"})
    runner("train")(p)
    runner("evaluate")(p)
    assert runner("promote")(p)["champion"] == "v1"

    news = pd.read_csv(SHARED_DATA / "agnews" / "dev.tsv", sep="\t", header=None, names=["text", "label"])
    news.groupby("label").sample(n=25, random_state=0).to_csv(tmp_path / "data" / "news.csv", index=False)
    week2 = {**fast, "data.incoming.path": "data/news.csv"}

    def candidate(overrides: dict) -> dict:
        q = load_params(write_params(tmp_path, {**week2, **overrides}))
        runner("prepare")(q)
        runner("validate")(q)
        runner("remember")(q)  # the same batch twice is kept once
        runner("augment")(q)
        write_json(q.paths.decision, {"strategy": "head", "reason": "week 2"})
        runner("train")(q)
        runner("evaluate")(q)
        return runner("promote")(q)

    forgets = candidate({"train.replay_all_for": [], "train.replay_fraction": 0.0})
    assert not forgets["promoted"] and forgets["champion"] == "v1"
    checks = {c["name"]: c for c in forgets["checks"]}
    assert checks["new_data"]["verdict"] == "gain"  # it did learn the news
    assert not checks["forgetting"]["passed"] and checks["forgetting"]["batch"] == week1
    assert checks["forgetting"]["groups"][0]["state"] == "beyond" and "forgets too much" in forgets["reason"]
    assert checks["forgetting"]["too_small"] == [week1]  # and says its test split is small
    assert "too few to detect a loss of 5.0 points" in checks["forgetting"]["text"]

    learns = candidate({})  # the head replays every remembered row (train.replay_all_for: [head])
    assert learns["promoted"] and learns["champion"] == "v2", learns["reason"]
    checks = {c["name"]: c for c in learns["checks"]}
    assert checks["new_data"]["verdict"] == "gain" and checks["forgetting"]["passed"]
    assert checks["forgetting"]["groups"][0]["state"] != "beyond"  # what it lost on 38 rows is not beyond 5 points
    card = (Path(learns["model_card"])).read_text()
    assert "## How sure" in card and f"| past batch {week1} | champion |" in card
