"""The strategy policy on hand-made shift reports: each rule fires, in order, and force wins."""

from __future__ import annotations

import copy
import json

import pytest

from driftfit import modalities
from driftfit.policy import probe
from driftfit.pipeline import runner
from driftfit.policy import rules as strategy
from driftfit.config import StrategyConfig, parse_params
from driftfit.errors import DataError
from driftfit.io import read_json, write_json

CFG = StrategyConfig()  # defaults: unk 0.05, tokens/word 2.5, scratch 20000, few-shot 16, probe 0.9, head 128, full 5000

# A report that no specific rule matches: the policy falls through to the default (adapter).
BASE = {
    "tokenizer": {"incoming": {"unk_rate": 0.0, "tokens_per_word": 1.3}, "seconds": 0.1},
    "embedding": {"mmd2": 0.1, "p_value": 0.005, "domain_classifier": {"auc": 0.8}},
    "label_shift": {"new_labels": [], "vanished_labels": [], "js_divergence": 0.01},
    "probe": {"accuracy": 0.7, "macro_f1": 0.68},
    "data_size": {"rows": 1000, "val_rows": 200, "classes": 5, "min_per_class": 200},
    "champion": {"val_accuracy": 0.5, "covers_labels": True, "uncovered_labels": []},
}


def report(**changes) -> dict:
    """BASE with dotted-key changes, e.g. report(**{"probe.accuracy": 0.95}); None deletes the key."""
    out = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = out
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return out


def decide(rep: dict, champion_exists: bool = False, **cfg) -> dict:
    return strategy.select_strategy(rep, StrategyConfig(**cfg), champion_exists)


SKIPPABLE = {"embedding.p_value": 0.4, "champion.val_accuracy": 0.95}


@pytest.mark.parametrize("changes, champion, expected", [
    ({}, False, ("adapter", "full", "default")),
    (SKIPPABLE, True, ("skip", "head", "champion_holds")),
    ({"embedding.mmd2": 0.001, "champion.val_accuracy": 0.95}, True, ("skip", "head", "champion_holds")),
    ({"tokenizer.incoming.unk_rate": 0.2}, False, ("full", "scratch", "tokenizer_misfit")),
    ({"tokenizer.incoming.tokens_per_word": 3.1}, False, ("full", "scratch", "tokenizer_misfit")),
    ({"tokenizer.incoming.unk_rate": 0.2, "data_size.rows": 30000}, False, ("scratch", "full", "tokenizer_misfit")),
    ({"tokenizer.incoming.unk_rate": 0.2, "data_size.min_per_class": 40}, False, ("head", "full", "tokenizer_misfit")),
    ({"data_size.min_per_class": 8}, False, ("head", "ia3", "few_shot")),
    ({"probe.accuracy": 0.95}, False, ("head", "ia3", "features_suffice")),
    ({"data_size.min_per_class": 128}, False, ("head", "adapter", "small_data")),
    ({"data_size.min_per_class": 128}, True, ("adapter", "head", "domain_moved")),  # moved, labels known
    ({"data_size.min_per_class": 129}, False, ("adapter", "full", "default")),
    ({"label_shift.new_labels": ["refund"]}, True, ("lora", "full", "default")),  # new labels: no adapters
    ({"label_shift.new_labels": ["refund"]}, False, ("adapter", "full", "default")),  # no champion to forget
    ({"data_size.rows": 8000}, False, ("full", "lora", "large_data")),
    ({"data_size.rows": 120, "data_size.min_per_class": 30}, False,
     ("contrastive", "head", "few_rows_first_model")),
    ({"data_size.rows": 256, "data_size.min_per_class": 8}, False, ("contrastive", "head", "few_rows_first_model")),
    ({"data_size.rows": 257, "data_size.min_per_class": 8}, False, ("head", "ia3", "few_shot")),  # more rows
    ({"data_size.rows": 120, "data_size.min_per_class": 8, "embedding.p_value": 0.4}, True,
     ("head", "ia3", "few_shot")),  # a champion: a head on its features, its memory replayed
    ({"data_size.rows": 120, "probe.accuracy": 0.95}, False, ("head", "ia3", "features_suffice")),
    ({"data_size.rows": 120, "tokenizer.incoming.unk_rate": 0.2, "data_size.min_per_class": 30}, False,
     ("head", "full", "tokenizer_misfit")),  # no vocabulary for it: pairs cannot win the tokens back either
])
def test_each_rule_fires(changes, champion, expected):
    d = decide(report(**changes), champion_exists=champion)
    assert (d["strategy"], d["runner_up"], d["rule"]) == expected
    assert d["forced"] is False
    assert d["reason"] and d["reason"].endswith(".")
    json.dumps(d)


