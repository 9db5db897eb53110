"""Select how to adapt the model: a documented, rule-based policy over the shift report.

Rules are tried in order; the first that matches decides. Thresholds are `strategy.*` in params.yaml.

  #  rule              when                                                      strategy (runner-up)
  1  forced            strategy.force is set                                     force (the policy's pick)
  2  champion_holds    champion exists; no label new to the reference or to the  skip (head)
                       champion; embeddings did not move (p >= significance or MMD² <
                       mmd_small); the champion scores >= skip_min_accuracy on the
                       incoming rows, or not significantly more than skip_max_drop
                       points below its score on its own test data, nor below a
                       linear probe fit on the batch (same validation rows), nor
                       below a probe fit on the memory + the batch (k-fold over
                       the incoming rows it was scored on)
  3  tokenizer_misfit  incoming [UNK] rate > unk_rate_bad, or tokens per word    scratch (full) if rows >=
                       > tokens_per_word_bad                                     scratch_min_examples; else
                                                                                 head (full) if the fewest
                                                                                 rows of a class <=
                                                                                 head_max_per_class; else
                                                                                 full (scratch)
  4a names_suffice     fewest training rows of a class <= few_shot_per_class,   zero_shot (ia3)
                       and the label names alone reach zero_shot_good on
                       validation, significantly above (one-sided z-test at
                       significance) a linear probe on the same rows and the
                       memory probe
  4b few_rows_first_   no champion; training rows <= contrastive_max_rows;       contrastive (head)
     model             linear-probe val accuracy < probe_good
  4  few_shot          fewest training rows of a class <= few_shot_per_class     head (ia3)
  5  features_suffice  linear-probe val accuracy >= probe_good                   head (ia3)
  5b domain_moved      champion exists; it knows every incoming label; embeddings  adapter (head)
                       moved (p < significance and MMD² >= mmd_small); fewest
                       training rows of a class >= moved_adapt_min_per_class
                       (and <= head_max_per_class)
  5c small_data        fewest training rows of a class <= head_max_per_class     head (adapter)
  6  large_data        training rows >= full_min_examples                        full (lora)
  7  default           otherwise                                                 adapter (full); with a label
                                                                                 the champion lacks: lora (full)

Why, rule by rule (the figures each was set from, with their commands: docs/decisions.md):
  1. A person knows something the measures don't; the policy's own pick is kept as the runner-up.
  2. The champion already serves this data and nothing moved: retraining costs compute and risks regressions.
     "Serves" is relative to its own test score, and the drop is tested one-sided against both samples'
     binomial noise, so a small batch's noise neither forces nor blocks a retrain. It yields when a head (seconds
     on cached features) fit on the memory plus the batch, or a probe on this batch, clearly beats it.
  3. Features built on a vocabulary that doesn't cover the text are weak (Rust et al. 2021): every weight must
     move, and only with much data does starting from scratch pay. With few rows per class fine-tuning cannot
     win back what the tokenizer lost, and a head on cached features costs a fraction.
  4. Too few examples to move millions of weights without overfitting. The head is a convex problem on frozen
     features, solved to convergence with its regularisation chosen on validation (driftfit.head_fit).
  4a. When the label names alone beat a probe fit on the few rows, and the head on the memory, by more than
     the noise of the few validation rows, nothing is trained. A tie goes to the head.
  4b. The first model of a task from a few hundred rows: tuning the encoder on pairs of same- and different-label
     rows, then a head (SetFit, Tunstall et al. 2022), beat the head on frozen features in every such scenario
     of the decision benchmark, by up to 4 macro-F1 points. It costs minutes on a CPU where the head costs
     seconds, so it is kept to small first runs. With a champion the pairs helped where the task changed, were
     mixed where only the domain moved and hurt where nothing did: a champion's batches keep the rules below.
  5. The frozen features already separate the classes: a head keeps them intact (Kumar et al. 2022).
  5b. The same task in a new domain with enough rows per class for the encoder to learn it: a head cannot move
     the frozen features, adapters can. They train on every remembered row (replay_all_on_moved_domain), so
     learning the new domain does not forget the old one.
  5c. Up to head_max_per_class rows per class, fine-tuning the encoder buys little over a converged head and
     costs several times the compute; a lower threshold also trapped the stream benchmark (an adapted champion
     made every later head forget too much for the gate).
  6. With ample in-domain data full fine-tuning is the most accurate (Howard & Ruder 2018; Devlin et al. 2019).
  7. Medium data: bottleneck adapters on the frozen encoder (Houlsby et al. 2019), a small module per layer that
     keeps the pretrained weights. With labels the champion never saw every remembered row is replayed, where
     the adapters proved unstable: LoRA there.

With `strategy.learned_rules` (a JSON tree that `python -m bench.learn_rules` fits on the decision benchmark's
fitting half, driftfit.learned_rules) the tree picks what to train in place of rules 3-7 (rule `learned`);
rules 1 and 2 stay as they are, and the reason gives the tree's tests in words next to the hand rules' pick.

With `strategy.mode: probe` the rules' choice is checked empirically: the rules' pick, its runner-up and
`strategy.probe_candidates` each train for `probe_max_steps` steps; the better half by validation accuracy
goes on with twice the steps, until one is left (successive halving). Its cost is in the decision record.

Measures a rule needs but the report lacks (no reference data, no champion, a probe that could not be
fit) make that rule not fire: the policy never skips on missing evidence.
"""

