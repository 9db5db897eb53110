"""Probe mode (`strategy.mode: probe`): short real trial runs of the rules' pick, its runner-up and
`strategy.probe_candidates`, through the modality's own training and scoring."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from driftfit.config import Params
from driftfit.policy.rules import within_noise
from driftfit.strategies import spec

log = logging.getLogger(__name__)


def probe(candidates: list[str], train_df, val_df, params: Params, first_steps: int, modality, shift=None) -> dict:
    """Train every candidate briefly and score it on validation; stop as soon as the leader is ahead of the
    others by more than the validation noise (within_noise); otherwise keep the better half, double the
    steps, repeat (successive halving, Jamieson & Talwalkar 2016). When the last round leaves several
    candidates within noise of each other, the one that trained fastest wins: as good, cheaper.
    Returns the winner, every round's scores and seconds, and the wall time spent."""
    start = time.perf_counter()
    alive, steps, rounds = list(dict.fromkeys(candidates)), first_steps, []
    while True:
        scores, seconds = {}, {}
        for name in alive:
            cfg = params.model_copy(update={"train": params.train.model_copy(update={"max_steps": steps})})
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix=f"driftfit-probe-{name}-") as tmp:
                modality.train(cfg, train_df, val_df, name, Path(tmp), shift=shift)
                seconds[name] = round(time.perf_counter() - t, 2)
                scorer = modality.classifier(params, Path(tmp))
                probs = scorer.predict_proba(val_df)
            predicted = np.array(scorer.labels)[probs.argmax(1)]
            scores[name] = float((predicted == val_df["label"].to_numpy()).mean())
        tied = within_noise(scores, len(val_df), params.strategy.significance)
        rounds.append({"steps": steps, "val_accuracy": scores, "train_seconds": seconds, "within_noise": tied})
        log.info("probe round with %d steps: %s (within noise of the leader: %s)", steps, scores, tied)
        if len(tied) == 1:
            winner, why = tied[0], "ahead of the others by more than the validation noise"
            break
        if len(alive) <= 2:
            winner = min(tied, key=lambda n: seconds[n])
            why = f"within validation noise of {', '.join(t for t in tied if t != winner)}, and trained fastest"
            break
        # Keep the better half (ties: the cheaper strategy, which comes first in the candidate order).
        ranked = sorted(alive, key=lambda n: -scores[n])
        alive, steps = ranked[: max(2, len(alive) // 2)], steps * 2
    return {"winner": winner, "why": why, "rounds": rounds, "seconds": round(time.perf_counter() - start, 2)}


def with_probe(decision: dict, train_df, val_df, params: Params, modality, shift=None) -> dict:
    """Let short trial runs pick among the rule's choice, its runner-up and strategy.probe_candidates."""
    cfg = params.strategy
    candidates = [c for c in (decision["strategy"], decision["runner_up"], *cfg.probe_candidates)
                  if c is not None and spec(c).makes_model]
    if not spec(decision["strategy"]).makes_model or decision["forced"]:
        return decision  # nothing to train, or a person decided
    result = probe(candidates, train_df, val_df, params, cfg.probe_max_steps, modality, shift)
    rules_pick = decision["strategy"]
    final = result["winner"]
    last = result["rounds"][-1]["val_accuracy"]
    runner_up = rules_pick if final != rules_pick else decision["runner_up"]
    reason = (f"Probe (successive halving over {', '.join(dict.fromkeys(candidates))}, {result['seconds']:.0f} s): "
              f"'{final}' reached {last[final]:.3f} validation accuracy in the last round, {result['why']}. "
              f"The rules alone chose '{rules_pick}' (rule {decision['rule']}): {decision['reason']}")
    return {**decision, "strategy": final, "runner_up": runner_up, "rule": f"probe ({decision['rule']})",
            "reason": reason, "rules_choice": rules_pick, "probe": result}