@pytest.mark.parametrize("changes, champion", [
    (SKIPPABLE, False),                                             # no champion to keep
    ({**SKIPPABLE, "champion.val_accuracy": 0.85}, True),           # champion not good enough
    ({**SKIPPABLE, "label_shift.new_labels": ["refund"]}, True),    # a label new to the reference
    ({**SKIPPABLE, "champion.uncovered_labels": ["refund"]}, True),  # a label the champion lacks
    ({**SKIPPABLE, "embedding.p_value": 0.01}, True),               # embeddings moved, MMD² not small
    ({**SKIPPABLE, "embedding": None}, True),                       # no reference: shift unknown
    ({**SKIPPABLE, "champion": None}, True),                        # champion not scored
])
def test_skip_needs_all_evidence(changes, champion):
    assert decide(report(**changes), champion_exists=champion)["strategy"] != "skip"


def test_rules_apply_in_order():
    # tokenizer misfit before few-shot; few-shot before a good probe; a good probe before large data
    misfit_and_few = report(**{"tokenizer.incoming.unk_rate": 0.2, "data_size.min_per_class": 3})
    assert decide(misfit_and_few)["rule"] == "tokenizer_misfit"
    assert decide(report(**{"data_size.min_per_class": 3, "probe.accuracy": 0.99}))["rule"] == "few_shot"
    assert decide(report(**{"probe.accuracy": 0.99, "data_size.rows": 9000}))["rule"] == "features_suffice"


def test_thresholds_come_from_config():
    rep = report(**{"data_size.rows": 1000})
    assert decide(rep)["strategy"] == "adapter"
    assert decide(report(**{"data_size.min_per_class": 100}), head_max_per_class=64)["rule"] == "default"
    assert decide(rep, full_min_examples=500)["strategy"] == "full"
    assert decide(report(**{"probe.accuracy": 0.8}), probe_good=0.75)["rule"] == "features_suffice"
    assert decide(report(**{"data_size.min_per_class": 30}), head_max_per_class=0)["rule"] == "default"


@pytest.mark.parametrize("changes, champion, cfg, rule", [
    ({"data_size.min_per_class": 100}, True, {}, "domain_moved"),                        # at the threshold
    ({"data_size.min_per_class": 99}, True, {}, "small_data"),                           # below it
    ({"data_size.min_per_class": 128}, False, {}, "small_data"),                         # no champion
    ({"data_size.min_per_class": 128, "label_shift.new_labels": ["refund"]}, True, {}, "small_data"),
    ({"data_size.min_per_class": 128, "champion.uncovered_labels": ["refund"]}, True, {}, "small_data"),
    ({"data_size.min_per_class": 128, "embedding.p_value": 0.2}, True, {}, "small_data"),  # not moved
    ({"data_size.min_per_class": 128, "embedding.mmd2": 0.01}, True, {}, "small_data"),    # MMD² small
    ({"data_size.min_per_class": 128, "embedding": None}, True, {}, "small_data"),         # no reference
    ({"data_size.min_per_class": 128}, True, {"moved_adapt_min_per_class": None}, "small_data"),  # off
    ({"data_size.min_per_class": 40}, True, {"moved_adapt_min_per_class": 32}, "domain_moved"),
    ({"data_size.min_per_class": 200}, True, {}, "default"),                             # above the head's range
])
def test_domain_moved_needs_a_champion_known_labels_moved_embeddings_and_the_rows(changes, champion, cfg, rule):
    d = decide(report(**changes), champion_exists=champion, **cfg)
    assert d["rule"] == rule
    if rule == "domain_moved":
        assert (d["strategy"], d["runner_up"]) == ("adapter", "head")
        assert "MMD² 0.1" in d["reason"] and str(d["measures"]["min_per_class"]) in d["reason"]


def test_domain_moved_replays_every_remembered_row_unless_turned_off():
    moved = report(**{"data_size.min_per_class": 128})
    d = decide(moved, champion_exists=True)
    assert d["rule"] == "domain_moved" and d["replay"] == "all" and "every remembered row" in d["reason"]
    assert decide(moved, champion_exists=True, replay_all_on_moved_domain=False)["replay"] == "fraction"
    assert decide(moved, champion_exists=False)["replay"] == "fraction"              # small_data, no champion
    assert decide(moved, champion_exists=True, force="skip")["replay"] == "fraction"   # forced: nothing trains


