"""The decision benchmark's statistics: intervals over seeds, ties on test predictions, verdicts, the headline.

Pure functions over the saved per-scenario results of bench/decision.py (no training, no files), so a
result can be re-scored, or the tie rule changed, without training anything again.

Definitions (decision.md says the same):
- The metric is macro-F1, the one the promotion gate promotes on (driftfit.evaluation.gate): the mean of each
  true label's F1 on the test rows (sklearn's f1_score, average="macro", labels = the true labels). Accuracy is
  reported beside it, judged the same way (`judge(..., metric="accuracy")` re-scores by it).
- A strategy's score: the mean of its seeds' scores, with a 95% t-interval over the seeds
  (mean ± t(0.975, n-1) · sd / sqrt(n), sd with n-1; none for one seed).
- Best: the strategy with the highest score (ties: the one with fewer seconds).
- Regret of X: 100 · (best's score - X's score), in points.
- Tied with the best: the test rows are resampled with replacement (paired: the same draw for every strategy),
  2,000 times from a fixed seed; on each draw every strategy's score is its seeds' mean score on those rows,
  and best - X is taken. X is tied with the best when the 95% percentile interval of those differences (2.5th
  to 97.5th percentile) contains 0. The best is tied with itself.
- Seconds of a strategy: the mean of its seeds' training seconds, where a strategy fitted on frozen features
  is charged, for every seed, what its first seed paid (that seed computed the features the benchmark then
  shares with the later seeds; a pipeline run computes them once, so each run costs that much).
- Cheapest tied: among the strategies tied with the best, the one with the fewest seconds.
- Cost relative to the cheapest tied: the policy's compute / cheapest tied seconds, each floored at 1 s. The
  selector's compute is its selection (shift measures, rules, probes) plus training its choice; a fixed
  policy's is training its strategy (keeping the champion costs 0 s; the floor keeps the ratio finite and
  reads "30 s vs 0 s" as 30x).
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000          # bootstrap resamples: more = steadier interval ends, linear in time
BOOTSTRAP_SEED = 0        # fixed, so a verdict is the same every time it is computed
CONFIDENCE = 0.95
WITHIN_POINTS = 1.0       # "within 1 point": regret at most this many points of the metric
METRICS = ("macro_f1", "accuracy")  # the first judges; the other is reported beside it
REGRET_MARGIN = 1.0       # the selector's mean regret must be this many points below every fixed policy's
FLOOR_SECONDS = 1.0       # cost ratios count anything under 1 s as 1 s

# Predicted and true labels are saved as one character per test row: the label's index in the
# scenario's sorted label list, written in this alphabet (62 labels at most).
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

TARGETS = {  # the targets for the selector (checked on the evaluation half)
    "share_tied_or_within_1_at_least": 0.9,
    "selector_compute_fraction_at_most": 0.2,
    "median_cost_vs_cheapest_tied_at_most": 2.0,
}


# ---- the saved predictions ------------------------------------------------------------------

def encode(labels: list[str], known: list[str]) -> str:
    """Labels as a string of indices into `known` (one character each)."""
    index = {label: ALPHABET[i] for i, label in enumerate(known)}
    return "".join(index[label] for label in labels)


def decode(coded: str) -> np.ndarray:
    """Label indices back from encode()'s string."""
    return np.array([ALPHABET.index(c) for c in coded], dtype=np.int16)


# ---- over seeds -----------------------------------------------------------------------------

def t_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float | None, float | None]:
    """(mean, low, high): the t-interval of the mean of `values`; low and high are None for one value."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None, None
    half = float(t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


# ---- ties -----------------------------------------------------------------------------------

def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                     confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean of a - b, low, high): the percentile interval of the mean difference over rows resampled in pairs.

    a and b are per-row scores on the same test rows (correctness, or correctness averaged over seeds).
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) == 0:
        raise ValueError("paired_bootstrap needs at least one test row")
    rows = np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))
    means = d[rows].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(d.mean()), float(low), float(high)


def tied(a: np.ndarray, b: np.ndarray, **kw) -> bool:
    """True when the paired bootstrap's interval of mean(a - b) contains 0: the test rows cannot separate them."""
    _, low, high = paired_bootstrap(a, b, **kw)
    return low <= 0.0 <= high


# ---- one scenario ---------------------------------------------------------------------------

