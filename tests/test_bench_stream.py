"""The stream benchmark on a shrunk 3-batch stream: real data, real steps, two policies, resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (the workplace's real data)")

SPEC = {
    "seed": 3,
    "budget": {"epochs": 1, "max_seq_len": 16, "batch_size": 16},
    # contrastive_max_rows 0: the first week's pair tuning (a minute here) is the strategy's own test's business
    "params": {"shift.sample_size": 32, "shift.permutations": 20, "promote.beat_baseline": False,
               "strategy.contrastive_max_rows": 0},
    "policies": ["driftfit", "never"],
    "sources": {
        "sst2": {"path": str(SHARED_DATA / "sst2" / "train.tsv"), "text": "sentence", "label": "label"},
        "amazon": {"path": str(SHARED_DATA / "sentiment_domains" / "amazon.tsv"), "header": False, "text": 0,
                   "label": 1},
    },
    "batches": [
        {"name": "b1", "take": {"sst2": 1.0}, "rows": 40, "test_rows": 20, "labels": {"0": "neg", "1": "pos"}},
        {"name": "b2", "take": {"sst2": 1.0}, "rows": 40, "test_rows": 20, "labels": {"0": "neg", "1": "pos"},
         "corrupt": "test_leak"},
        {"name": "b3", "take": {"sst2": 0.5, "amazon": 0.5}, "rows": 40, "test_rows": 20,
         "labels": {"0": "neg", "1": "pos"}},
    ],
}


def test_a_shrunk_stream_end_to_end_resumed_per_policy(tmp_path):
    from bench import stream

    spec_path = tmp_path / "stream.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    out = tmp_path / "out"

    first = stream.run(spec_path, out, only=["driftfit"])
    assert first["not_run"] == ["never"]

    # The batches: disjoint rows, labels renamed, the mixture as asked, the corruption in b2's training file.
    frames = {b: {s: pd.read_csv(out / "data" / b / f"{s}.csv") for s in ("train", "test")} for b in ("b1", "b2", "b3")}
    clean = [frames[b][s]["text"] for b in ("b1", "b3") for s in ("train", "test")] + [frames["b2"]["test"]["text"]]
    texts = pd.concat(clean)
    assert texts.is_unique, "a text was drawn twice"
    assert set(frames["b1"]["train"]["label"]) == {"neg", "pos"} and len(frames["b1"]["train"]) == 40
    leaked = set(frames["b2"]["train"]["text"]) & set(frames["b2"]["test"]["text"])
    assert len(leaked) == 20 // 3

    saved = json.loads((out / "policies" / "driftfit.json").read_text())
    b1, b2, b3 = saved["batches"]
    assert b1["accepted"] and b1["promoted"] and b1["champion_after"] == "v1", b1
    assert b1["served"] == "pretrained, zero-shot" and set(b1["near_future"]) == {"b1"}
    # the corrupted batch: rejected by validation (leakage), nothing changed in the registry or the memory
    assert b2["accepted"] is False and "leakage" in b2["rejected"] and b2["untouched"] is True
    # near future: v1 is scored on b3 before training on it, and on b1 (accepted), never on b2 (rejected)
    assert b3["champion_before"] == "v1" and set(b3["near_future"]) == {"b1", "b3"}
    assert 0 <= b3["near_future"]["b3"]["accuracy"] <= 1
    assert b3["compute_seconds"] > 0 and b3["strategy"] and b3["rule"]
    assert set(saved["final"]["scores"]) == {"b1", "b3"}

    # Resumed: the finished policy is not run again; the other one runs and the report holds both.
    second = stream.run(spec_path, out, only=["never"])
    assert json.loads((out / "policies" / "driftfit.json").read_text()) == saved
    assert second["not_run"] == []
    never = json.loads((out / "policies" / "never.json").read_text())
    assert [r.get("strategy") for r in never["batches"]] == ["full", None, "skip"]
    report = json.loads((out / "stream.json").read_text())
    assert report["targets"]["bad_batches"] == {"rejected": ["b2"], "expected": ["b2"], "met": True}
    assert report["policies"]["never"]["retrains"] == 1 and report["policies"]["never"]["promotions"] == 1
    d = report["policies"]["driftfit"]
    assert d["scored_batches"] == 2 and d["near_future_accuracy"] == pytest.approx(
        (b1["near_future"]["b1"]["accuracy"] + b3["near_future"]["b3"]["accuracy"]) / 2, abs=1e-4)
    md = (out / "stream.md").read_text()
    assert "| driftfit |" in md and "| never |" in md and "rejected" in md
    for png in report["plots"]:
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_a_bad_spec_is_one_clear_line(tmp_path):
    from bench import stream

    bad = {**SPEC, "batches": [*SPEC["batches"][:2], {**SPEC["batches"][2], "take": {"sst2": 0.5, "imdb": 0.5}}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert stream.main(["--spec", str(path), "--out", str(tmp_path / "out")]) == 2
    with pytest.raises(Exception, match=r"batch b3: unknown source\(s\) \['imdb'\]"):
        stream.load_spec(path)


def test_fixed_schedules():
    from bench.stream import fixed_strategy

    assert fixed_strategy("driftfit", 3, 4, True) is None
    assert [fixed_strategy("never", n, 4, n > 0) for n in range(3)] == ["full", "skip", "skip"]
    assert fixed_strategy("never", 2, 4, False) == "full"  # the gate refused the first model: train again
    assert [fixed_strategy("full_every_k", n, 2, True) for n in range(5)] == ["full", "skip", "full", "skip", "full"]
    assert fixed_strategy("ia3", 7, 4, True) == "ia3"


def test_a_serving_zero_shot_model_knows_only_the_labels_that_have_arrived(tmp_path):
    """Before a first champion the pretrained model serves zero-shot; scored on a batch whose labels no accepted
    batch had, it cannot know their names (they count as wrong), as any model the policy could have served."""
    from bench.stream import known_labels

    for name, labels in (("w1", ["neg", "pos", "pos"]), ("w2", ["pos", "neg"]), ("w3", ["Sports", "World"])):
        (tmp_path / name).mkdir()
        pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": labels}).to_csv(
            tmp_path / name / "train.csv", index=False)
    assert known_labels(tmp_path, []) == []          # the first batch: its own labels are the task (score's None)
    assert known_labels(tmp_path, ["w1", "w2"]) == ["neg", "pos"]
    assert known_labels(tmp_path, ["w1", "w3"]) == ["Sports", "World", "neg", "pos"]


def test_regressions_and_blocked_gains_are_judged_on_the_saved_answers():
    """The report's definitions on constructed answers: a promotion after which a past batch lost 30 of its 80 rows
    is a regression, one whose differences are noise is not; a rejected candidate with a real gain that forgot
    nothing is a gain blocked, one that forgot a batch is not."""
    from bench.stats import encode
    from bench.stream import summarise
    from driftfit.config import PromoteConfig
    from tests.test_gate import batch, flip

    labels = ["neg", "pos"]
    truth, champion = batch(80, 0.85)
    noisy, forgot = flip(truth, champion, 4, 4), flip(truth, champion, 30, 0)
    new_truth, new_champion = batch(80, 0.5, seed=1)
    _, new_learnt = batch(80, 0.9, seed=1)
    code = {name: encode(list(v), labels) for name, v in (("truth", truth), ("champion", champion), ("noisy", noisy),
                                                          ("forgot", forgot), ("new", new_truth),
                                                          ("new_champion", new_champion), ("new_learnt", new_learnt))}
    truths = {"w1": code["truth"], "w2": code["new"], "w3": code["new"]}

    def scores(answers: str) -> dict:
        return {"accuracy": 0.0, "macro_f1": 0.0, "answers": answers}

    def week(name, promoted, before, past_cand, seconds=1.0):
        return {"batch": name, "accepted": True, "trained": True, "promoted": promoted, "seconds": {"train": seconds},
                "near_future": {"w1": scores(code[before]), name: scores(code["new_champion"])},
                "gate": {"test": {"candidate": code["new_learnt"], "champion": code["new_champion"],
                                  "baseline": code["new_champion"]},
                         "w1": {"candidate": code[past_cand], "champion": code["champion"]}}}

    gate = PromoteConfig(resamples=1000)
    # w2 promoted a model that forgot w1 (scored so by w3's near future); w3 promoted one within noise
    saved = {"batches": [week("w2", True, "champion", "forgot"), week("w3", True, "forgot", "noisy")],
             "final": {"scores": {"w1": scores(code["noisy"])}}}
    s = summarise(saved, gate, truths)
    assert [(r["batch"], r["past_batch"]) for r in s["promoted_regressions"]] == [("w2", "w1")]
    assert s["promoted_regressions"][0]["high"] < -5 and s["gains_blocked"] == []
    # rejected: a real gain that forgot nothing is blocked; one that forgot w1 is not a gain blocked
    saved = {"batches": [week("w2", False, "champion", "noisy"), week("w3", False, "champion", "forgot")]}
    s = summarise(saved, gate, truths)
    assert [g["batch"] for g in s["gains_blocked"]] == ["w2"] and s["gains_blocked"][0]["low"] > 0
    assert s["promoted_regressions"] == []
