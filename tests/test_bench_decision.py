"""The decision benchmark: its statistics on known cases, its scenario files (the suite's promises checked on the
real rows), and a tiny real scenario (chatterbot English -> Chinese) through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import stats
from bench.decision import (BenchSource, cap_per_class, chatterbot_frame, chatterbot_languages, load_scenarios,
                            load_source, scenario_data)
from driftfit.errors import ConfigError
from tests.conftest import ROOT, SHARED_DATA, write_params

BENCH = ROOT / "bench"
SUITE = {"fit": BENCH / "scenarios-fit.yaml", "eval": BENCH / "scenarios-eval.yaml"}
LARGE = {"fit": BENCH / "scenarios-large-fit.yaml", "eval": BENCH / "scenarios-large-eval.yaml"}
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data (the workplace's real data) absent")


# ---- statistics on known cases --------------------------------------------------------------

def test_t_interval_on_known_numbers():
    mean, low, high = stats.t_interval([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2) = 4.3027
    assert mean == 2.0 and low == pytest.approx(2 - 4.302653 / 3 ** 0.5, abs=1e-5)
    assert high == pytest.approx(2 + 4.302653 / 3 ** 0.5, abs=1e-5)
    assert stats.t_interval([0.8, 0.8, 0.8]) == (pytest.approx(0.8), pytest.approx(0.8), pytest.approx(0.8))
    assert stats.t_interval([0.7]) == (0.7, None, None)  # one seed: no interval


def test_bootstrap_ties_on_known_cases():
    rng = np.random.default_rng(1)
    same = rng.integers(0, 2, 500).astype(float)
    assert stats.tied(same, same)                                    # identical predictions

    right = np.ones(500)
    wrong_30 = np.ones(500)
    wrong_30[rng.choice(500, 150, replace=False)] = 0               # wrong on 30% of 500 rows
    diff, low, high = stats.paired_bootstrap(right, wrong_30)
    assert diff == pytest.approx(0.3) and low > 0.2 and not stats.tied(right, wrong_30)

    one_off = right.copy()
    one_off[17] = 0                                                  # a 1-row difference in 500
    assert stats.tied(right, one_off)
    assert stats.paired_bootstrap(right, one_off) == stats.paired_bootstrap(right, one_off)  # seeded


def test_predictions_round_trip_as_one_character_per_row():
    labels = [f"c{i}" for i in range(40)]
    rows = ["c0", "c39", "c12", "c0"]
    coded = stats.encode(rows, labels)
    assert len(coded) == 4 and [labels[i] for i in stats.decode(coded)] == rows


def _scenario(name, truth, preds, seconds, choice, selector_seconds=1.0):
    """A hand-made saved result: what judge() reads."""
    labels = sorted(set(truth))
    return {"name": name, "choice": choice, "selector_seconds": selector_seconds, "labels": labels,
            "test_labels": stats.encode(truth, labels),
            "strategies": {n: {"predictions": [stats.encode(p, labels) for p in runs],
                               "seconds": seconds[n] if isinstance(seconds[n], dict) else {"mean": seconds[n]}}
                           for n, runs in preds.items()}}


def _flip(truth, rows):
    return ["b" if i in rows and t == "a" else "a" if i in rows else t for i, t in enumerate(truth)]


def test_verdict_and_headline_on_hand_made_results():
    truth = ["a", "b"] * 250
    # Scenario 1: full is right everywhere; head misses one row (tied) on both seeds; skip misses 30% (not tied).
    one = _scenario("one", truth, {
        "full": [truth, truth], "head": [_flip(truth, {3}), _flip(truth, {3})],
        "skip": [_flip(truth, set(range(150)))]}, {"full": 50.0, "head": 5.0, "skip": 0.0}, choice="full")
    v1 = stats.judge(one)
    # balanced labels: head's macro-F1 is (500/501 + 498/499) / 2 = 0.998, skip's 0.7 (both labels 350/500)
    assert v1["metric"] == "macro_f1" and v1["best"] == "full" and v1["cheapest_tied"] == "head"
    assert v1["strategies"]["head"]["tied"] and v1["strategies"]["head"]["regret_points"] == 0.2
    assert not v1["strategies"]["skip"]["tied"] and v1["strategies"]["skip"]["regret_points"] == 30.0
    assert v1["strategies"]["skip"]["accuracy"] == 0.7 and v1["strategies"]["skip"]["accuracy_regret_points"] == 30.0
    # the selector's cost counts its selection: (1 s + 50 s) / head's 5 s; training alone would be 10x
    assert v1["choice"] == {"strategy": "full", "regret_points": 0.0, "accuracy_regret_points": 0.0, "tied": True,
                            "tied_or_within_1": True, "cost_vs_cheapest_tied": 10.2,
                            "training_cost_vs_cheapest_tied": 10.0}
    assert v1["exhaustive_seconds"] == 55.0 and v1["selector_compute_seconds"] == 51.0

    # Scenario 2 (no champion): head is best; full misses 10% on one seed and 2% on the other (mean 6 points, not
    # tied); the choice, head, is the cheapest tied (the 1 s floor: 0.5 s counts as 1 s).
    two = _scenario("two", truth, {
        "full": [_flip(truth, set(range(50))), _flip(truth, set(range(10)))], "head": [truth, truth]},
        {"full": 40.0, "head": 0.5}, choice="head", selector_seconds=2.0)
    v2 = stats.judge(two)
    assert v2["best"] == "head" and v2["cheapest_tied"] == "head"
    assert v2["strategies"]["full"]["regret_points"] == 6.0 and not v2["strategies"]["full"]["tied"]
    assert v2["choice"]["cost_vs_cheapest_tied"] == 2.5 and v2["choice"]["training_cost_vs_cheapest_tied"] == 1.0

    h = stats.headline([v1, v2])
    sel, head, full, skip = (h["policies"][k] for k in ("selector", "always head", "always full", "always skip"))
    assert sel == {"scenarios": 2, "mean_regret_points": 0.0, "mean_accuracy_regret_points": 0.0, "share_tied": 1.0,
                   "share_tied_or_within_1": 1.0, "compute_seconds": 53.5, "median_cost_vs_cheapest_tied": 6.35}
    assert head["mean_regret_points"] == 0.1 and head["compute_seconds"] == 5.5 and head["share_tied"] == 1.0
    assert full["mean_regret_points"] == 3.0 and full["share_tied"] == 0.5
    assert skip["scenarios"] == 1                                     # skip ran only where there was a champion
    assert h["best_fixed_policy"] == "always head" and h["exhaustive_seconds"] == 95.5
    # targets: tied-or-within-1 100% (>= 90%), mean regret 0.0 not 1 point below always head's 0.1, compute
    # 53.5 / 95.5 (> 20%), median cost 6.35x the cheapest tied (> 2x)
    assert [t["met"] for t in h["targets"]] == [True, False, False, False]
    assert h["targets"][2]["value"] == round(53.5 / 95.5, 4)


def test_macro_f1_judges_where_accuracy_rewards_the_majority():
    """80 rows of 'a', 20 of 'b': always answering 'a' scores 0.80 accuracy but macro-F1 (160/180 + 0) / 2 = 0.444;
    a model right on 60 'a' and 18 'b' scores 0.78 accuracy and macro-F1 (120/142 + 36/58) / 2 = 0.733."""
    truth = ["a"] * 80 + ["b"] * 20
    balanced = ["a"] * 60 + ["b"] * 20 + ["b"] * 18 + ["a"] * 2
    result = _scenario("imbalanced", truth, {"majority": [["a"] * 100], "balanced": [balanced]},
                       {"majority": 0.0, "balanced": 3.0}, choice="majority")
    by_f1, by_accuracy = stats.judge(result), stats.judge(result, metric="accuracy")
    assert by_f1["best"] == "balanced" and by_accuracy["best"] == "majority"
    assert by_f1["strategies"]["majority"]["regret_points"] == round(100 * (120 / 142 + 36 / 58 - 160 / 180) / 2, 2)
    assert not by_f1["strategies"]["majority"]["tied"] and not by_f1["choice"]["tied_or_within_1"]
    assert by_f1["strategies"]["majority"]["accuracy_regret_points"] == 0.0  # the other metric, beside it
    assert by_accuracy["strategies"]["balanced"]["regret_points"] == 2.0


def test_a_strategy_on_frozen_features_is_charged_the_seed_that_computed_them():
    """The benchmark shares a strategy's frozen features between its seeds: the first seed computes them (43 s),
    the later ones find them cached (5 s); every run is charged the 43 s a pipeline run would pay. A strategy that
    trains the encoder keeps its mean."""
    truth = ["a", "b"] * 50
    result = _scenario("cache", truth, {"head": [truth] * 3, "lora": [truth] * 3},
                       {"head": {"mean": 17.67, "per_seed": [43.0, 5.0, 5.0]},
                        "lora": {"mean": 30.0, "per_seed": [29.0, 31.0, 30.0]}}, choice="head")
    v = stats.judge(result)
    assert v["strategies"]["head"]["seconds"] == 43.0 and v["strategies"]["lora"]["seconds"] == 30.0
    assert v["cheapest_tied"] == "lora" and v["exhaustive_seconds"] == 73.0


# ---- scenario files -------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(p for p in BENCH.glob("scenarios*.yaml") if p.name != "scenarios-image.yaml"),
                         ids=lambda p: p.name)  # the image file has its own schema (tests/test_bench_image_decision.py)
def test_shipped_scenario_files_parse(path):
    assert load_scenarios(path).scenarios


def test_suite_halves_split_by_family_and_cover_the_issue():
    halves = {k: load_scenarios(p) for k, p in SUITE.items()}
    assert sum(len(h.scenarios) for h in halves.values()) >= 24
    families = {k: {s.family for s in h.scenarios} for k, h in halves.items()}
    assert not families["fit"] & families["eval"]                    # a family lives in one half
    names = [s.name for h in halves.values() for s in h.scenarios]
    assert len(names) == len(set(names))
    for half in halves.values():
        assert half.seeds >= 3 and half.budget == halves["fit"].budget
        assert {s.shift for s in half.scenarios} == {"same_domain", "near_domain", "far_domain", "new_task",
                                                      "new_language"}
        assert {8, 32, 128} <= {s.train_per_class for s in half.scenarios}
        assert any(s.train_per_class is None and s.name.endswith("-1k") for s in half.scenarios)
        assert any(s.reference is None for s in half.scenarios) and any(s.reference for s in half.scenarios)
    used = {lang for h in halves.values() for s in h.scenarios for src in (s.train, s.reference, s.test)
            if src is not None and src.path.startswith("chatterbot:") for lang in src.path[11:].split(",")}
    assert used == set(chatterbot_languages())                      # every chatterbot-corpus language


def test_the_large_tier_splits_by_family_with_ten_scenarios_or_more():
    fit, ev = (load_scenarios(path) for path in LARGE.values())
    assert len(fit.scenarios) + len(ev.scenarios) >= 10
    assert {s.family for s in fit.scenarios}.isdisjoint({s.family for s in ev.scenarios})
    for half in (fit, ev):  # budgets that fit the size; every strategy that can win there, contrastive and scratch
        assert half.budget.max_seq_len == 128 and half.budget.epochs >= 3
        assert {"head", "contrastive", "lora", "full", "scratch"} <= set(half.strategies)
        assert any(s.shift == "new_language" for s in half.scenarios)


@needs_data
def test_suite_shares_no_training_rows_and_keeps_its_sizes():
    """On the real rows: no two scenarios (both halves, the large tier's two and the fresh check) share a row any
    model trains on (incoming train + val, and references), no scenario tests on a row it or its champion trained
    on; sizes as the names say (the large tier: 2,000+ training rows, 2,000+ test rows)."""
    seen = {}
    for half in (*SUITE.values(), BENCH / "scenarios-fresh.yaml", *LARGE.values()):
        spec = load_scenarios(half)
        if half in LARGE.values():
            assert {sc.name for sc in spec.scenarios}.isdisjoint(seen), half.name
        for sc in spec.scenarios:
            d = scenario_data(sc, spec.budget, seed=13)
            trains = set(d["train"]["text"]) | set(d["val"]["text"])
            ref = set() if d["reference"] is None else set(d["reference"]["text"])
            assert not (trains | ref) & set(d["test"]["text"]), sc.name
            seen[sc.name] = (trains, ref)
            per_class = d["train"]["label"].value_counts()
            if sc.train_per_class and not sc.train.path.startswith("chatterbot:"):
                assert (per_class == sc.train_per_class).all(), sc.name
            if sc.name.endswith("-1k"):
                assert len(d["train"]) >= 1000, sc.name
            if half in LARGE.values():
                assert len(d["train"]) + len(d["val"]) >= 2000 and len(d["test"]) >= 2000, sc.name
            elif not sc.train.path.startswith("chatterbot:"):
                assert len(d["test"]) >= 450, sc.name                  # ~500 where the data allows
    for a, (trains_a, _) in seen.items():
        for b, (trains_b, ref_b) in seen.items():
            if a != b:
                assert not trains_a & trains_b, (a, b)
                assert not trains_a & ref_b, (a, b)


@pytest.mark.parametrize("text, match", [
    ("scenarios: []", "scenarios"),
    ("budget: {epochs: 0}\nscenarios: [{name: a, family: f, train: {path: x.csv}}]", "budget.epochs"),
    ("scenarios: [{name: a, family: f, train: {path: x.csv}, colour: red}]", "colour"),
    ("strategies: [lora, magic]\nscenarios: [{name: a, family: f, train: {path: x.csv}}]", "strategies"),
    ("scenarios: [{name: a, family: f, train: {path: x.csv}}, {name: a, family: f, train: {path: y.csv}}]",
     "unique"),
    ("scenarios: [{name: a, train: {path: x.csv}}]", "missing required key 'scenarios.0.family'"),
    ("seeds: 0\nscenarios: [{name: a, family: f, train: {path: x.csv}}]", "seeds"),
    ("scenarios: [{name: a, family: f, shift: sideways, train: {path: x.csv}}]", "shift"),
    ("scenarios: [{name: a, family: f, train: {path: x.csv, slice: [0.5, 0.2]}}]", "slice"),
    ("scenarios: [{name: a, family: f, train: {path: x.csv, slice: [0, 1.5]}}]", "slice"),
    ("scenarios: [{name: a, family: f, train: {path: x.csv, label_map: {}}}]", "label_map"),
    ("scenarios: [{name: a, family: f, train: {path: 'chatterbot:english', label: topic}}]", "chatterbot"),
])
def test_bad_scenario_files_name_the_key(tmp_path, text, match):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_scenarios(path)


def test_slices_of_one_file_are_disjoint_and_cover_it(tmp_path):
    rows = [f"review number {i} {'good' if i % 2 else 'bad'}" for i in range(400)]
    path = tmp_path / "rows.csv"
    path.write_text("text,label\n" + "".join(f"{t},{'pos' if i % 2 else 'neg'}\n" for i, t in enumerate(rows))
                    + f"{rows[0]},neg\n")  # a repeated row is dropped
    part = {k: load_source(BenchSource(path=str(path), slice=s), seed=0)
            for k, s in (("a", (0, 0.3)), ("b", (0.3, 1)))}
    a, b = set(part["a"]["text"]), set(part["b"]["text"])
    assert not a & b and a | b == set(rows) and 80 < len(a) < 160
    again = load_source(BenchSource(path=str(path), slice=(0, 0.3)), seed=5)
    assert set(again["text"]) == a                                   # a slice does not depend on the seed
    sample = load_source(BenchSource(path=str(path), slice=(0, 0.3), sample=20, label_map={"pos": "P"}), seed=0)
    assert len(sample) == 20 and set(sample["text"]) <= a and set(sample["label"]) == {"P"}


def test_a_source_keeps_texts_by_word_count(tmp_path):
    path = tmp_path / "rows.csv"
    texts = ["bad", "not good at all", "a long and rather tedious film about nothing much", "fine fine"]
    path.write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(texts)))
    words = lambda w: list(load_source(BenchSource(path=str(path), words=w), seed=0)["text"])
    assert words((None, 2)) == ["bad", "fine fine"]
    assert words((3, None)) == texts[1:3]
    assert words((4, 4)) == ["not good at all"]
    with pytest.raises(ValueError, match="words must be"):
        BenchSource(path=str(path), words=(5, 2))


def test_chatterbot_sources_by_category_and_by_language():
    zh = chatterbot_frame("chinese")
    assert len(zh) > 300 and zh["text"].is_unique and zh["label"].nunique() > 5
    capped = cap_per_class(zh, None, 3, seed=0)
    assert capped.groupby("label").size().max() == 3
    assert len(cap_per_class(zh, 50, None, seed=0)) == pytest.approx(50, abs=zh["label"].nunique())
    ids = load_source(BenchSource(path="chatterbot:hebrew,russian", label="language"), seed=0)
    assert set(ids["label"]) == {"hebrew", "russian"} and ids["text"].is_unique
    english = set(load_source(BenchSource(path="chatterbot:english"), seed=0)["text"])
    assert not english & set(ids["text"])                            # a text in two languages is in neither


# ---- a tiny real run, through the CLI -------------------------------------------------------

# full is there because the rules' runner-up here is full (an English tokenizer on Chinese) and the probe below
# tries it: whatever the probe picks, the oracle has trained it.
TINY = """# a tiny decision benchmark: real chatterbot-corpus text, five strategies, two seeds, one step or so each
budget: {epochs: 0.3, max_train_examples: 60, max_seq_len: 32, batch_size: 16}
seeds: 2
strategies: [skip, zero_shot, head, lora, full]
scenarios:
  - name: en-to-zh
    family: tiny
    shift: new_language
    reference: {path: "chatterbot:english", sample: 120}
    train: {path: "chatterbot:chinese", sample: 150}
    test_fraction: 0.3
"""


def test_bench_trains_every_strategy_per_seed_and_judges_ties(tmp_path, monkeypatch):
    params = write_params(tmp_path)
    scenarios = tmp_path / "tiny.yaml"
    scenarios.write_text(TINY)
    out = tmp_path / "results"
    driftfit = str(Path(sys.executable).parent / "driftfit")
    proc = subprocess.run([driftfit, "bench", "decision", "--scenarios", str(scenarios), "--out", str(out),
                           "--params", str(params)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((out / "scenarios" / "en-to-zh.json").read_text())
    assert saved["seeds"] == [13, 14] and saved["format"] == 2 and saved["family"] == "tiny"
    assert len(saved["test_labels"]) == saved["rows"]["test"]
    head = saved["strategies"]["head"]
    assert len(head["accuracy"]["per_seed"]) == 2 and len(head["predictions"]) == 2 and not head["deterministic"]
    assert all(len(p) == saved["rows"]["test"] for p in head["predictions"])
    # trained as the pipeline trains it: the head replays every reference row (train.replay_all_for)
    assert head["train_rows"] == saved["rows"]["train"] + saved["rows"]["reference"]
    skip = saved["strategies"]["skip"]
    assert skip["deterministic"] and len(skip["predictions"]) == 1 and skip["accuracy"]["ci95"][0] == \
        skip["accuracy"]["ci95"][1]
    assert saved["shift"]["unk_rate"] > 0.05                        # an English tokenizer on Chinese

    result = json.loads((out / "decision.json").read_text())
    assert result["not_run"] == [] and result["stale"] == []
    assert "predictions" not in result["results"][0]["strategies"]["head"]  # they stay in scenarios/<name>.json
    (v,) = result["verdicts"]
    assert set(v["strategies"]) == {"skip", "zero_shot", "head", "lora", "full"} and saved["choice"] in v["strategies"]
    # the verdict against the saved predictions, scored here by hand (one character per row, as the labels):
    # macro-F1 over the true labels, each seed's averaged; the head (frozen features) charged its first seed
    from sklearn.metrics import f1_score

    truth = list(saved["test_labels"])
    macro = {n: float(np.mean([f1_score(truth, list(run), labels=sorted(set(truth)), average="macro",
                                        zero_division=0) for run in s["predictions"]]))
             for n, s in saved["strategies"].items()}
    accuracy = {n: float(np.mean([[a == b for a, b in zip(run, truth, strict=True)] for run in s["predictions"]]))
                for n, s in saved["strategies"].items()}
    seconds = {n: s["seconds"]["per_seed"][0] if n == "head" else s["seconds"]["mean"]
               for n, s in saved["strategies"].items()}
    top = max(macro.values())
    assert v["metric"] == "macro_f1"
    assert v["best"] == min((n for n in macro if macro[n] == top), key=seconds.get)  # ties: the cheaper
    for name, verdict in v["strategies"].items():
        assert verdict["macro_f1"] == pytest.approx(macro[name], abs=1e-4), name
        assert verdict["accuracy"] == pytest.approx(accuracy[name], abs=1e-4), name
        assert verdict["seconds"] == pytest.approx(seconds[name], abs=0.01), name
        assert verdict["regret_points"] == pytest.approx(100 * (top - macro[name]), abs=0.01), name
    tied = [n for n, verdict in v["strategies"].items() if verdict["tied"]]
    assert v["cheapest_tied"] == min(tied, key=seconds.get) and v["choice"]["strategy"] == saved["choice"]
    assert set(result["headline"]["policies"]) >= {"selector", "always head", "always skip", "always zero_shot"}
    md = (out / "decision.md").read_text()
    assert "en-to-zh" in md and "fixed policy" in md and "cheapest tied" in md and " ± " in md

    # re-scoring reads the same saved files, no training
    proc = subprocess.run([driftfit, "bench", "decision", "--rescore", "--scenarios", str(scenarios), "--out",
                           str(out), "--params", str(params)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rescored = json.loads(proc.stdout.strip().splitlines()[-1])
    # the same rules on the same measures choose what the run chose, which the oracle trained: scored, same regret
    assert rescored["scenarios"] == 1 and rescored["untrained"] == 0 and rescored["stale"] == 0
    assert rescored["mean_regret_points"] == v["choice"]["regret_points"]
    assert "in-sample" in (out / "decision-rescored.md").read_text()

    # resuming leaves out what is saved: nothing is trained again, the saved result stays as it was
    before = (out / "scenarios" / "en-to-zh.json").stat().st_mtime_ns
    proc = subprocess.run([driftfit, "bench", "decision", "--resume", "--scenarios", str(scenarios), "--out",
                           str(out), "--params", str(params)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["scenarios"] == 1 and "-> accuracy" not in proc.stderr
    assert (out / "scenarios" / "en-to-zh.json").stat().st_mtime_ns == before

    # probe mode judged against the saved oracle: the probe trains for real, the oracle is not retrained
    from bench import probe_rescore

    (tmp_path / "probe").mkdir()
    probe_params = write_params(tmp_path / "probe", {"strategy.probe_max_steps": 1,
                                                     "strategy.probe_candidates": ["head", "lora"]})
    total = probe_rescore.run(str(scenarios), str(out), None, str(probe_params))
    row = json.loads((out / "probe" / "en-to-zh.json").read_text())
    assert row["rules"] == saved["choice"] and row["rounds"] and row["rounds"][0]["steps"] == 1
    # it tried the rules' pick and runner-up (the same on fresh measures) and the param's, all in the oracle (TINY)
    tried = set(row["rounds"][0]["val_accuracy"])
    assert row["rules_on_fresh_measures"] == saved["choice"] and tried == {saved["choice"], saved["runner_up"],
                                                                           "head", "lora"}
    assert tried <= set(saved["strategies"]), "add the probe's candidates to TINY's strategies"
    assert row["probe"] in tried and row["probe_seconds"] > 0
    assert row["rules_verdict"]["regret_points"] == v["strategies"][row["rules"]]["regret_points"]
    assert row["probe_verdict"]["regret_points"] == v["strategies"][row["probe"]]["regret_points"]
    # the probe's compute: its own seconds on top of the pick's training (as charged) and the selector's measures
    compute = saved["selector_seconds"] + v["strategies"][row["probe"]]["seconds"] + row["probe_seconds"]
    assert row["probe_verdict"]["compute_seconds"] == pytest.approx(compute, abs=0.02)
    assert row["probe_verdict"]["cost_vs_cheapest_tied"] == pytest.approx(
        max(compute, 1.0) / max(v["strategies"][v["cheapest_tied"]]["seconds"], 1.0), abs=0.01)
    assert total["probe"]["scenarios"] == total["rules"]["scenarios"] == 1
    assert "| en-to-zh |" in (out / "probe_rescore.md").read_text()
    before = (out / "probe" / "en-to-zh.json").stat().st_mtime_ns
    probe_rescore.run(str(scenarios), str(out), None, str(probe_params))  # resumes: nothing probed again
    assert (out / "probe" / "en-to-zh.json").stat().st_mtime_ns == before
    probe_rescore.run(str(scenarios), str(out), None, str(probe_params), "pair",  # another setting, its own files
                      {"strategy.probe_candidates": ["head"]})
    assert json.loads((out / "pair" / "en-to-zh.json").read_text())["candidates_param"] == ["head"]
    assert '--set strategy.probe_candidates=["head"] --name pair' in (out / "pair_rescore.md").read_text()

    # --redo retrains one strategy (after a change to how it trains) and keeps every other figure
    def redo(*names):
        return subprocess.run([driftfit, "bench", "decision", "--scenarios", str(scenarios), "--out", str(out),
                               "--params", str(params), *[a for n in names for a in ("--redo", n)]],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)

    from bench import decision

    monkeypatch.setattr(decision, "YARDSTICK_FLOOR_SECONDS", 0.0)  # the tiny runs take under a second
    decision.redo(scenarios, out, ["head"], params)
    again = json.loads((out / "scenarios" / "en-to-zh.json").read_text())
    assert {n: again["strategies"][n] for n in ("skip", "zero_shot", "lora")} == \
        {n: saved["strategies"][n] for n in ("skip", "zero_shot", "lora")}
    assert len(again["strategies"]["head"]["predictions"]) == 2
    (done,) = again["redone"]
    assert done["strategies"] == ["head"] and done["learning_rates"]["adapter_learning_rate"] > 0
    # the yardstick: lora's first seed again, as accurate as saved; its time ratio scales the head's seconds
    timing = done["timing"]
    assert timing["strategy"] == "lora" and timing["seed"] == 13 and timing["reproduced"] is True
    assert timing["factor"] == pytest.approx(timing["saved_seconds"] / timing["seconds_now"], rel=1e-3)
    head = again["strategies"]["head"]
    assert head["seconds"]["mean"] == pytest.approx(head["seconds_measured"]["mean"] * timing["factor"], abs=0.02)
    assert "Retrained later: head" in (out / "decision.md").read_text()
    before = (out / "scenarios" / "en-to-zh.json").stat().st_mtime_ns
    assert redo("head").returncode == 0 and (out / "scenarios" / "en-to-zh.json").stat().st_mtime_ns == before
    # --redo-champion: a result whose champion was trained the old way gets it again, with the selector and
    # the strategies that read the champion (skip); the others keep their figures, and a second run does nothing
    again = json.loads((out / "scenarios" / "en-to-zh.json").read_text())
    assert again["champion_fit"] == decision.CHAMPION_FIT
    del again["champion_fit"]
    again["strategies"]["skip"]["accuracy"]["mean"] = -1.0        # what the first run's champion scored, say
    (out / "scenarios" / "en-to-zh.json").write_text(json.dumps(again))
    decision.redo_champion(scenarios, out, params)
    redone = json.loads((out / "scenarios" / "en-to-zh.json").read_text())
    assert redone["champion_fit"] == decision.CHAMPION_FIT
    assert redone["strategies"]["skip"]["accuracy"] == saved["strategies"]["skip"]["accuracy"]  # deterministic
    assert {n: redone["strategies"][n] for n in ("zero_shot", "lora")} == \
        {n: again["strategies"][n] for n in ("zero_shot", "lora")}
    last = redone["redone"][-1]
    assert last["strategies"][:2] == ["champion", "skip"] and last["before"]["choice"] == again["choice"]
    assert redone["choice"] in redone["strategies"] and redone["selector_seconds"] > 0
    assert "the selector ran again" in (out / "decision.md").read_text()
    before = (out / "scenarios" / "en-to-zh.json").stat().st_mtime_ns
    decision.redo_champion(scenarios, out, params)
    assert (out / "scenarios" / "en-to-zh.json").stat().st_mtime_ns == before
    proc = redo("scratch")                                         # its tokenizer comes from the shift report
    assert proc.returncode == 2 and "--redo scratch" in proc.stderr
    first = again["test_labels"][0]                                # the data changed under the saved result
    again["test_labels"] = ("1" if first == "0" else "0") + again["test_labels"][1:]
    again["redone"] = []
    (out / "scenarios" / "en-to-zh.json").write_text(json.dumps(again))
    proc = redo("head")
    assert proc.returncode == 2 and "no longer the saved ones" in proc.stderr


def test_the_champion_chooses_its_regularisation_on_held_out_reference_rows(tmp_path, caplog):
    """The benchmark's champion is trained as the pipeline would: C chosen on validation rows (a held-out fifth
    of the reference, then refit on all), not the default C that an empty validation split falls back to."""
    import logging

    from bench.decision import _champion, load_source
    from driftfit.config import load_params
    from driftfit.training.head_fit import DEFAULT_C
    from driftfit.modalities.text.model import load_classifier

    params = load_params(write_params(tmp_path, {"train.head_c_grid": [1e-4, 100.0]}))
    reference = load_source(BenchSource(path="chatterbot:english", sample=400), seed=0)
    with caplog.at_level(logging.INFO, logger="bench.decision"):
        folder = _champion(reference, reference.iloc[:0], params, tmp_path)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("champion:"))
    assert f"a head on {len(reference)} reference rows" in line and "held-out replayed rows" in line
    assert "default C" not in line and f"C = {DEFAULT_C} " not in line  # chosen from the grid, not fallen back
    assert set(load_classifier(folder)[2]) == set(reference["label"])


def test_rescore_reapplies_the_current_policy_to_the_saved_measures(tmp_path):
    from bench.decision import FORMAT, rescore
    from driftfit.io import write_json

    scenarios = tmp_path / "tiny.yaml"
    scenarios.write_text(TINY)
    truth = ["a", "b"] * 50
    saved = {**_scenario("en-to-zh", truth, {
        "head": [_flip(truth, set(range(50)))], "ia3": [_flip(truth, set(range(45)))],
        "zero_shot": [_flip(truth, set(range(40)))]}, {"head": 1.0, "ia3": 2.0, "zero_shot": 0.1}, choice="head"),
        "format": FORMAT, "rule": "default", "rows": {"train": 32},
        "measures": {"champion_exists": False, "new_labels": [], "mmd2": None, "p_value": None, "unk_rate": 0.0,
                     "tokens_per_word": 1.2, "rows": 32, "min_per_class": 16, "probe_accuracy": 0.6, "probe_val_rows": 40,
                     "zero_shot_accuracy": 0.95, "zero_shot_val_rows": 40, "champion_incoming_accuracy": None}}
    write_json(tmp_path / "scenarios" / "en-to-zh.json", saved)
    # ran with older rules (default -> head); today's rules on the same measures: the names suffice -> zero_shot
    summary = rescore(tmp_path, scenarios, write_params(tmp_path))
    assert summary["scenarios"] == 1 and summary["mean_regret_points"] == 0.0
    assert "| en-to-zh | default | head (10.00, no) | zero_shot (0.00, yes) |" in \
        (tmp_path / "decision-rescored.md").read_text()
    # with learned rules named in the params, the tree's leaf is the choice
    (tmp_path / "rules.json").write_text(json.dumps({"format": 1, "kind": "driftfit.learned_rules",
                                                     "tree": {"strategy": "ia3", "counts": {"ia3": 3}}}))
    summary = rescore(tmp_path, scenarios, write_params(tmp_path, {"strategy.learned_rules": str(tmp_path / "rules.json")}))
    assert summary["mean_regret_points"] == 5.0
    assert "in-sample" in (tmp_path / "decision-rescored.md").read_text()
