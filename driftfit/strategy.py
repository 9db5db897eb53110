"""Select how to adapt the model: a documented, rule-based policy over the shift report.

Rules are tried in order; the first that matches decides. Thresholds are `strategy.*` in params.yaml.

  #  rule              when                                                      strategy (runner-up)
  1  forced            strategy.force is set                                     force (the policy's pick)
  2  champion_holds    champion exists; no label new to the reference or to the  skip (head)
                       champion; embeddings did not move (p >= significance or MMD² <
                       mmd_small); champion val accuracy >= skip_min_accuracy
  3  tokenizer_misfit  incoming [UNK] rate > unk_rate_bad, or tokens per word    scratch (full) if rows >=
                       > tokens_per_word_bad                                     scratch_min_examples,
                                                                                 else full (scratch)
  4  few_shot          fewest training rows of a class <= few_shot_per_class     head (lora)
  5  features_suffice  linear-probe val accuracy >= probe_good                   head (partial)
  6  large_data        training rows >= full_min_examples                        full (lora)
  7  default           otherwise                                                 lora (partial)

Why, rule by rule:
  1. A person knows something the measures don't; the policy's own pick is kept as the runner-up.
  2. The champion already serves this data and nothing moved: retraining costs compute and risks regressions.
  3. Features built on a vocabulary that doesn't cover the text are weak (Rust et al. 2021, "How Good is
     Your Tokenizer?": sub-words per word predict downstream quality; an [UNK] carries no information):
     every weight, embeddings included, must move; only with much data does starting from scratch pay.
  4. Too few examples to move millions of weights without overfitting; a linear head on frozen features
     is the safe estimator and cannot distort them (Kumar et al. 2022, "Fine-Tuning can Distort
     Pretrained Features and Underperform Out-of-Distribution").
  5. The frozen features already separate the classes; training only the head keeps them intact and
     keeps what they knew out of distribution (Kumar et al. 2022: linear probing first).
  6. With ample in-domain data, full fine-tuning is the most accurate and overfitting is no longer the
     risk (Howard & Ruder 2018; Devlin et al. 2019).
  7. Small/medium data: low-rank updates match full fine-tuning with a fraction of the trainable weights
     and forget less (Hu et al. 2021, "LoRA"; Biderman et al. 2024, "LoRA Learns Less and Forgets Less").

With `strategy.mode: probe` the rules' choice is checked empirically: the rules' pick, its runner-up and
`strategy.probe_candidates` each train for `probe_max_steps` steps; the better half by validation accuracy
goes on with twice the steps, until one is left (successive halving). Its cost is in the decision record.

Measures a rule needs but the report lacks (no reference data, no champion, a probe that could not be
fit) make that rule not fire: the policy never skips on missing evidence.
"""

from __future__ import annotations

import logging
from pathlib import Path

from driftfit.config import Params, StrategyConfig
from driftfit.errors import DataError
from driftfit.io import read_json, write_json

log = logging.getLogger(__name__)