def test_force_wins_and_keeps_the_policy_pick():
    d = decide(report(**SKIPPABLE), champion_exists=True, force="full")
    assert (d["strategy"], d["rule"], d["forced"], d["runner_up"]) == ("full", "forced", True, "skip")
    assert "skip" in d["reason"] and "champion_holds" in d["reason"]
    same = decide(report(), force="adapter")
    assert (same["strategy"], same["runner_up"], same["forced"]) == ("adapter", "full", True)


def test_measures_record_the_numbers():
    d = decide(report(**{"label_shift.new_labels": ["b"], "champion.uncovered_labels": ["a"]}), champion_exists=True)
    m = d["measures"]
    assert m["new_labels"] == ["a", "b"]
    assert (m["rows"], m["min_per_class"], m["probe_accuracy"], m["p_value"]) == (1000, 200, 0.7, 0.005)
    assert m["champion_val_accuracy"] == 0.5
    assert "1000" in d["reason"] and "0.7" in d["reason"]


def test_malformed_report_fails_clearly():
    with pytest.raises(DataError, match="data_size"):
        decide(report(data_size=None))


def test_run_reads_the_report_and_writes_the_decision(tmp_path):
    write_json(tmp_path / "shift.json", report(**{"probe.accuracy": 0.95}))
    params = parse_params({"data": {"incoming": {"path": "unused.csv"}},
                           "paths": {"shift": str(tmp_path / "shift.json"),
                                     "decision": str(tmp_path / "out" / "decision.json"),
                                     "registry": str(tmp_path / "registry")}})
    decision = runner("select-strategy")(params)
    assert read_json(tmp_path / "out" / "decision.json") == decision
    assert decision["strategy"] == "head" and decision["measures"]["champion_exists"] is False


def test_run_without_shift_report_says_what_to_do(tmp_path):
    params = parse_params({"data": {"incoming": {"path": "unused.csv"}},
                           "paths": {"shift": str(tmp_path / "missing.json")}})
    with pytest.raises(DataError, match="shift step"):
        runner("select-strategy")(params)


def _probe_two(params, val):
    """with_probe on the rules' head and runner-up lora, one round of one step each, on `val`."""
    from driftfit.data.splits import read_split

    rules = {"strategy": "head", "runner_up": "lora", "rule": "few_shot", "reason": "few rows",
             "measures": {}, "forced": False}
    params = params.model_copy(update={"strategy": params.strategy.model_copy(
        update={"mode": "probe", "probe_candidates": ["head", "lora"], "probe_max_steps": 1})})
    return probe.with_probe(rules, read_split(params.paths.prepared, "train"), val, params, modalities.get("text"))


def test_a_probe_within_noise_picks_the_faster(prepared_params):
    """Real short trial runs of two candidates, scored on validation rows whose labels training never saw: both
    score 0 (a model answers only labels it was trained on), a tie; the one that trained faster wins."""
    from driftfit.data.splits import read_split

    val = read_split(prepared_params.paths.prepared, "val")
    val = val.assign(label=[f"unseen-{i % 3}" for i in range(len(val))])
    decision = _probe_two(prepared_params, val)
    [only] = decision["probe"]["rounds"]
    assert only["steps"] == 1 and only["val_accuracy"] == {"head": 0.0, "lora": 0.0}
    assert set(only["within_noise"]) == {"head", "lora"}  # a gap of 0 is within any noise
    seconds = only["train_seconds"]
    faster = min(seconds, key=seconds.get)
    assert decision["strategy"] == faster and seconds[faster] <= seconds[({"head", "lora"} - {faster}).pop()]
    assert decision["probe"]["why"] == f"within validation noise of {({'head', 'lora'} - {faster}).pop()}, " \
                                       "and trained fastest"
    assert decision["rules_choice"] == "head" and decision["probe"]["seconds"] > 0
    assert "Probe" in decision["reason"] and "few rows" in decision["reason"] and decision["probe"]["why"] in \
        decision["reason"]


