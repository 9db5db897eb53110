"""Learn the selector's rules from the decision benchmark: a shallow decision tree over the shift measures,
fit on the fitting half, chosen by leaving one scenario family out, judged on the evaluation half.

    python -m bench.learn_rules --fit bench/scenarios-fit.yaml --fit-results bench/results/fit \
        [--eval bench/scenarios-eval.yaml --eval-results bench/results/eval] [--out bench/results/learned]

Reads the saved scenarios of `python -m bench.decision` (no training). Per scenario where the hand rules
would train (not champion_holds, not forced): the features are driftfit.learned_rules.FEATURES of the
decision record's measures, the target is the cheapest strategy that the paired bootstrap ties with the
best (what a cost-aware selector should pick; skip excluded: keeping the champion stays the hand rules'
call). Trees of depth 0 (one strategy for all: the best "always X"), 1, 2 and 3 are scored by leave one
family out on the fitting half (each family's scenarios predicted by a tree fit without them, then judged
by their regret); the depth with the lowest mean regret wins (the shallower on a tie) and is refit on the
whole fitting half. Writes <out>/learned_rules.json (the file `strategy.learned_rules` reads) and
<out>/learned_rules.md: the tree as rules, the cross-validation, and, with --eval, the learned rules
against the hand rules and every fixed policy on the evaluation half, never used in fitting. Ship the
tree (set strategy.learned_rules) only if it beats the hand rules there.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from pathlib import Path

import numpy as np

from bench import stats
from bench.decision import current_choice, load_scenarios, saved_results
from driftfit.policy import learned as learned_rules
from driftfit.io import write_json, write_text
from driftfit.strategies import spec as strategy_spec

log = logging.getLogger(__name__)

DEPTHS = (0, 1, 2, 3)
MIN_LEAF = 2  # scenarios per leaf: no rule from a single scenario
HAND_ONLY = ("champion_holds", "forced")  # decided by the hand rules, learned or not


def consults_tree(result: dict) -> bool:
    """Whether the selector asks the learned tree in this scenario (the hand rules would train)."""
    return result["rule"] not in HAND_ONLY


def target(verdict: dict) -> str:
    """The cheapest strategy tied with the best that makes a model; if only skip is tied, the most accurate
    strategy that makes one (then the cheapest among equals)."""
    per = verdict["strategies"]
    makes = [n for n in per if strategy_spec(n).makes_model]
    tied = [n for n in makes if per[n]["tied"]]
    if tied:
        return min(tied, key=lambda n: (per[n]["seconds"], per[n]["regret_points"]))
    return min(makes, key=lambda n: (per[n]["regret_points"], per[n]["seconds"]))


def table(results: list[dict]) -> tuple[np.ndarray, list[str], list[dict]]:
    """Feature matrix (FEATURES order), targets and verdicts of the scenarios that consult the tree."""
    rows, targets, verdicts = [], [], []
    for r in results:
        if not consults_tree(r):
            continue
        v = stats.judge(r)
        x = learned_rules.features(r["measures"])
        rows.append([x[name] for name in learned_rules.FEATURES])
        targets.append(target(v))
        verdicts.append(v)
    return np.array(rows, dtype=float).reshape(len(rows), len(learned_rules.FEATURES)), targets, verdicts


def _threshold(t: float) -> float:
    return float(f"{t:.4g}")


def fit_tree(x: np.ndarray, y: list[str], depth: int, source: dict) -> dict:
    """A learned-rules document: sklearn's CART tree of that depth (depth 0: the most common target), turned
    into the nested form driftfit.learned_rules reads, with each leaf's training counts."""
    from sklearn.tree import DecisionTreeClassifier

    names = list(learned_rules.FEATURES)
    if depth == 0 or len(set(y)) == 1:
        counts = {k: y.count(k) for k in sorted(set(y))}
        tree = {"strategy": max(sorted(counts), key=lambda k: counts[k]), "counts": counts}
    else:
        model = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=MIN_LEAF, random_state=0).fit(x, y)
        t = model.tree_

        def node(i: int) -> dict:
            if t.children_left[i] == -1:
                return {"strategy": str(model.classes_[int(np.argmax(t.value[i][0]))]), "counts": {}}
            return {"feature": names[t.feature[i]], "at_most": _threshold(t.threshold[i]),
                    "then": node(t.children_left[i]), "else": node(t.children_right[i])}

        tree = node(0)
    rules = learned_rules.check({"format": learned_rules.FORMAT, "kind": learned_rules.KIND, "fitted_on": source,
                                 "tree": tree})
    if depth and len(set(y)) > 1:  # counts by routing the training rows through the rounded tree
        for row, label in zip(x, y):
            leaf = _leaf(rules["tree"], dict(zip(names, row)))
            leaf["counts"][label] = leaf["counts"].get(label, 0) + 1
    return rules


