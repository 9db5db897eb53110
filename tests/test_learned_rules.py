"""Learned selection rules: the file's loading and its clear errors, the choice and its explanation in words,
the selector with and without them, and bench.learn_rules fitting a known rule from hand-made results."""

from __future__ import annotations

import json
import re

import pytest

from bench import learn_rules
from driftfit.pipeline import runner
from driftfit.policy import learned as learned_rules
from driftfit.policy import rules as strategy
from driftfit.config import StrategyConfig
from driftfit.errors import ConfigError
from driftfit.io import read_json, write_json
from tests.conftest import ROOT
from tests.test_bench_decision import _flip, _scenario
from tests.test_strategy import SKIPPABLE, report

TREE = {"format": 1, "kind": "driftfit.learned_rules",
        "fitted_on": {"scenarios": "bench/scenarios-fit.yaml", "count": 12},
        "tree": {"feature": "min_per_class", "at_most": 48.0,
                 "then": {"strategy": "head", "counts": {"head": 7, "ia3": 1}},
                 "else": {"feature": "probe_gain", "at_most": 0.05,
                          "then": {"strategy": "ensemble", "counts": {"ensemble": 2}},
                          "else": {"strategy": "full", "counts": {"full": 1, "lora": 1}}}}}


def write_tree(tmp_path, tree=TREE, name="rules.json"):
    path = tmp_path / name
    path.write_text(json.dumps(tree))
    return path


def test_the_tree_decides_and_says_why_in_words(tmp_path):
    rules = learned_rules.load(write_tree(tmp_path))
    leaf = learned_rules.decide(rules, {"min_per_class": 32, "rows": 64})
    assert leaf == {"strategy": "head", "runner_up": "ia3", "path": ["min_per_class 32 <= 48"],
                    "counts": {"head": 7, "ia3": 1}}
    assert learned_rules.explain(rules, leaf) == (
        "Learned rules (bench/scenarios-fit.yaml, 12 scenarios): min_per_class 32 <= 48 -> head; 7 of the 8 "
        "fitting scenarios there had it as their cheapest strategy tied with the best.")
    # probe_gain: the probe's accuracy minus the champion's; without a champion, the probe's accuracy itself
    assert learned_rules.decide(rules, {"min_per_class": 200, "probe_accuracy": 0.82, "champion_exists": True,
                                        "champion_incoming_accuracy": 0.8})["strategy"] == "ensemble"
    far = learned_rules.decide(rules, {"min_per_class": 200, "probe_accuracy": 0.82})
    assert far["strategy"] == "full" and far["path"] == ["min_per_class 200 > 48", "probe_gain 0.82 > 0.05"]
    assert far["runner_up"] == "lora"
    # a measure the report lacks takes the fill FEATURES documents (no probe: 0)
    assert learned_rules.features({"min_per_class": 200})["probe_gain"] == 0.0
    assert learned_rules.features({})["mmd2"] == 1.0  # no reference: as far as it gets
    assert learned_rules.to_text(rules).splitlines() == [
        "if min_per_class <= 48:", "    -> head   (head 7, ia3 1)", "else:", "    if probe_gain <= 0.05:",
        "        -> ensemble   (ensemble 2)", "    else:", "        -> full   (full 1, lora 1)"]


@pytest.mark.parametrize("change, message", [
    (lambda t: t.update(kind="something"), r"not a learned-rules file \(expected \"kind\": \"driftfit.learned_rules\""),
    (lambda t: t.update(format=7), r"format 7, expected 1: fit them again"),
    (lambda t: t["tree"]["else"].update(feature="vibes"), r"tree.else: feature = 'vibes': expected one of rows, "),
    (lambda t: t["tree"]["else"].update(at_most=float("inf")), r"tree.else: at_most = inf: expected a finite number"),
    (lambda t: t["tree"]["else"]["then"].update(strategy="skip"), r"tree.else.then: strategy = 'skip': a learned rule "
                                                                 r"picks what to train"),
    (lambda t: t["tree"]["then"].update(strategy="magic"), r"tree.then: strategy = 'magic': expected one of skip, "),
    (lambda t: t["tree"]["else"].pop("then"), r"tree.else: expected a leaf \(strategy\) or a split .* missing then"),
])
def test_a_bad_rules_file_names_the_key(tmp_path, change, message):
    tree = json.loads(json.dumps(TREE))
    change(tree)
    path = write_tree(tmp_path, tree)
    with pytest.raises(ConfigError, match=rf"^learned rules '{re.escape(str(path))}': {message}"):
        learned_rules.load(path)


def test_missing_deep_and_broken_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"strategy.learned_rules = '.*nope.json': no such file \(fit one with "
                                          r"python -m bench.learn_rules, or set it to null"):
        learned_rules.load(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="broken.json': not valid JSON"):
        learned_rules.load(tmp_path / "broken.json")
    node = {"strategy": "head"}
    for _ in range(learned_rules.MAX_DEPTH + 1):
        node = {"feature": "rows", "at_most": 1, "then": node, "else": {"strategy": "full"}}
    with pytest.raises(ConfigError, match=r"deeper than 6 levels"):
        learned_rules.load(write_tree(tmp_path, {**TREE, "tree": node}))