from __future__ import annotations

import logging
import math

from driftfit.policy import learned as learned_rules
from driftfit.config import StrategyConfig
from driftfit.errors import ConfigError, DataError
from driftfit.strategies import for_modality, spec

log = logging.getLogger(__name__)



# rule -> (strategy, runner-up): the table above. tokenizer_misfit has two rows, by data size.
CHOICES = {
    "champion_holds": ("skip", "head"),
    "tokenizer_misfit_large": ("scratch", "full"),
    "tokenizer_misfit": ("full", "scratch"),
    "tokenizer_misfit_small": ("head", "full"),
    "names_suffice": ("zero_shot", "ia3"),
    "few_rows_first_model": ("contrastive", "head"),
    "few_shot": ("head", "ia3"),
    "features_suffice": ("head", "ia3"),
    "domain_moved": ("adapter", "head"),
    "small_data": ("head", "adapter"),
    "large_data": ("full", "lora"),
    "default": ("adapter", "full"),
    "default_new_labels": ("lora", "full"),
}
for _pair in CHOICES.values():  # a rule names only strategies of the table (fails at import, not mid-run)
    for _name in _pair:
        spec(_name)


def _short_number(x) -> str:
    """4 significant digits for the reason text; n/a where the report has no such measure."""
    return "n/a" if x is None else f"{x:.4g}"


def _measures(report: dict, champion_exists: bool) -> dict:
    """The numbers the policy reads, flattened; None where the report has no such measure."""
    try:
        size = report["data_size"]
        rows, min_per_class = size["rows"], size["min_per_class"]
    except (KeyError, TypeError) as err:
        raise DataError(f"shift report lacks {err} (expected 'data_size' with 'rows' and 'min_per_class', as every "
                        "modality's measure writes it)") from None
    tok = (report.get("tokenizer") or {}).get("incoming") or {}  # texts only: other inputs have no tokenizer
    emb = report.get("embedding") or {}
    labels = report.get("label_shift") or {}
    champ = report.get("champion") or {}
    new = set(labels.get("new_labels") or []) | set(champ.get("uncovered_labels") or [])
    return {"champion_exists": champion_exists,
            "champion_val_accuracy": champ.get("val_accuracy") if champion_exists else None,
            "champion_incoming_accuracy": champ.get("incoming_accuracy") if champion_exists else None,
            "champion_incoming_rows": champ.get("incoming_rows"),
            "champion_own_test_accuracy": champ.get("own_test_accuracy") if champion_exists else None,
            "champion_own_test_rows": champ.get("own_test_rows"),
            "new_labels": sorted(new),
            "mmd2": emb.get("mmd2"), "p_value": emb.get("p_value"),
            "unk_rate": tok.get("unk_rate"), "tokens_per_word": tok.get("tokens_per_word"),
            "rows": rows, "min_per_class": min_per_class,
            "probe_accuracy": (report.get("probe") or {}).get("accuracy"),
            "probe_val_rows": (report.get("probe") or {}).get("val_rows"),
            "probe_memory_accuracy": ((report.get("probe") or {}).get("with_memory") or {}).get("accuracy"),
            "probe_memory_rows": ((report.get("probe") or {}).get("with_memory") or {}).get("rows"),
            "zero_shot_accuracy": (report.get("zero_shot") or {}).get("accuracy"),
            "zero_shot_val_rows": (report.get("zero_shot") or {}).get("val_rows")}