def _leaf(node: dict, x: dict) -> dict:
    while "strategy" not in node:
        node = node["then" if x[node["feature"]] <= node["at_most"] else "else"]
    return node


@functools.lru_cache(maxsize=4)
def _hand_params(params_path: str):
    from driftfit.config import load_params

    return load_params(params_path, {"strategy.learned_rules": None})


def hand_choice(result: dict, params_path: str = "params.yaml") -> str:
    """The current hand rules' choice for a saved scenario (the params file's thresholds, no learned rules)."""
    return current_choice(result, _hand_params(str(params_path)))


def choose(rules: dict, result: dict, params_path: str = "params.yaml") -> str:
    """The selector's choice with these learned rules: the hand rules' where they decide, else the tree's."""
    if not consults_tree(result):
        return hand_choice(result, params_path)
    return learned_rules.decide(rules, result["measures"])["strategy"]


def score(results: list[dict], picks: list[str]) -> dict:
    """The headline row of a policy that chose `picks` (one per result)."""
    verdicts = [stats.judge(r, choice=c) for r, c in zip(results, picks) if c in r["strategies"]]
    row = stats.headline(verdicts).get("policies", {}).get("selector", {})
    return {**row, "unscored": sum(c not in r["strategies"] for r, c in zip(results, picks))}


def cross_validate(results: list[dict], depth: int, params_path: str = "params.yaml") -> dict:
    """Leave one family out: each family's choices come from a tree fit on the other families."""
    picks: dict[str, str] = {}
    families = sorted({r["family"] for r in results})
    for held in families:
        train = [r for r in results if r["family"] != held]
        x, y, _ = table(train)
        rules = fit_tree(x, y, depth, {"scenarios": f"all but {held}", "count": len(y)}) if len(y) else None
        for r in results:
            if r["family"] == held:
                picks[r["name"]] = choose(rules, r, params_path) if rules else hand_choice(r, params_path)
    return {"depth": depth, "picks": picks, **score(results, [picks[r["name"]] for r in results])}


