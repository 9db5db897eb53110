"""The decision benchmark's statistics: intervals over seeds, ties on test predictions, verdicts, the headline.

Pure functions over the saved per-scenario results of bench/decision.py (no training, no files), so a
result can be re-scored, or the tie rule changed, without training anything again.

Definitions (the README and decision.md say the same):
- Accuracy and macro-F1 of a strategy: the mean over its training seeds, with a 95% t-interval
  (mean ± t(0.975, n-1) · sd / sqrt(n), sd with n-1; none for one seed).
- Best: the strategy with the highest mean test accuracy (ties: the one with fewer mean seconds).
- Regret of X: 100 · (best's mean accuracy - X's mean accuracy), in points.
- Tied with the best: per test row, each strategy's correctness averaged over its seeds (0, 1/3, ...,
  1 for three seeds); the rows are resampled with replacement (paired: the same rows for both), 2,000
  times from a fixed seed, and the mean of (best - X) taken each time. X is tied with the best when
  the 95% percentile interval of those means (2.5th to 97.5th percentile) contains 0. The best is
  tied with itself.
- Cheapest tied: among the strategies tied with the best, the one with the fewest mean seconds.
- Cost relative to the cheapest tied: chosen seconds / cheapest tied seconds, each floored at 1 s
  (keeping the champion costs 0 s; the floor keeps the ratio finite and reads "30 s vs 0 s" as 30x).
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000          # bootstrap resamples: more = steadier interval ends, linear in time
BOOTSTRAP_SEED = 0        # fixed, so a verdict is the same every time it is computed
CONFIDENCE = 0.95
WITHIN_POINTS = 1.0       # "within 1 point": regret at most this many accuracy points
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

def correctness(result: dict) -> dict[str, np.ndarray]:
    """Per strategy, each test row's correctness averaged over its seeds."""
    truth = decode(result["test_labels"])
    return {name: np.mean([decode(p) == truth for p in s["predictions"]], axis=0)
            for name, s in result["strategies"].items()}


def cost_ratio(seconds: float, cheapest: float) -> float:
    return max(seconds, FLOOR_SECONDS) / max(cheapest, FLOOR_SECONDS)


def judge(result: dict, choice: str | None = None, resamples: int = RESAMPLES) -> dict:
    """The verdict on one saved scenario: best, regret and tie of every strategy, cheapest tied, and the
    choice's (the saved one, or `choice` when re-scoring a different policy)."""
    correct = correctness(result)
    acc = {n: float(c.mean()) for n, c in correct.items()}
    seconds = {n: float(s["seconds"]["mean"]) for n, s in result["strategies"].items()}
    best = max(acc, key=lambda n: (acc[n], -seconds[n]))
    per = {}
    for name in correct:
        _, low, high = paired_bootstrap(correct[best], correct[name], resamples=resamples)
        per[name] = {"accuracy": round(acc[name], 4), "seconds": round(seconds[name], 2),
                     "regret_points": round(100 * (acc[best] - acc[name]), 2),
                     "gap_ci95_points": [round(100 * low, 2), round(100 * high, 2)],
                     "tied": bool(low <= 0.0 <= high)}
    cheapest = min((n for n in per if per[n]["tied"]), key=lambda n: (seconds[n], -acc[n]))
    choice = choice or result["choice"]
    exhaustive = sum(seconds.values())
    selector = result["selector_seconds"] + seconds[choice]
    return {
        "best": best, "cheapest_tied": cheapest, "strategies": per,
        "choice": {"strategy": choice, "regret_points": per[choice]["regret_points"], "tied": per[choice]["tied"],
                   "tied_or_within_1": per[choice]["tied"] or per[choice]["regret_points"] <= WITHIN_POINTS,
                   "cost_vs_cheapest_tied": round(cost_ratio(seconds[choice], seconds[cheapest]), 2)},
        "exhaustive_seconds": round(exhaustive, 2),
        "selector_compute_seconds": round(selector, 2),  # selecting (shift, rules, probes) + training the choice
        "selector_compute_fraction": round(selector / exhaustive, 4) if exhaustive else None,
    }


# ---- the suite ------------------------------------------------------------------------------

def _policy_row(picks: list[tuple[dict, str, float]]) -> dict:
    """Figures of one policy from (verdict, the strategy it runs, its compute seconds) per scenario."""
    regrets = [v["strategies"][s]["regret_points"] for v, s, _ in picks]
    ties = [v["strategies"][s]["tied"] for v, s, _ in picks]
    ratios = [cost_ratio(v["strategies"][s]["seconds"], v["strategies"][v["cheapest_tied"]]["seconds"])
              for v, s, _ in picks]
    n = len(picks)
    return {"scenarios": n,
            "mean_regret_points": round(float(np.mean(regrets)), 2),
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
        {"target": f"mean regret below the best fixed policy's ({best_fixed})", "value": sel["mean_regret_points"],
         "goal": f"< {fixed[best_fixed]['mean_regret_points']}" if best_fixed else "n/a",
         "met": bool(best_fixed) and sel["mean_regret_points"] < fixed[best_fixed]["mean_regret_points"]},
        {"target": "selector compute (selection + chosen training) / exhaustive training",
         "value": round(fraction, 4) if fraction is not None else None,
         "goal": f"<= {TARGETS['selector_compute_fraction_at_most']}",
         "met": fraction is not None and fraction <= TARGETS["selector_compute_fraction_at_most"]},
        {"target": "median chosen / cheapest tied compute", "value": sel["median_cost_vs_cheapest_tied"],
         "goal": f"<= {TARGETS['median_cost_vs_cheapest_tied_at_most']}",
         "met": sel["median_cost_vs_cheapest_tied"] <= TARGETS["median_cost_vs_cheapest_tied_at_most"]},
    ]
    return {"scenarios": len(verdicts), "exhaustive_seconds": round(exhaustive, 1), "best_fixed_policy": best_fixed,
            "policies": policies, "targets": targets}