def significantly_above(gap: float, margin: float, first: tuple[float, int], second: tuple[float, int],
                        significance: float) -> tuple[bool, float]:
    """Is a gap between two accuracies (first minus second, each (accuracy, rows)) significantly more than
    `margin`? A one-sided z-test on two binomial proportions at `significance`; returns (verdict, z)."""
    from statistics import NormalDist

    (p1, n1), (p2, n2) = first, second
    z = (gap - margin) / max(math.sqrt(p1 * (1 - p1) / max(n1, 1) + p2 * (1 - p2) / max(n2, 1)), 1e-9)
    return z >= NormalDist().inv_cdf(1 - significance), z


def champion_holds(m: dict, cfg: StrategyConfig) -> str | None:
    """Why the champion still serves the incoming data (words), or None: it scores skip_min_accuracy there,
    or its drop from its own test score is not significantly beyond skip_max_drop points (one-sided z-test
    on two binomial proportions at `significance`)."""
    acc, n = m["champion_incoming_accuracy"], m["champion_incoming_rows"]
    if acc is None:  # an older report: validation only
        acc, n = m["champion_val_accuracy"], None
    if acc is None:
        return None
    if acc >= cfg.skip_min_accuracy:
        return f"The champion scores {_short_number(acc)} (>= {cfg.skip_min_accuracy}) on the incoming rows"
    own, n_own = m["champion_own_test_accuracy"], m["champion_own_test_rows"]
    if own is None or not n or not n_own:
        return None
    margin = cfg.skip_max_drop / 100
    drop = own - acc
    worse, z = significantly_above(drop, margin, (own, n_own), (acc, n), cfg.significance)
    if worse:
        return None
    # Nothing moved, but would training help? A linear probe on frozen features, fit on this batch alone,
    # scored on the same validation rows as the champion: a champion it clearly beats is worth replacing.
    probe, val_acc, n_val = m["probe_accuracy"], m["champion_val_accuracy"], m["probe_val_rows"]
    if probe is not None and val_acc is not None and n_val \
            and significantly_above(probe - val_acc, margin, (probe, n_val), (val_acc, n_val), cfg.significance)[0]:
        return None
    # ... nor by a head on the memory plus this batch (cross-validated over the incoming rows the champion
    # was scored on): more of the same data can lift a weak champion although nothing moved.
    mem, n_mem = m.get("probe_memory_accuracy"), m.get("probe_memory_rows")
    if mem is not None and n_mem and significantly_above(mem - acc, margin, (mem, n_mem), (acc, n),
                                                         cfg.significance)[0]:
        return None
    return (f"The champion scores {_short_number(acc)} on {n} incoming rows against {_short_number(own)} on {n_own} "
            f"rows of its own test data: a drop of {100 * drop:.1f} points, not significantly more than "
            f"{cfg.skip_max_drop:g} (z = {z:.2f}, p >= {cfg.significance})"
            + (f", and a linear probe on frozen features (validation {_short_number(probe)} against the "
               f"champion's {_short_number(val_acc)}) does not beat it by more" if probe is not None and n_val else "")
            + (f", nor does a head on the memory plus this batch ({_short_number(mem)}, cross-validated on the same "
               "incoming rows)" if mem is not None and n_mem else ""))


def names_beat_training(m: dict, cfg: StrategyConfig) -> str | None:
    """Why the label names beat what a head would learn (words), or None. A head costs seconds and learns from
    the rows, so the names must beat it beyond the noise of the few rows they were scored on: significantly
    above the linear probe on the same validation rows, and above the head on the memory plus the batch
    (cross-validated over more rows) where there is one: a perfect score on 8 validation rows says little."""
    zero, n = m["zero_shot_accuracy"], m.get("zero_shot_val_rows") or m.get("probe_val_rows")
    if not n:
        return None
    said = []
    for name, acc, rows in (("a linear probe on this batch", m["probe_accuracy"], m.get("probe_val_rows")),
                            ("a head on the memory plus this batch", m.get("probe_memory_accuracy"),
                             m.get("probe_memory_rows"))):
        if acc is None or not rows:
            continue
        above, z = significantly_above(zero - acc, 0.0, (zero, n), (acc, rows), cfg.significance)
        if not above:
            return None
        said.append(f"significantly above {name} ({_short_number(acc)} on {rows} rows; z = {z:.2f})")
    return ", ".join(said) or f"with no probe to weigh them against (on {n} validation rows)"


