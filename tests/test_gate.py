"""The gate's statistics (driftfit/gate.py) on constructed predictions whose truth is known by construction."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from driftfit.evaluation import gate

SEED = 0


def batch(rows: int, accuracy: float, labels=("neg", "pos"), seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(truth, champion): balanced labels, the champion right on the first `accuracy` share of each label's rows."""
    rng = np.random.default_rng(seed)
    truth = np.array([labels[i % len(labels)] for i in range(rows)])
    rng.shuffle(truth)
    champion = truth.copy()
    for label in labels:
        where = np.flatnonzero(truth == label)
        wrong = where[int(round(accuracy * len(where))):]
        champion[wrong] = labels[(labels.index(label) + 1) % len(labels)]
    return truth, champion


def flip(truth: np.ndarray, champion: np.ndarray, to_wrong: int, to_right: int, seed: int = SEED) -> np.ndarray:
    """The champion with `to_wrong` of its right rows made wrong and `to_right` of its wrong rows made right."""
    rng = np.random.default_rng(seed)
    cand = champion.copy()
    labels = sorted(set(truth))
    right, wrong = np.flatnonzero(champion == truth), np.flatnonzero(champion != truth)
    for i in rng.choice(right, to_wrong, replace=False):
        cand[i] = labels[(labels.index(truth[i]) + 1) % len(labels)]
    for i in rng.choice(wrong, to_right, replace=False):
        cand[i] = truth[i]
    return cand


# ---- macro-F1 on resampled rows ----------------------------------------------------------------

def test_macro_f1_is_sklearns_on_the_rows_as_they_are():
    rng = np.random.default_rng(1)
    truth = np.array(["a", "b", "c"])[rng.integers(0, 3, 200)]
    pred = np.array(["a", "b", "c", "zz"])[rng.integers(0, 4, 200)]  # 'zz' only ever predicted
    codes, (answers,), known = gate.encode(truth, pred)
    ours = gate.macro_f1(codes, answers, known, np.ones((1, len(codes))))[0]
    assert ours == pytest.approx(f1_score(truth, pred, labels=sorted(set(truth)), average="macro", zero_division=0))
    # a draw without any row of one label averages over the labels it has (as sklearn on those rows would)
    weights = np.where(truth == "c", 0, 1)[None, :]
    kept = truth != "c"
    assert gate.macro_f1(codes, answers, known, weights)[0] == pytest.approx(
        f1_score(truth[kept], pred[kept], labels=["a", "b"], average="macro", zero_division=0))


def test_identical_answers_differ_by_nothing_and_the_verdict_is_reproducible():
    truth, champion = batch(80, 0.8)
    same = gate.paired_bootstrap(truth, champion, champion, 500, SEED)
    assert same.difference == 0 and same.interval(0.95) == (0.0, 0.0)
    assert gate.judge_gain(truth, champion, champion, 0.0, 0.95, 500, SEED)["verdict"] == "tie"
    cand = flip(truth, champion, 6, 3)
    first, again = (gate.paired_bootstrap(truth, cand, champion, 500, SEED) for _ in range(2))
    assert np.array_equal(first.draws, again.draws)
    assert not np.array_equal(first.draws, gate.paired_bootstrap(truth, cand, champion, 500, SEED + 1).draws)


def test_different_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        gate.paired_bootstrap(["a", "b"], ["a"], ["a", "b"], 100, SEED)


# ---- gains ---------------------------------------------------------------------------------------

def test_a_new_task_learnt_is_a_real_gain_and_a_few_rows_either_way_are_noise():
    truth, _ = batch(80, 1.0, labels=("Sports", "World"))
    knows_nothing = np.full(80, "neg")  # the champion only knows the old task's labels
    _, learnt = batch(80, 0.7, labels=("Sports", "World"))
    gain = gate.judge_gain(truth, learnt, knows_nothing, 0.0, 0.95, 1000, SEED)
    assert gain["verdict"] == "gain" and gain["low"] > 0
    truth, champion = batch(80, 0.8)
    noise = gate.judge_gain(truth, flip(truth, champion, 3, 5), champion, 0.0, 0.95, 1000, SEED)
    assert noise["verdict"] == "tie" and noise["low"] < 0 < noise["high"] and noise["difference"] > 0
    worse = gate.judge_gain(truth, flip(truth, champion, 30, 0), champion, 0.0, 0.95, 1000, SEED)
    assert worse["verdict"] == "worse" and worse["high"] < 0


# ---- forgetting ----------------------------------------------------------------------------------

