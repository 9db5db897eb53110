"""Learned selection rules: a shallow decision tree over the shift measures, read from a JSON file
(`strategy.learned_rules`), applied where the hand rules would train.

The tree is fitted by `python -m bench.learn_rules` on the decision benchmark's fitting half: per scenario,
the target is the cheapest strategy tied with the best (what the selector should pick), the features are
the measures of the decision record (below). It only ever replaces the choice of *what to train*: a forced
strategy and a champion that holds (rule 2 of driftfit.policy.rules, the safety check against needless
retrains) are decided by the hand rules as before. Each choice is still explained in words: the tests the
measures passed on the way down the tree, and how many of the fitting scenarios in that leaf had which
strategy as their target.

The file:

    {"format": 1, "kind": "driftfit.learned_rules",
     "fitted_on": {"scenarios": "bench/scenarios-fit.yaml", "results": "...", "count": 21, "command": "..."},
     "tree": {"feature": "min_per_class", "at_most": 48.0,
              "then": {"strategy": "head", "counts": {"head": 7, "full": 1}},
              "else": {"feature": "probe_accuracy", "at_most": 0.71, "then": {...}, "else": {...}}}}

A node either splits (`feature` <= `at_most` goes to `then`, otherwise `else`) or is a leaf (`strategy`,
`counts`: the fitting scenarios that reached it, by target).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from driftfit.errors import ConfigError

FORMAT = 1
KIND = "driftfit.learned_rules"
MAX_DEPTH = 6  # a tree deeper than this is not a rule a person reads


@dataclass(frozen=True)
class Feature:
    name: str
    meaning: str
    value: Callable[[dict], float | None]  # from the decision record's measures; None when the report lacks it
    missing: float                          # used when the value is None, and why that value in `meaning`


def _gap(m: dict) -> float | None:
    probe, champ = m.get("probe_accuracy"), m.get("champion_incoming_accuracy")
    if probe is None:
        return None
    return probe - (champ if champ is not None else 0.0)


FEATURES: dict[str, Feature] = {f.name: f for f in [
    Feature("rows", "training rows of the batch", lambda m: m.get("rows"), 0.0),
    Feature("min_per_class", "training rows of its smallest class", lambda m: m.get("min_per_class"), 0.0),
    Feature("probe_accuracy", "a linear probe's validation accuracy on frozen pretrained features (0 if it could "
            "not be fit)", lambda m: m.get("probe_accuracy"), 0.0),
    Feature("zero_shot_accuracy", "validation accuracy of the label names alone (0 if not measured)",
            lambda m: m.get("zero_shot_accuracy"), 0.0),
    Feature("unk_rate", "share of [UNK] tokens in the incoming text", lambda m: m.get("unk_rate"), 0.0),
    Feature("tokens_per_word", "sub-word tokens per word of the incoming text",
            lambda m: m.get("tokens_per_word"), 1.0),
    Feature("mmd2", "embedding shift against the reference, MMD² (1 when there is no reference: a new task)",
            lambda m: m.get("mmd2"), 1.0),
    Feature("champion_exists", "1 when a champion serves, else 0", lambda m: float(bool(m.get("champion_exists"))),
            0.0),
    Feature("champion_accuracy", "the champion's accuracy on the incoming rows (0 without a champion)",
            lambda m: m.get("champion_incoming_accuracy"), 0.0),
    Feature("probe_gain", "linear probe accuracy minus the champion's on the incoming rows (the probe's accuracy "
            "without a champion)", _gap, 0.0),
    Feature("new_labels", "labels the champion or the reference never saw", lambda m: len(m.get("new_labels") or []),
            0.0),
]}


def features(measures: dict) -> dict[str, float]:
    """The tree's inputs from a decision record's measures (missing ones filled as FEATURES says)."""
    out = {}
    for f in FEATURES.values():
        v = f.value(measures)
        out[f.name] = float(f.missing if v is None else v)
    return out


# ---- reading and checking the file ----------------------------------------------------------------

def _check_node(node, where: str, source: str, depth: int) -> None:
    from driftfit.strategies import names as strategy_names, spec

    def bad(msg: str) -> ConfigError:
        return ConfigError(f"learned rules '{source}': {where}: {msg}")

    if not isinstance(node, dict):
        raise bad(f"expected a node (an object), got {type(node).__name__}")
    if depth > MAX_DEPTH:
        raise bad(f"the tree is deeper than {MAX_DEPTH} levels: not a readable rule")
    if "strategy" in node:
        name = node["strategy"]
        if name not in strategy_names():
            raise bad(f"strategy = {name!r}: expected one of {', '.join(strategy_names())}")
        if not spec(name).makes_model:
            raise bad(f"strategy = {name!r}: a learned rule picks what to train; keeping the champion is the "
                      "hand rules' call (champion_holds)")
        counts = node.get("counts", {})
        if not isinstance(counts, dict) or not all(isinstance(v, int) and v >= 0 for v in counts.values()):
            raise bad("counts must map strategies to scenario counts")
        return
    missing = [k for k in ("feature", "at_most", "then", "else") if k not in node]
    if missing:
        raise bad(f"expected a leaf (strategy) or a split (feature, at_most, then, else); missing {', '.join(missing)}")
    if node["feature"] not in FEATURES:
        raise bad(f"feature = {node['feature']!r}: expected one of {', '.join(FEATURES)}")
    t = node["at_most"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise bad(f"at_most = {t!r}: expected a finite number")
    _check_node(node["then"], f"{where}.then", source, depth + 1)
    _check_node(node["else"], f"{where}.else", source, depth + 1)


def check(rules: dict, source: str = "<rules>") -> dict:
    """The rules, or a ConfigError naming the file and the key that is wrong."""
    if not isinstance(rules, dict) or rules.get("kind") != KIND:
        raise ConfigError(f"learned rules '{source}': not a learned-rules file (expected \"kind\": \"{KIND}\", as "
                          "python -m bench.learn_rules writes)")
    if rules.get("format") != FORMAT:
        raise ConfigError(f"learned rules '{source}': format {rules.get('format')!r}, expected {FORMAT}: fit them again "
                          "with python -m bench.learn_rules")
    if "tree" not in rules:
        raise ConfigError(f"learned rules '{source}': no \"tree\"")
    _check_node(rules["tree"], "tree", source, 0)
    return rules


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"strategy.learned_rules = '{path}': no such file (fit one with python -m bench.learn_rules, "
                          "or set it to null for the hand rules)")
    try:
        rules = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"learned rules '{path}': not valid JSON ({err})") from None
    return check(rules, str(path))


# ---- applying --------------------------------------------------------------------------------------

def _number(x: float) -> str:
    return f"{x:.4g}"


def decide(rules: dict, measures: dict) -> dict:
    """The leaf the measures reach: strategy, runner-up (the leaf's next most common target, or None), the
    tests passed on the way (as words) and the leaf's counts."""
    x = features(measures)
    node, path = rules["tree"], []
    while "strategy" not in node:
        name, t = node["feature"], float(node["at_most"])
        went = x[name] <= t
        path.append(f"{name} {_number(x[name])} {'<=' if went else '>'} {_number(t)}")
        node = node["then" if went else "else"]
    counts = {k: v for k, v in sorted(node.get("counts", {}).items(), key=lambda kv: -kv[1])}
    others = [k for k, v in counts.items() if k != node["strategy"] and v > 0]
    return {"strategy": node["strategy"], "runner_up": others[0] if others else None, "path": path,
            "counts": counts}


def explain(rules: dict, leaf: dict) -> str:
    """One sentence: why the learned rules chose this strategy."""
    fitted = rules.get("fitted_on", {})
    n = sum(leaf["counts"].values())
    where = " and ".join(leaf["path"]) if leaf["path"] else "every batch"
    target = (f"; {leaf['counts'].get(leaf['strategy'], 0)} of the {n} fitting scenarios there had it as their "
              "cheapest strategy tied with the best" if n else "")
    return (f"Learned rules ({fitted.get('scenarios', 'a fitting suite')}, {fitted.get('count', '?')} scenarios): "
            f"{where} -> {leaf['strategy']}{target}.")


def to_text(rules: dict) -> str:
    """The whole tree as indented if/else lines (for the README and the benchmark report)."""
    lines: list[str] = []

    def walk(node: dict, indent: str) -> None:
        if "strategy" in node:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(node.get("counts", {}).items(), key=lambda kv: -kv[1]))
            lines.append(f"{indent}-> {node['strategy']}" + (f"   ({counts})" if counts else ""))
            return
        lines.append(f"{indent}if {node['feature']} <= {_number(float(node['at_most']))}:")
        walk(node["then"], indent + "    ")
        lines.append(f"{indent}else:")
        walk(node["else"], indent + "    ")

    walk(rules["tree"], "")
    return "\n".join(lines)