def _policy(m: dict, cfg: StrategyConfig) -> tuple[str, str, str, str]:
    """Rules 2-7: (strategy, runner_up, rule, reason)."""
    p, mmd2 = m["p_value"], m["mmd2"]
    not_moved = (p is not None and p >= cfg.significance) or (mmd2 is not None and mmd2 < cfg.mmd_small)
    held = champion_holds(m, cfg) if m["champion_exists"] and not m["new_labels"] and not_moved else None
    if held:
        # Skipping saves what the retrain would cost. When that is a head on cached features (seconds) and a
        # head on the memory plus this batch scores above the champion at all, retrain: the gate still
        # refuses a candidate that is not better, so the seconds buy the chance, not a risk.
        alternative = _policy({**m, "champion_exists": False}, cfg)
        mem, acc = m.get("probe_memory_accuracy"), m["champion_incoming_accuracy"]
        if spec(alternative[0]).fit_on_features and mem is not None and acc is not None and mem > acc:
            return (alternative[0], "skip", alternative[2],
                    f"{held}. Yet a head on the memory plus this batch scores {_short_number(mem)} on the incoming "
                    f"rows against the champion's {_short_number(acc)}, and it costs seconds to fit: retrained "
                    f"(the gate keeps the champion unless the candidate is better). {alternative[3]}")
        return (*CHOICES["champion_holds"], "champion_holds",
                f"{held}; it knows every incoming label, and the embeddings did not move (MMD² "
                f"{_short_number(mmd2)}, p = {_short_number(p)}).")

    unk, tpw = m["unk_rate"], m["tokens_per_word"]
    if (unk is not None and unk > cfg.unk_rate_bad) or (tpw is not None and tpw > cfg.tokens_per_word_bad):
        fit = (f"The tokenizer fits the incoming text badly ([UNK] rate {_short_number(unk)} vs {cfg.unk_rate_bad}, "
               f"{_short_number(tpw)} tokens per word vs {cfg.tokens_per_word_bad})")
        if m["rows"] >= cfg.scratch_min_examples:
            return (*CHOICES["tokenizer_misfit_large"], "tokenizer_misfit",
                    f"{fit} and {m['rows']} rows (>= {cfg.scratch_min_examples}) are enough to train from scratch.")
        if m["min_per_class"] <= cfg.head_max_per_class:
            return (*CHOICES["tokenizer_misfit_small"], "tokenizer_misfit",
                    f"{fit}; {m['rows']} rows are too few for a new tokenizer (< {cfg.scratch_min_examples}), and "
                    f"with {m['min_per_class']} rows in the smallest class (<= {cfg.head_max_per_class}) fine-tuning "
                    "cannot win back the tokens the vocabulary lacks: the head on frozen features, at a fraction of "
                    "the cost.")
        return (*CHOICES["tokenizer_misfit"], "tokenizer_misfit",
                f"{fit}; {m['rows']} rows (< {cfg.scratch_min_examples}) are too few to train from scratch, "
                "so every pretrained weight is fine-tuned.")

    zero = m["zero_shot_accuracy"]
    if m["min_per_class"] <= cfg.few_shot_per_class and zero is not None and zero >= cfg.zero_shot_good:
        beaten = names_beat_training(m, cfg)
        if beaten:
            return (*CHOICES["names_suffice"], "names_suffice",
                    f"The smallest class has {m['min_per_class']} training rows (<= {cfg.few_shot_per_class}) and the "
                    f"label names alone reach {_short_number(zero)} validation accuracy (>= {cfg.zero_shot_good}), "
                    f"{beaten}: too little data to do better by training; the pretrained model answers by the names.")

    probe = m["probe_accuracy"]
    if (not m["champion_exists"] and m["rows"] <= cfg.contrastive_max_rows
            and (probe is None or probe < cfg.probe_good)):
        return (*CHOICES["few_rows_first_model"], "few_rows_first_model",
                f"No champion yet, {m['rows']} training rows (<= {cfg.contrastive_max_rows}) and a linear probe on "
                f"frozen features at {_short_number(probe)} (< {cfg.probe_good}): the encoder is tuned on pairs of "
                "same- and different-label rows before its head is fit (SetFit), which beats a head on frozen "
                "features at this size for minutes of compute.")

    if m["min_per_class"] <= cfg.few_shot_per_class:
        return (*CHOICES["few_shot"], "few_shot",
                f"The smallest class has {m['min_per_class']} training rows (<= {cfg.few_shot_per_class}): "
                "too few to fine-tune the encoder; a head on its frozen features, solved to convergence, "
                "fits them in seconds.")

    if probe is not None and probe >= cfg.probe_good:
        return (*CHOICES["features_suffice"], "features_suffice",
                f"A linear probe on frozen features reaches {_short_number(probe)} validation accuracy "
                f"(>= {cfg.probe_good}): a head on those features suffices, and keeps them intact.")

    moved = p is not None and mmd2 is not None and not not_moved  # both measured, and the shift is real
    if (cfg.moved_adapt_min_per_class is not None and m["champion_exists"] and not m["new_labels"] and moved
            and cfg.moved_adapt_min_per_class <= m["min_per_class"] <= cfg.head_max_per_class):
        return (*CHOICES["domain_moved"], "domain_moved",
                f"The embeddings moved (MMD² {_short_number(mmd2)}, p = {_short_number(p)} < {cfg.significance}) while "
                f"the champion knows every incoming label, and the smallest class has {m['min_per_class']} training "
                f"rows (>= {cfg.moved_adapt_min_per_class}): the same task in a new domain, with enough rows for "
                f"the encoder to learn it; a head on frozen features cannot move them (linear probe "
                f"{_short_number(probe)}). Bottleneck adapters adapt the encoder and keep the pretrained weights.")

    if m["min_per_class"] <= cfg.head_max_per_class:
        return (*CHOICES["small_data"], "small_data",
                f"The smallest class has {m['min_per_class']} training rows (<= {cfg.head_max_per_class}): "
                "fine-tuning the encoder gains little over a converged head at this size, at several times "
                f"the compute (linear probe {_short_number(probe)}).")

    if m["rows"] >= cfg.full_min_examples:
        return (*CHOICES["large_data"], "large_data",
                f"{m['rows']} training rows (>= {cfg.full_min_examples}) are enough to fine-tune every weight; "
                f"the linear probe reached {_short_number(probe)} (< {cfg.probe_good}).")

    if m["new_labels"] and m["champion_exists"]:
        return (*CHOICES["default_new_labels"], "default",
                f"{m['rows']} training rows (< {cfg.full_min_examples}), smallest class {m['min_per_class']} "
                f"(> {cfg.head_max_per_class}), linear probe {_short_number(probe)} (< {cfg.probe_good}), and labels "
                f"the champion lacks ({', '.join(m['new_labels'])}): every remembered row is replayed beside them, "
                "where the bottleneck adapters proved unstable; low-rank updates (LoRA) adapt the encoder instead.")
    return (*CHOICES["default"], "default",
            f"{m['rows']} training rows (< {cfg.full_min_examples}), smallest class {m['min_per_class']} "
            f"(> {cfg.head_max_per_class}), "
            f"linear probe {_short_number(probe)} (< {cfg.probe_good}): enough rows per class for the encoder to "
            "learn more than a head on its frozen features, too few to fine-tune every weight; bottleneck adapters "
            "adapt it and keep the pretrained weights intact.")