def charged_seconds(name: str, record: dict) -> float:
    """A strategy's seconds per run: the mean over its seeds; one fitted on frozen features is charged its first
    seed's seconds (the seed that computed the features the later seeds found cached)."""
    from driftfit.strategies import STRATEGIES

    per_seed = record["seconds"].get("per_seed") or [record["seconds"]["mean"]]
    entry = STRATEGIES.get(name)
    if entry is not None and entry.fit_on_features and len(per_seed) > 1:
        return float(per_seed[0])
    return float(record["seconds"]["mean"])


def scores_on_draws(result: dict, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, dict]:
    """Per strategy and metric, its seeds' mean score on the whole test set (index 0) and on `resamples` draws of
    the test rows with replacement (indices 1..), the same draws for every strategy."""
    from driftfit.evaluation.gate import RESAMPLE_CHUNK, macro_f1, resample_counts

    truth = decode(result["test_labels"])
    n_labels, rows = len(result["labels"]), len(truth)
    if rows == 0:
        raise ValueError(f"scenario {result.get('name')!r} has no test rows")
    preds = {name: [decode(p) for p in s["predictions"]] for name, s in result["strategies"].items()}
    rng = np.random.default_rng(seed)
    out = {name: {m: [] for m in METRICS} for name in preds}
    chunks = [np.ones((1, rows))]
    for start in range(0, resamples, RESAMPLE_CHUNK):
        chunks.append(resample_counts(rows, min(RESAMPLE_CHUNK, resamples - start), rng).astype(float))
    for w in chunks:
        total = w.sum(axis=1)
        for name, runs in preds.items():
            out[name]["macro_f1"].append(np.mean([macro_f1(truth, p, n_labels, w) for p in runs], axis=0))
            out[name]["accuracy"].append(np.mean([(w @ (p == truth)) / total for p in runs], axis=0))
    return {name: {m: np.concatenate(v) for m, v in per.items()} for name, per in out.items()}


def cost_ratio(seconds: float, cheapest: float) -> float:
    return max(seconds, FLOOR_SECONDS) / max(cheapest, FLOOR_SECONDS)