def ten_batches(churn: int = 8) -> dict[str, tuple]:
    """Ten past batches of 80 rows; the candidate is the champion with `churn` rows moved each way (noise)."""
    past = {}
    for i in range(10):
        truth, champion = batch(80, 0.85, seed=i)
        past[f"w{i:02d}"] = (truth, flip(truth, champion, churn // 2, churn // 2, seed=i), champion)
    return past


def test_noise_only_differences_do_not_block():
    past = ten_batches()
    verdict = gate.judge_past(past, 5.0, "batches", 0.95, 2000, SEED)
    assert verdict["passed"] and {g["state"] for g in verdict["groups"]} == {"noise"}
    assert all(g["too_small"] for g in verdict["groups"]) and verdict["rows_needed"] == 120


def test_injected_forgetting_of_one_past_batch_is_rejected_and_named():
    past = ten_batches()
    truth, cand, champion = past["w03"]
    past["w03"] = (truth, flip(truth, cand, 32, 0, seed=9), champion)  # 32 of 80 rows forgotten: -40 points
    for how in ("batches", "batches_and_labels"):
        verdict = gate.judge_past(past, 5.0, how, 0.95, 2000, SEED)
        assert not verdict["passed"], how
        beyond = [g["group"] for g in verdict["groups"] if g["state"] == "beyond"]
        assert beyond == ["w03"], (how, beyond)
    # pooled over the memory, one forgotten batch in ten is diluted below the limit: why it is not the default
    assert gate.judge_past(past, 5.0, "memory", 0.95, 2000, SEED)["passed"]


def test_a_task_forgotten_everywhere_is_caught_by_its_label_set_pooled():
    """Every sentiment batch loses 8 of 80 rows (10 points): no batch alone can show it beyond 5, the 800 rows
    of the label set together can."""
    past = {}
    for i in range(10):
        truth, champion = batch(80, 0.85, seed=i)
        past[f"w{i:02d}"] = (truth, flip(truth, champion, 8, 0, seed=i), champion)
    alone = gate.judge_past(past, 5.0, "batches", 0.95, 2000, SEED)
    assert alone["passed"] and all(g["state"] != "beyond" for g in alone["groups"])
    pooled = gate.judge_past(past, 5.0, "batches_and_labels", 0.95, 2000, SEED)
    assert not pooled["passed"]
    assert [g["group"] for g in pooled["groups"] if g["state"] == "beyond"] == ["labels neg, pos"]


def test_past_groups():
    truths = {"a": np.array(["neg", "pos"]), "b": np.array(["pos", "neg", "pos"]), "c": np.array(["x", "y"])}
    assert gate.past_groups(truths, "batches") == {"a": ["a"], "b": ["b"], "c": ["c"]}
    assert gate.past_groups(truths, "batches_and_labels") == {"a": ["a"], "b": ["b"], "c": ["c"],
                                                              "labels neg, pos": ["a", "b"]}
    assert gate.past_groups(truths, "memory") == {"memory": ["a", "b", "c"]}
    with pytest.raises(ValueError, match="unknown way to weigh the past: 'newest'"):
        gate.past_groups(truths, "newest")


# ---- several tests, enough rows ------------------------------------------------------------------------

def test_holm():
    adjusted = gate.holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})  # 3 x 0.01, 2 x 0.03, max(that, 1 x 0.04)
    assert gate.holm({"only": 0.2}) == {"only": 0.2}


def test_resamples_are_raised_so_holm_can_ever_reject():
    assert gate.resamples_for(1, 0.025, 2000) == 2000
    assert gate.resamples_for(40, 0.025, 2000) == 6400
    # the smallest p-value a bootstrap can give, Holm-adjusted over the tests, stays under alpha
    draws = gate.resamples_for(40, 0.025, 100)
    assert 40 / (draws + 1) <= 0.025


def test_rows_to_detect_is_the_cleanest_loss_a_sign_test_can_see():
    """A loss of `limit` points on n rows, every lost row against none gained: significant by the exact sign test
    (one-sided, 0.5 ** lost rows <= alpha) exactly from rows_to_detect(limit, alpha) rows on."""
    from scipy.stats import binomtest

    alpha = 0.025
    for limit in (2.0, 5.0, 10.0):
        need = gate.rows_to_detect(limit, alpha)
        for rows, detectable in ((need, True), (need - 1, False)):
            lost = int(rows * limit / 100)
            p = binomtest(lost, lost, 0.5, alternative="greater").pvalue if lost else 1.0
            assert (p <= alpha) == detectable, (limit, rows, lost, p)
    assert gate.rows_to_detect(5.0, alpha) == 120 and gate.rows_to_detect(0.0, alpha) is None


def test_tiny_test_splits_are_flagged():
    small = {"tiny": batch(30, 0.8)}
    small["tiny"] = (small["tiny"][0], small["tiny"][1], small["tiny"][1])
    truth, champion = batch(200, 0.8, seed=5)
    verdict = gate.judge_past({**small, "big": (truth, champion, champion)}, 5.0, "batches", 0.95, 1000, SEED)
    assert {g["group"]: g["too_small"] for g in verdict["groups"]} == {"tiny": True, "big": False}