def test_a_probe_leader_beyond_noise_wins(prepared_params, monkeypatch):
    """Real short trial runs of two candidates whose validation answers are forced: lora's all right, head's all
    wrong (1.0 against 0.0 over the rows is beyond any noise): lora wins, whichever trained faster."""
    import numpy as np

    from driftfit.modalities.text import evaluate as scoring
    from driftfit.modalities.text import recipe as train
    from driftfit.data.splits import read_split

    val = read_split(prepared_params.paths.prepared, "val")
    known = set(read_split(prepared_params.paths.prepared, "train")["label"])
    val = val[val["label"].isin(known)].reset_index(drop=True)
    real_train, real_load, training, labels_of = train.train_model, scoring.load_classifier, [], {}

    def train_model(train_df, val_df, strategy_name, *args, **kwargs):
        training.append(strategy_name)
        return real_train(train_df, val_df, strategy_name, *args, **kwargs)

    def load_classifier(*args, **kwargs):
        loaded, tokenizer, labels = real_load(*args, **kwargs)
        labels_of[id(loaded)] = labels
        return loaded, tokenizer, labels

    def predict_proba(loaded, tokenizer, texts, *args, **kwargs):
        labels = labels_of[id(loaded)]
        assert texts == list(val["text"])
        right = np.array([labels.index(label) for label in val["label"]])
        answer = right if training[-1] == "lora" else (right + 1) % len(labels)
        return np.eye(len(labels))[answer]

    monkeypatch.setattr(train, "train_model", train_model)
    monkeypatch.setattr(scoring, "load_classifier", load_classifier)  # how the probe's scorer loads and answers
    monkeypatch.setattr(scoring, "predict_proba", predict_proba)
    decision = _probe_two(prepared_params, val)
    [only] = decision["probe"]["rounds"]
    assert training == ["head", "lora"] and only["val_accuracy"] == {"head": 0.0, "lora": 1.0}
    assert only["within_noise"] == ["lora"]
    assert decision["strategy"] == "lora" and decision["runner_up"] == "head"
    assert decision["probe"]["why"] == "ahead of the others by more than the validation noise"


def test_within_noise_on_known_numbers():
    # 0.80 vs 0.75 on 40 rows: noise (se ~0.093); on 4,000 rows: a real gap (se ~0.0093)
    assert strategy.within_noise({"a": 0.75, "b": 0.80}, 40, 0.05) == ["b", "a"]
    assert strategy.within_noise({"a": 0.75, "b": 0.80}, 4000, 0.05) == ["b"]
    assert strategy.within_noise({"a": 0.5, "b": 0.9, "c": 0.88}, 200, 0.05) == ["b", "c"]


def test_probe_mode_leaves_forced_and_skip_alone(prepared_params):
    forced = {"strategy": "full", "runner_up": "head", "rule": "forced", "reason": "r", "measures": {},
              "forced": True}
    assert probe.with_probe(forced, None, None, prepared_params, modalities.get("text")) is forced


# The champion holds relative to its own test score: 0.80 on the new rows against 0.81 on its own test data.
HOLDS = {"embedding.p_value": 0.4, "champion.incoming_accuracy": 0.80, "champion.incoming_rows": 240,
         "champion.own_test_accuracy": 0.81, "champion.own_test_rows": 200}


def test_a_champion_below_skip_min_accuracy_holds_when_it_scores_as_on_its_own_data():
    d = decide(report(**HOLDS), champion_exists=True)
    assert (d["strategy"], d["rule"]) == ("skip", "champion_holds"), d["reason"]
    assert "drop of 1.0 points, not significantly more than 2" in d["reason"]
    assert d["measures"]["champion_own_test_accuracy"] == 0.81


@pytest.mark.parametrize("changes", [
    {"champion.incoming_accuracy": 0.70},                                 # 11 points down on 240 + 200 rows
    {"champion.own_test_rows": 0},                                        # its own score unknown: no evidence
    {"embedding.p_value": 0.001, "embedding.mmd2": 0.1},                  # the embeddings moved
])
def test_a_real_drop_or_missing_evidence_retrains(changes):
    assert decide(report(**{**HOLDS, **changes}), champion_exists=True)["strategy"] != "skip"


def test_the_drop_test_weighs_the_noise_of_small_samples():
    """The same 8-point drop: beyond noise on 2,000 + 2,000 rows, within it on 30 + 30."""
    big = {**HOLDS, "champion.incoming_accuracy": 0.73, "champion.incoming_rows": 2000, "champion.own_test_rows": 2000}
    small = {**big, "champion.incoming_rows": 30, "champion.own_test_rows": 30}
    assert decide(report(**big), champion_exists=True)["strategy"] != "skip"
    assert decide(report(**small), champion_exists=True)["strategy"] == "skip"
    assert decide(report(**small), champion_exists=True, skip_max_drop=0.0, significance=0.5)["strategy"] != "skip"