def replays_everything(new_labels, champion_exists: bool, strategy: str, cfg: StrategyConfig,
                       rule: str | None = None) -> bool:
    """Whether training on this decision replays every remembered row rather than a fraction, when the chosen
    strategy trains beside a champion: the batch brings labels the champion never saw
    (strategy.replay_all_on_new_labels), or the domain moved under known labels (rule domain_moved,
    strategy.replay_all_on_moved_domain): the encoder moves towards the new domain and must keep the old one."""
    if not (champion_exists and spec(strategy).trains):
        return False
    return bool((new_labels and cfg.replay_all_on_new_labels)
                or (rule == "domain_moved" and cfg.replay_all_on_moved_domain))


def select_strategy(report: dict, cfg: StrategyConfig, champion_exists: bool, rules: dict | None = None) -> dict:
    """The decision record: strategy, runner-up, the rule that fired, the reason in words, the numbers.
    rules: learned rules (driftfit.learned_rules) already read; None: read strategy.learned_rules if set."""
    measures = _measures(report, champion_exists)
    strategy, runner_up, rule, reason = choose(measures, cfg, rules)
    if cfg.force is not None:
        pick = strategy
        runner_up = pick if pick != cfg.force else runner_up
        reason = (f"strategy.force = '{cfg.force}' in params.yaml; the policy would have chosen '{pick}' "
                  f"(rule {rule}: {reason})")
        strategy, rule = cfg.force, "forced"
    decision = {"strategy": strategy, "runner_up": runner_up, "rule": rule, "reason": reason,
                "measures": measures, "forced": cfg.force is not None, "replay": "fraction"}
    new = measures["new_labels"]
    if replays_everything(new, champion_exists, strategy, cfg, rule):
        decision["replay"] = "all"
        decision["reason"] += (
            f" New labels ({', '.join(new)}) next to the champion's: training replays every remembered row, so the "
            "model learns them without forgetting the old ones (the gate checks every past batch)." if new else
            " The adapters train on every remembered row beside the batch, so the encoder learns the new domain "
            "without forgetting the old one (the gate checks every past batch).")
    return decision