def judge(result: dict, choice: str | None = None, resamples: int = RESAMPLES, metric: str = METRICS[0]) -> dict:
    """The verdict on one saved scenario by `metric` (macro-F1 unless asked): best, regret and tie of every
    strategy, cheapest tied, and the choice's (the saved one, or `choice` when re-scoring a different policy);
    every strategy's other metric and its regret beside it."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: expected one of {list(METRICS)}")
    other = next(m for m in METRICS if m != metric)
    draws = scores_on_draws(result, resamples)
    score = {n: float(d[metric][0]) for n, d in draws.items()}
    beside = {n: float(d[other][0]) for n, d in draws.items()}
    seconds = {n: charged_seconds(n, s) for n, s in result["strategies"].items()}
    best = max(score, key=lambda n: (score[n], -seconds[n]))
    best_other = max(beside.values())
    tail = (1 - CONFIDENCE) / 2
    per = {}
    for name in draws:
        gaps = draws[best][metric][1:] - draws[name][metric][1:]
        low, high = np.quantile(gaps, [tail, 1 - tail])
        per[name] = {metric: round(score[name], 4), other: round(beside[name], 4),
                     "seconds": round(seconds[name], 2),
                     "regret_points": round(100 * (score[best] - score[name]), 2),
                     f"{other}_regret_points": round(100 * (best_other - beside[name]), 2),
                     "gap_ci95_points": [round(100 * float(low), 2), round(100 * float(high), 2)],
                     "tied": bool(low <= 0.0 <= high)}
    cheapest = min((n for n in per if per[n]["tied"]), key=lambda n: (seconds[n], -score[n]))
    choice = choice or result["choice"]
    exhaustive = sum(seconds.values())
    selector = result["selector_seconds"] + seconds[choice]
    return {
        "metric": metric, "best": best, "cheapest_tied": cheapest, "strategies": per,
        "choice": {"strategy": choice, "regret_points": per[choice]["regret_points"],
                   f"{other}_regret_points": per[choice][f"{other}_regret_points"], "tied": per[choice]["tied"],
                   "tied_or_within_1": per[choice]["tied"] or per[choice]["regret_points"] <= WITHIN_POINTS,
                   "cost_vs_cheapest_tied": round(cost_ratio(selector, seconds[cheapest]), 2),
                   "training_cost_vs_cheapest_tied": round(cost_ratio(seconds[choice], seconds[cheapest]), 2)},
        "exhaustive_seconds": round(exhaustive, 2),
        "selector_compute_seconds": round(selector, 2),  # selecting (shift, rules, probes) + training the choice
        "selector_compute_fraction": round(selector / exhaustive, 4) if exhaustive else None,
    }


# ---- the suite ------------------------------------------------------------------------------

def _policy_row(picks: list[tuple[dict, str, float]]) -> dict:
    """Figures of one policy from (verdict, the strategy it runs, its compute seconds) per scenario."""
    regrets = [v["strategies"][s]["regret_points"] for v, s, _ in picks]
    ties = [v["strategies"][s]["tied"] for v, s, _ in picks]
    ratios = [cost_ratio(sec, v["strategies"][v["cheapest_tied"]]["seconds"]) for v, _, sec in picks]
    other = next(m for m in METRICS if m != picks[0][0].get("metric", METRICS[0]))
    other_regrets = [v["strategies"][s].get(f"{other}_regret_points") for v, s, _ in picks]
    n = len(picks)
    return {"scenarios": n,
            "mean_regret_points": round(float(np.mean(regrets)), 2),
            f"mean_{other}_regret_points": (round(float(np.mean(other_regrets)), 2)
                                            if None not in other_regrets else None),
            "share_tied": round(sum(ties) / n, 3),
            "share_tied_or_within_1": round(sum(t or r <= WITHIN_POINTS for t, r in zip(ties, regrets)) / n, 3),
            "compute_seconds": round(sum(sec for *_, sec in picks), 1),
            "median_cost_vs_cheapest_tied": round(float(np.median(ratios)), 2)}


def headline(verdicts: list[dict]) -> dict:
    """The selector against every fixed policy "always X" over the scenarios, the targets, and whether each is met.

    "always X" is scored on the scenarios where X ran (skip needs a champion); the best fixed policy is
    the one with the lowest mean regret among those that ran in every scenario.
    """
    if not verdicts:
        return {"scenarios": 0, "policies": {}, "targets": []}
    policies = {"selector": _policy_row([(v, v["choice"]["strategy"], v["selector_compute_seconds"])
                                         for v in verdicts])}
    names = sorted({n for v in verdicts for n in v["strategies"]})
    for name in names:
        picks = [(v, name, v["strategies"][name]["seconds"]) for v in verdicts if name in v["strategies"]]
        policies[f"always {name}"] = _policy_row(picks)
    exhaustive = sum(v["exhaustive_seconds"] for v in verdicts)
    fixed = {k: p for k, p in policies.items() if k != "selector" and p["scenarios"] == len(verdicts)}
    best_fixed = min(fixed, key=lambda k: fixed[k]["mean_regret_points"]) if fixed else None
    sel = policies["selector"]
    fraction = sel["compute_seconds"] / exhaustive if exhaustive else None
    targets = [
        {"target": "share tied with the best or within 1 point", "value": sel["share_tied_or_within_1"],
         "goal": f">= {TARGETS['share_tied_or_within_1_at_least']}",
         "met": sel["share_tied_or_within_1"] >= TARGETS["share_tied_or_within_1_at_least"]},
        {"target": f"mean regret at least {REGRET_MARGIN:g} point below every fixed policy's (best: {best_fixed})",
         "value": sel["mean_regret_points"],
         "goal": (f"<= {fixed[best_fixed]['mean_regret_points'] - REGRET_MARGIN:.2f}" if best_fixed else "n/a"),
         "met": bool(best_fixed)
                and sel["mean_regret_points"] <= fixed[best_fixed]["mean_regret_points"] - REGRET_MARGIN},
        {"target": "selector compute (selection + chosen training) / exhaustive training",
         "value": round(fraction, 4) if fraction is not None else None,
         "goal": f"<= {TARGETS['selector_compute_fraction_at_most']}",
         "met": fraction is not None and fraction <= TARGETS["selector_compute_fraction_at_most"]},
        {"target": "median compute (selection included) / cheapest tied strategy's",
         "value": sel["median_cost_vs_cheapest_tied"],
         "goal": f"<= {TARGETS['median_cost_vs_cheapest_tied_at_most']}",
         "met": sel["median_cost_vs_cheapest_tied"] <= TARGETS["median_cost_vs_cheapest_tied_at_most"]},
    ]
    return {"metric": verdicts[0].get("metric", METRICS[0]), "scenarios": len(verdicts),
            "exhaustive_seconds": round(exhaustive, 1), "best_fixed_policy": best_fixed, "policies": policies,
            "targets": targets}