def test_a_steady_but_weak_champion_is_retrained_when_a_probe_beats_it():
    """It scores as on its own data (0.62 both), but a linear probe on this batch reaches 0.85 on the same
    160 validation rows: training pays. A probe within noise of it changes nothing."""
    weak = {**HOLDS, "champion.incoming_accuracy": 0.62, "champion.own_test_accuracy": 0.62,
            "champion.val_accuracy": 0.62, "probe.val_rows": 160}
    assert decide(report(**{**weak, "probe.accuracy": 0.85}), champion_exists=True)["strategy"] != "skip"
    d = decide(report(**{**weak, "probe.accuracy": 0.64}), champion_exists=True)
    assert d["strategy"] == "skip" and "linear probe on frozen features (validation 0.64" in d["reason"]


def test_tiny_batches_with_telling_label_names_choose_zero_shot():
    d = decide(report(**{"data_size.min_per_class": 4, "zero_shot": {"accuracy": 0.93, "val_rows": 40},
                         "probe.accuracy": 0.6, "probe.val_rows": 40}))
    assert (d["strategy"], d["runner_up"], d["rule"]) == ("zero_shot", "ia3", "names_suffice"), d["reason"]
    assert d["measures"]["zero_shot_accuracy"] == 0.93 and "significantly above a linear probe" in d["reason"]


def test_label_names_must_beat_the_head_beyond_the_noise_of_few_rows():
    """The fitting half's sst2-to-amazon-8: names at 1.0 and a probe at 0.875 on 8 validation rows (the names
    then scored 0.68 on the test set, the head 0.81). One row's difference is noise: the head is fit. The
    same gap on 400 rows is not; and names that beat the probe but not the head on the memory still train."""
    tiny = {"data_size.min_per_class": 8, "zero_shot": {"accuracy": 1.0, "val_rows": 8},
            "probe.accuracy": 0.875, "probe.val_rows": 8}
    assert decide(report(**tiny))["rule"] == "few_shot"
    many = {**tiny, "zero_shot": {"accuracy": 0.95, "val_rows": 400}, "probe.val_rows": 400}
    assert decide(report(**many))["rule"] == "names_suffice"
    memory = {**many, "probe.with_memory": {"accuracy": 0.94, "rows": 400}}
    assert decide(report(**memory))["rule"] == "few_shot"
    assert decide(report(**{"data_size.min_per_class": 4, "zero_shot": {"accuracy": 0.93}, "probe.accuracy": 0.95}))[
        "rule"] == "few_shot"                                                   # a probe does better: train
    assert decide(report(**{"zero_shot": {"accuracy": 0.99}}))["rule"] != "names_suffice"   # plenty of rows
    assert decide(report(**{"data_size.min_per_class": 4, "zero_shot": {"accuracy": 0.6}}))["rule"] == "few_shot"


def test_a_weak_champion_is_retrained_when_a_head_on_the_memory_would_beat_it():
    """Nothing moved and the champion holds its own level, but a probe fit on the memory plus the batch
    (cross-validated on the incoming rows the champion was scored on) clearly beats it: retrain."""
    steady = {"embedding.p_value": 0.4, "champion.val_accuracy": 0.7, "champion.incoming_accuracy": 0.70,
              "champion.incoming_rows": 240, "champion.own_test_accuracy": 0.71, "champion.own_test_rows": 400,
              "probe.accuracy": 0.7, "probe.val_rows": 40}
    assert decide(report(**steady), champion_exists=True)["rule"] == "champion_holds"
    better = {**steady, "probe.with_memory": {"accuracy": 0.82, "rows": 240}}
    assert decide(report(**better), champion_exists=True)["rule"] != "champion_holds"
    # Within noise of the champion: it holds; but where the retrain would be a head (seconds), any lead retrains
    noise = {**steady, "probe.with_memory": {"accuracy": 0.73, "rows": 240}}
    d = decide(report(**noise), champion_exists=True)
    assert d["rule"] == "champion_holds" and "memory plus this batch (0.73" in d["reason"]
    small = {**noise, "data_size.min_per_class": 50}
    d = decide(report(**small), champion_exists=True)
    assert (d["strategy"], d["runner_up"], d["rule"]) == ("head", "skip", "small_data"), d["reason"]
    assert "costs seconds" in d["reason"]
    level = {**small, "probe.with_memory": {"accuracy": 0.70, "rows": 240}}   # no lead at all: skip
    assert decide(report(**level), champion_exists=True)["rule"] == "champion_holds"