def choose(measures: dict, cfg: StrategyConfig, rules: dict | None = None) -> tuple[str, str, str, str]:
    """(strategy, runner_up, rule, reason) from the measures of a decision record: the hand rules 2-7, then the
    learned tree where they would train (strategy.learned_rules; `rules` if already read). The decision
    benchmark re-applies it to saved measures."""
    hand = _policy(measures, cfg)
    if cfg.learned_rules is None or hand[2] == "champion_holds":
        return hand
    return _learned(measures, rules or learned_rules.load(cfg.learned_rules), hand)


def _learned(measures: dict, rules: dict, hand: tuple[str, str, str, str]) -> tuple[str, str, str, str]:
    """The learned tree's pick of what to train, in place of rules 3-7; the hand rules' pick is kept in the
    reason and, when the tree's leaf names no other strategy, as the runner-up. A runner-up skip (a champion
    that holds, retrained because a head would beat it) stays the runner-up."""
    leaf = learned_rules.decide(rules, measures)
    strategy = leaf["strategy"]
    runner_up = "skip" if hand[1] == "skip" else (leaf["runner_up"] or (hand[0] if hand[0] != strategy else hand[1]))
    reason = (f"{learned_rules.explain(rules, leaf)} The hand rules would pick {hand[0]} (rule {hand[2]}: "
              f"{hand[3]})")
    return strategy, runner_up, "learned", reason


# ---- probe mode: short trial runs, successive halving ----------------------------------------

def within_noise(scores: dict[str, float], n_val: int, significance: float) -> list[str]:
    """The candidates whose validation accuracy is not significantly below the leader's (one-sided z-test on
    two binomial proportions over n_val rows at `significance`), leader first."""
    leader = max(scores, key=scores.get)
    best = scores[leader]
    tied = [name for name, acc in scores.items()
            if name == leader or not significantly_above(best - acc, 0.0, (best, n_val), (acc, n_val), significance)[0]]
    return sorted(tied, key=lambda n: n != leader)


def in_modality(decision: dict, modality: str) -> dict:
    """The decision with its strategies in the forms `modality` runs: a pick it does not run becomes its stand-in
    (driftfit.strategies.for_modality: IA3 -> LoRA for images), and the reason says so. Unchanged for texts."""
    chosen, runner_up = decision["strategy"], decision["runner_up"]
    mapped = for_modality(chosen, modality)
    try:
        decision = {**decision, "runner_up": for_modality(runner_up, modality) if runner_up else runner_up}
    except ConfigError:  # a runner-up the modality cannot run is no runner-up
        decision = {**decision, "runner_up": None}
    if decision["runner_up"] == mapped and runner_up != chosen:  # both picks map to one: the rules' next
        decision["runner_up"] = next((for_modality(s, modality) for s in ("full", "head")
                                      if for_modality(s, modality) != mapped), None)
    if mapped != chosen:
        decision.update(strategy=mapped, rules_choice=chosen)
        decision["reason"] += (f" '{chosen}' has no {modality} form; its stand-in '{mapped}' ({spec(mapped).summary}) "
                               "trains instead.")
    return decision