def learn(fit_path: str, fit_results: str, eval_path: str | None = None, eval_results: str | None = None,
          out: str = "bench/results/learned", params_path: str = "params.yaml") -> dict:
    fit_spec = load_scenarios(fit_path)
    results, missing, _ = saved_results(fit_spec, Path(fit_results))
    if not results:
        raise SystemExit(f"no saved results of {fit_path} under {fit_results}: run python -m bench.decision first")
    cv = [cross_validate(results, d, params_path) for d in DEPTHS]
    best = min(cv, key=lambda c: (c["mean_regret_points"], c["depth"]))
    x, y, _ = table(results)
    command = (f"python -m bench.learn_rules --fit {fit_path} --fit-results {fit_results}"
               + (f" --eval {eval_path} --eval-results {eval_results}" if eval_path else "") + f" --out {out}")
    source = {"scenarios": fit_path, "results": fit_results, "count": len(y), "families": len({r["family"] for r in
                                                                                                results}),
              "depth": best["depth"], "command": command,
              "fitted": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    rules = fit_tree(x, y, best["depth"], source)
    report = {"command": command, "fit": {"scenarios": fit_path, "run": len(results), "not_run": missing,
                                          "consult_tree": len(y), "targets": dict(sorted(
                                              {t: y.count(t) for t in set(y)}.items()))},
              "cross_validation": [{k: v for k, v in c.items() if k != "picks"} for c in cv],
              "chosen_depth": best["depth"],
              "fit_in_sample": {"hand rules": score(results, [hand_choice(r, params_path) for r in results]),
                                "learned": score(results, [choose(rules, r, params_path) for r in results])},
              "rules": rules}
    if eval_path:
        eval_spec = load_scenarios(eval_path)
        ev, ev_missing, _ = saved_results(eval_spec, Path(eval_results))
        head = stats.headline([stats.judge(r) for r in ev])
        report["eval"] = {"scenarios": eval_path, "run": len(ev), "not_run": ev_missing,
                          "hand rules": score(ev, [hand_choice(r, params_path) for r in ev]),
                          "learned": score(ev, [choose(rules, r, params_path) for r in ev]),
                          "fixed": {k: v for k, v in head.get("policies", {}).items() if k != "selector"},
                          "per_scenario": [{"name": r["name"], "hand": hand_choice(r, params_path), "learned": choose(rules, r, params_path),
                                            "cheapest_tied": stats.judge(r)["cheapest_tied"]} for r in ev]}
        h, lrn = report["eval"]["hand rules"], report["eval"]["learned"]
        report["ship"] = bool(ev) and lrn.get("mean_regret_points", 1e9) < h.get("mean_regret_points", -1) and \
            lrn.get("share_tied_or_within_1", 0) >= h.get("share_tied_or_within_1", 1)
    out_dir = Path(out)
    write_json(out_dir / "learned_rules.json", rules)
    write_json(out_dir / "learn_rules.json", report)
    write_text(out_dir / "learned_rules.md", render_md(report))
    return report


def _row(name: str, p: dict) -> str:
    if not p:
        return f"| {name} | 0 | | | | | |"
    return (f"| {name} | {p['scenarios']} | {p['mean_regret_points']:.2f} | {p['share_tied']:.0%} | "
            f"{p['share_tied_or_within_1']:.0%} | {p['compute_seconds']:.0f} | {p['median_cost_vs_cheapest_tied']:.2f}x |")


HEADER = ["| policy | scenarios | mean regret (points) | tied with the best | tied or within 1 point | compute (s) | "
          "median cost / cheapest tied |", "|---|---|---|---|---|---|---|"]


def render_md(report: dict) -> str:
    fit = report["fit"]
    lines = ["# Learned selection rules", "", f"Command: `{report['command']}`", "",
             f"Fitting half: {fit['run']} scenarios run ({len(fit['not_run'])} not run"
             + (f": {', '.join(fit['not_run'])}" if fit["not_run"] else "") + f"); {fit['consult_tree']} of them reach "
             "the tree (the others are decided by champion_holds or forced). Targets (cheapest strategy tied with the "
             "best): " + ", ".join(f"{k} {v}" for k, v in fit["targets"].items()) + ".", "",
             "## The rules (depth chosen by leaving one family out)", "", "```",
             learned_rules.to_text(report["rules"]), "```", "",
             "## Cross-validation on the fitting half (leave one family out)", "",
             "Depth 0 is one strategy for every scenario (the most common target of the other families).", "",
             *HEADER, *[_row(f"depth {c['depth']}" + (" (chosen)" if c["depth"] == report["chosen_depth"] else ""), c)
                        for c in report["cross_validation"]], "",
             "## In-sample on the fitting half", "",
             "The hand rules (today's params.yaml thresholds, re-applied to the saved measures) were also set on this "
             "half, so both rows are in-sample.", "",
             *HEADER, *[_row(k, v) for k, v in report["fit_in_sample"].items()], ""]
    ev = report.get("eval")
    if ev:
        lines += ["## Evaluation half (never used in fitting)", "",
                  f"{ev['run']} scenarios run ({len(ev['not_run'])} not run"
                  + (f": {', '.join(ev['not_run'])}" if ev["not_run"] else "") + ").", "",
                  *HEADER, _row("hand rules", ev["hand rules"]), _row("**learned rules**", ev["learned"]),
                  *[_row(k, v) for k, v in sorted(ev["fixed"].items())], "",
                  f"Ship the learned rules (lower mean regret than the hand rules, no fewer tied or within 1 point): "
                  f"**{'yes' if report.get('ship') else 'no'}**.", "",
                  "| scenario | hand rules | learned | cheapest tied |", "|---|---|---|---|",
                  *[f"| {p['name']} | {p['hand']} | {p['learned']} | {p['cheapest_tied']} |" for p in ev["per_scenario"]],
                  ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.learn_rules", description=__doc__.splitlines()[0])
    ap.add_argument("--fit", default="bench/scenarios-fit.yaml", help="the fitting half's scenario file")
    ap.add_argument("--fit-results", default="bench/results/fit", help="its bench.decision results folder")
    ap.add_argument("--eval", default=None, help="the evaluation half's scenario file (judged, never fit)")
    ap.add_argument("--eval-results", default="bench/results/eval", help="its bench.decision results folder")
    ap.add_argument("--out", default="bench/results/learned", help="folder for learned_rules.json and .md")
    ap.add_argument("--params", default="params.yaml", help="params whose hand-rule thresholds are compared")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    report = learn(a.fit, a.fit_results, a.eval, a.eval_results if a.eval else None, a.out, a.params)
    print(learned_rules.to_text(report["rules"]))
    for c in report["cross_validation"]:
        print(f"depth {c['depth']}: leave-one-family-out mean regret {c.get('mean_regret_points')}, "
              f"tied or within 1: {c.get('share_tied_or_within_1')}")
    if "eval" in report:
        print("evaluation half:", {k: report["eval"][k].get("mean_regret_points") for k in ("hand rules", "learned")},
              "ship:", report["ship"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