def test_the_selector_asks_the_tree_only_where_the_hand_rules_would_train(tmp_path):
    path = write_tree(tmp_path)
    cfg = StrategyConfig(learned_rules=str(path))
    d = strategy.select_strategy(report(**{"data_size.min_per_class": 200}), cfg, False)
    assert (d["strategy"], d["rule"], d["runner_up"]) == ("full", "learned", "lora")
    assert d["reason"].startswith("Learned rules (bench/scenarios-fit.yaml, 12 scenarios): min_per_class 200 > 48 "
                                  "and probe_gain 0.7 > 0.05 -> full")
    assert "The hand rules would pick adapter (rule default: " in d["reason"]
    held = strategy.select_strategy(report(**SKIPPABLE), cfg, True)  # a champion that holds: the hand rules' call
    assert (held["strategy"], held["rule"]) == ("skip", "champion_holds")
    assert strategy.select_strategy(report(), cfg, False, learned_rules.load(path))["rule"] == "learned"
    forced = strategy.select_strategy(report(), StrategyConfig(learned_rules=str(path), force="lora"), False)
    assert forced["strategy"] == "lora" and "the policy would have chosen 'full' (rule learned: Learned" in \
        forced["reason"]


def test_strategy_run_reads_the_rules_file_params_name(make_params, tmp_path):
    write_tree(tmp_path, name="my_rules.json")
    params = make_params({"strategy.learned_rules": "my_rules.json"})  # relative to the project folder
    write_json(params.paths.shift, report(**{"data_size.min_per_class": 20}))
    decision = runner("select-strategy")(params)
    assert decision["strategy"] == "head" and decision["rule"] == "learned"
    assert read_json(params.paths.decision)["reason"].startswith("Learned rules")


def test_learn_rules_recovers_a_known_rule_and_judges_it_out_of_sample(tmp_path):
    """Hand-made saved results where the head ties the best up to 32 rows per class and full fine-tuning wins
    above; two families per size. Leave-one-family-out prefers a split on size to one strategy for all; the
    fitted tree says so; on an evaluation half it beats the hand rules that pick the adapters everywhere."""
    from bench.decision import FORMAT

    truth = ["a", "b"] * 250
    lines = ["budget: {epochs: 1, max_train_examples: 100, max_seq_len: 16}", "seeds: 1", "scenarios:"]

    def saved(folder, name, family, per_class):
        small = per_class <= 32
        preds = {"head": [truth if small else _flip(truth, set(range(60)))],
                 "full": [_flip(truth, {1}) if small else truth],
                 "adapter": [_flip(truth, set(range(40)))]}
        r = {**_scenario(name, truth, preds, {"head": 1.0, "full": 30.0, "adapter": 20.0}, choice="adapter"),
             "format": FORMAT, "family": family, "rule": "default", "rows": {"train": 2 * per_class},
             "measures": {"champion_exists": False, "new_labels": [], "mmd2": None, "p_value": None,
                          "unk_rate": 0.0, "tokens_per_word": 1.2, "rows": 2 * per_class,
                          "min_per_class": per_class, "probe_accuracy": 0.6, "zero_shot_accuracy": 0.3,
                          "champion_incoming_accuracy": None}}
        write_json(folder / "scenarios" / f"{name}.json", r)
        return f"  - {{name: {name}, family: {family}, train: {{path: x.csv}}}}"

    fit, ev = tmp_path / "fit", tmp_path / "eval"
    fit_lines = [saved(fit, f"{fam}-{n}", fam, n) for fam in ("f1", "f2", "f3", "f4") for n in (8, 16, 400, 800)]
    ev_lines = [saved(ev, f"e-{n}", "e", n) for n in (12, 24, 600)]
    (tmp_path / "fit.yaml").write_text("\n".join(lines + fit_lines) + "\n")
    (tmp_path / "eval.yaml").write_text("\n".join(lines + ev_lines) + "\n")
    out = tmp_path / "learned"
    report_ = learn_rules.learn(str(tmp_path / "fit.yaml"), str(fit), str(tmp_path / "eval.yaml"), str(ev), str(out),
                                params_path=str(ROOT / "params.yaml"))
    cv = {c["depth"]: c for c in report_["cross_validation"]}
    assert cv[1]["mean_regret_points"] == 0.0 and cv[0]["mean_regret_points"] > 0  # a size split beats any one
    rules = learned_rules.load(out / "learned_rules.json")
    assert rules["tree"]["feature"] in ("rows", "min_per_class") and report_["chosen_depth"] == 1
    assert rules["tree"]["then"]["strategy"] == "head" and rules["tree"]["else"]["strategy"] == "full"
    assert rules["tree"]["then"]["counts"] == {"head": 8} and rules["tree"]["else"]["counts"] == {"full": 8}
    assert rules["fitted_on"]["count"] == 16 and rules["fitted_on"]["families"] == 4
    assert [p["learned"] for p in report_["eval"]["per_scenario"]] == ["head", "head", "full"]
    assert report_["eval"]["learned"]["mean_regret_points"] == 0.0 and report_["ship"] is True
    md = (out / "learned_rules.md").read_text()
    assert "## Evaluation half (never used in fitting)" in md and "**yes**" in md and "depth 1 (chosen)" in md