def _f(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _measures(report: dict, champion_exists: bool) -> dict:
    """The numbers the policy reads, flattened; None where the report has no such measure."""
    try:
        tok, size = report["tokenizer"]["incoming"], report["data_size"]
        rows, min_per_class = size["rows"], size["min_per_class"]
    except (KeyError, TypeError) as err:
        raise DataError(f"shift report lacks {err} (expected 'tokenizer.incoming' and 'data_size' "
                        "as written by driftfit.shift)") from None
    emb = report.get("embedding") or {}
    labels = report.get("label_shift") or {}
    champ = report.get("champion") or {}
    new = set(labels.get("new_labels") or []) | set(champ.get("uncovered_labels") or [])
    return {"champion_exists": champion_exists,
            "champion_val_accuracy": champ.get("val_accuracy") if champion_exists else None,
            "new_labels": sorted(new),
            "mmd2": emb.get("mmd2"), "p_value": emb.get("p_value"),
            "unk_rate": tok.get("unk_rate"), "tokens_per_word": tok.get("tokens_per_word"),
            "rows": rows, "min_per_class": min_per_class,
            "probe_accuracy": (report.get("probe") or {}).get("accuracy")}


def _policy(m: dict, cfg: StrategyConfig) -> tuple[str, str, str, str]:
    """Rules 2-7: (strategy, runner_up, rule, reason)."""
    acc, p, mmd2 = m["champion_val_accuracy"], m["p_value"], m["mmd2"]
    not_moved = (p is not None and p >= cfg.significance) or (mmd2 is not None and mmd2 < cfg.mmd_small)
    if m["champion_exists"] and not m["new_labels"] and not_moved and acc is not None \
            and acc >= cfg.skip_min_accuracy:
        return ("skip", "head", "champion_holds",
                f"The champion scores {_f(acc)} (>= {cfg.skip_min_accuracy}) on incoming validation, knows "
                f"every incoming label, and the embeddings did not move (MMD² {_f(mmd2)}, p = {_f(p)}).")

    unk, tpw = m["unk_rate"], m["tokens_per_word"]
    if (unk is not None and unk > cfg.unk_rate_bad) or (tpw is not None and tpw > cfg.tokens_per_word_bad):
        fit = (f"The tokenizer fits the incoming text badly ([UNK] rate {_f(unk)} vs {cfg.unk_rate_bad}, "
               f"{_f(tpw)} tokens per word vs {cfg.tokens_per_word_bad})")
        if m["rows"] >= cfg.scratch_min_examples:
            return ("scratch", "full", "tokenizer_misfit",
                    f"{fit} and {m['rows']} rows (>= {cfg.scratch_min_examples}) are enough to train from scratch.")
        return ("full", "scratch", "tokenizer_misfit",
                f"{fit}; {m['rows']} rows (< {cfg.scratch_min_examples}) are too few to train from scratch, "
                "so every pretrained weight is fine-tuned.")

    if m["min_per_class"] <= cfg.few_shot_per_class:
        return ("head", "lora", "few_shot",
                f"The smallest class has {m['min_per_class']} training rows (<= {cfg.few_shot_per_class}): "
                "too few to fine-tune the encoder, so only a new head is trained on frozen features.")

    probe = m["probe_accuracy"]
    if probe is not None and probe >= cfg.probe_good:
        return ("head", "partial", "features_suffice",
                f"A linear probe on frozen features reaches {_f(probe)} validation accuracy "
                f"(>= {cfg.probe_good}): training only the head keeps those features intact.")

    if m["rows"] >= cfg.full_min_examples:
        return ("full", "lora", "large_data",
                f"{m['rows']} training rows (>= {cfg.full_min_examples}) are enough to fine-tune every weight; "
                f"the linear probe reached {_f(probe)} (< {cfg.probe_good}).")

    return ("lora", "partial", "default",
            f"{m['rows']} training rows (< {cfg.full_min_examples}), smallest class {m['min_per_class']}, "
            f"linear probe {_f(probe)} (< {cfg.probe_good}): low-rank adapters suit small/medium data.")


def select_strategy(report: dict, cfg: StrategyConfig, champion_exists: bool) -> dict:
    """The decision record: strategy, runner-up, the rule that fired, the reason in words, the numbers."""
    measures = _measures(report, champion_exists)
    strategy, runner_up, rule, reason = _policy(measures, cfg)
    if cfg.force is not None:
        pick = strategy
        runner_up = pick if pick != cfg.force else runner_up
        reason = (f"strategy.force = '{cfg.force}' in params.yaml; the policy would have chosen '{pick}' "
                  f"(rule {rule}: {reason})")
        strategy, rule = cfg.force, "forced"
    return {"strategy": strategy, "runner_up": runner_up, "rule": rule, "reason": reason,
            "measures": measures, "forced": cfg.force is not None}


# ---- probe mode: short trial runs, successive halving ----------------------------------------

def probe(candidates: list[str], train_df, val_df, params: Params, first_steps: int) -> dict:
    """Train every candidate briefly, keep the better half by validation accuracy, double the steps, repeat.

    Successive halving (Jamieson & Talwalkar 2016): most of the budget goes to the candidates that
    look best early. Returns the winner, every round's scores and the wall time spent.
    """
    import tempfile
    import time

    import numpy as np

    from driftfit.model import load_classifier, pick_device, predict_proba
    from driftfit.train import train_model

    start = time.perf_counter()
    alive, steps, rounds = list(dict.fromkeys(candidates)), first_steps, []
    while True:
        scores = {}
        for name in alive:
            cfg = params.model_copy(update={"train": params.train.model_copy(update={"max_steps": steps})})
            with tempfile.TemporaryDirectory(prefix=f"driftfit-probe-{name}-") as tmp:
                train_model(train_df, val_df, name, cfg, tmp)
                model, tokenizer, labels = load_classifier(tmp, params.model.trust_remote_code)
                probs = predict_proba(model, tokenizer, list(val_df["text"]), params.model.max_seq_len,
                                      params.evaluate.batch_size, pick_device(params.train.device))
            predicted = np.array(labels)[probs.argmax(1)]
            scores[name] = float((predicted == val_df["label"].to_numpy()).mean())
        rounds.append({"steps": steps, "val_accuracy": scores})
        log.info("probe round with %d steps: %s", steps, scores)
        if len(alive) == 1:
            break
        # Keep the better half (ties: the cheaper strategy, which comes first in the candidate order).
        ranked = sorted(alive, key=lambda n: -scores[n])
        alive, steps = ranked[: max(1, len(alive) // 2)], steps * 2
    return {"winner": alive[0], "rounds": rounds, "seconds": round(time.perf_counter() - start, 2)}


def with_probe(decision: dict, train_df, val_df, params: Params) -> dict:
    """Let short trial runs pick among the rule's choice, its runner-up and strategy.probe_candidates."""
    cfg = params.strategy
    candidates = [c for c in (decision["strategy"], decision["runner_up"], *cfg.probe_candidates)
                  if c not in ("skip", None)]
    if decision["strategy"] == "skip" or decision["forced"]:
        return decision  # nothing to train, or a person decided
    result = probe(candidates, train_df, val_df, params, cfg.probe_max_steps)
    rules_pick = decision["strategy"]
    final = result["winner"]
    last = result["rounds"][-1]["val_accuracy"]
    runner_up = rules_pick if final != rules_pick else decision["runner_up"]
    reason = (f"Probe (successive halving over {', '.join(dict.fromkeys(candidates))}, {result['seconds']:.0f} s): "
              f"'{final}' reached {last[final]:.3f} validation accuracy in the last round. "
              f"The rules alone chose '{rules_pick}' (rule {decision['rule']}): {decision['reason']}")
    return {**decision, "strategy": final, "runner_up": runner_up, "rule": f"probe ({decision['rule']})",
            "reason": reason, "rules_choice": rules_pick, "probe": result}


# ---- thin edge: file in, file out -----------------------------------------------------------

def run(params: Params) -> dict:
    """Read the shift report and the registry, decide (probing if asked), write params.paths.decision."""
    from driftfit.registry import champion_dir

    path = Path(params.paths.shift)
    if not path.is_file():
        raise DataError(f"shift report '{path}' not found (run the shift step first)")
    champion_exists = champion_dir(params.paths.registry) is not None
    decision = select_strategy(read_json(path), params.strategy, champion_exists)
    if params.strategy.mode == "probe":
        import pandas as pd

        from driftfit.data import read_split
        from driftfit.train import training_frame

        train = pd.read_parquet(Path(params.paths.augmented) / "train.parquet")
        train = training_frame(train, read_split(params.paths.prepared, "reference_train"), params.train)
        decision = with_probe(decision, train, read_split(params.paths.prepared, "val"), params)
    write_json(params.paths.decision, decision)
    log.info("strategy %s (rule %s): %s", decision["strategy"], decision["rule"], decision["reason"])
    return decision
