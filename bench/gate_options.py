"""How should the promotion gate weigh the past batches? Each option judged on simulated memories whose truth is known.

    python -m bench.gate_options [--trials 80] [--resamples 1000] [--rows 80 --rows 240] [--out bench/results/stream-gate]

Resumable: each finished cell is saved in OUT/options.json at once; a run with the same settings goes on from there.

A simulated memory looks like the shipped stream's at its end: seven sentiment batches (2 labels), two news
batches (4 labels) and one dialogue batch (4 labels), `test_rows` rows each. The champion is right on a row with
a batch's accuracy; the candidate is the champion with some rows changed:
- churn: a share `churn` of the rows change answer, as many right -> wrong as wrong -> right on average
  (retraining moves answers without changing quality: the noise the gate must not judge);
- a real loss of `loss` accuracy points on chosen batches: that many more rows go right -> wrong.
The truth (each batch's macro-F1 loss in the population) is measured on 100,000 rows drawn the same way. A
scenario is a regression when some batch truly loses more than `max_forgetting` points.

Options (the gate's promote.past, plus ones measured and not shipped):
  point               the worst batch's point estimate against the limit (the gate before the paired test)
  per_batch           each batch's interval, no correction for judging several
  batches             each batch, Holm-corrected                                   (promote.past: batches)
  batches_and_labels  each batch and each label set shared by several batches, Holm (promote.past: batches_and_labels)
  memory              every past row pooled: a batch weighs by its size             (promote.past: memory)
  memory_recent       every past row pooled, a batch's rows weighted 0.7 ** age (the newest 1)
  labels              each old label's F1 over the pooled memory, Holm-corrected
Reported per option: false blocks (rejections where no batch truly lost more than the limit) and detection (the
share of real regressions rejected).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from driftfit.evaluation import gate

SENTIMENT, NEWS, DIALOGUE = ["negative", "positive"], ["Business", "Sci/Tech", "Sports", "World"], \
    ["AI", "conversations", "emotion", "psychology"]
MEMORY = [(f"s{i}", SENTIMENT, 0.85) for i in range(1, 8)] + [("n1", NEWS, 0.85), ("n2", NEWS, 0.85),
                                                              ("d1", DIALOGUE, 0.6)]
SENTIMENT_BATCHES = [b for b, labels, _ in MEMORY if labels is SENTIMENT]

# name -> real accuracy loss per batch (points); the rest lose nothing
SCENARIOS = {
    "noise only": {},
    "3 points lost everywhere (allowed)": {b: 3 for b, *_ in MEMORY},
    "one batch loses 15": {"s1": 15},
    "one batch loses 25": {"s1": 25},
    "one batch loses 40": {"s1": 40},
    "the sentiment task loses 10": {b: 10 for b in SENTIMENT_BATCHES},
    "every batch loses 8": {b: 8 for b, *_ in MEMORY},
}
OPTIONS = ("point", "per_batch", "batches", "batches_and_labels", "memory", "memory_recent", "labels")


def simulate(labels: list[str], accuracy: float, rows: int, churn: float, loss: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, candidate, champion) of one batch; see the module docstring."""
    labels_ = np.array(labels)
    truth = labels_[rng.integers(0, len(labels), rows)]
    other = labels_[(np.searchsorted(labels_, truth) + rng.integers(1, len(labels), rows)) % len(labels)]
    right = rng.random(rows) < accuracy
    champion = np.where(right, truth, other)
    u = rng.random(rows)
    to_wrong = right & (u < (churn / 2 + loss / 100) / accuracy)
    to_right = ~right & (u < (churn / 2) / (1 - accuracy))
    wrong_again = labels_[(np.searchsorted(labels_, truth) + rng.integers(1, len(labels), rows)) % len(labels)]
    candidate = np.where(to_wrong, wrong_again, np.where(to_right, truth, champion))
    return truth, candidate, champion


def true_losses(losses: dict[str, float], churn: float, seed: int) -> dict[str, float]:
    """Each batch's macro-F1 loss (champion minus candidate, points) on 100,000 simulated rows."""
    rng = np.random.default_rng(seed)
    out = {}
    for b, labels, acc in MEMORY:
        t, a, c = simulate(labels, acc, 100_000, churn, losses.get(b, 0.0), rng)
        codes, (ca, cc), k = gate.encode(t, a, c)
        ones = np.ones((1, len(t)))
        out[b] = 100 * float(gate.macro_f1(codes, cc, k, ones)[0] - gate.macro_f1(codes, ca, k, ones)[0])
    return out


def judge(past: dict[str, tuple], limit: float, confidence: float, resamples: int, seed: int) -> dict[str, bool]:
    """Each option's verdict on one simulated memory: True = rejected for forgetting."""
    alpha = (1 - confidence) / 2
    per = {b: gate.paired_bootstrap(*past[b], resamples, seed) for b in past}
    p = {b: r.p_not_below(-limit) for b, r in per.items()}
    out = {"point": max(-r.difference for r in per.values()) > limit,
           "per_batch": min(p.values()) <= alpha,
           "batches": min(gate.holm(p).values()) <= alpha}
    truths = {b: past[b][0] for b in past}
    groups = gate.past_groups(truths, "batches_and_labels")
    pg = {g: (p[g] if g in p else gate.paired_bootstrap(*(np.concatenate([past[b][i] for b in members])
                                                          for i in range(3)), resamples, seed).p_not_below(-limit))
          for g, members in groups.items()}
    out["batches_and_labels"] = min(gate.holm(pg).values()) <= alpha
    pooled = [np.concatenate([past[b][i] for b in past]) for i in range(3)]
    out["memory"] = gate.paired_bootstrap(*pooled, resamples, seed).p_not_below(-limit) <= alpha
    names = list(past)
    weights = np.concatenate([np.full(len(past[b][0]), 0.7 ** (len(names) - 1 - i)) for i, b in enumerate(names)])
    out["memory_recent"] = gate.paired_bootstrap(*pooled, resamples, seed, weights).p_not_below(-limit) <= alpha
    out["labels"] = labels_verdict(pooled, limit, resamples, seed, alpha)
    return out


def labels_verdict(pooled: list[np.ndarray], limit: float, resamples: int, seed: int, alpha: float) -> bool:
    """Each label's F1 over the pooled memory, candidate minus champion, Holm-corrected against the limit."""
    t, (a, c), k = gate.encode(*pooled)
    rng = np.random.default_rng(seed)
    w = np.vstack([np.ones((1, len(t))), gate.resample_counts(len(t), resamples, rng)])
    fa, _ = gate.per_label_f1(t, a, k, w)
    fc, _ = gate.per_label_f1(t, c, k, w)
    diff = 100 * (fa - fc)[1:]
    p = {str(j): float((1 + np.count_nonzero(diff[:, j] >= -limit)) / (1 + resamples)) for j in range(k)}
    return min(gate.holm(p).values()) <= alpha


def run(trials: int, resamples: int, rows: list[int], churns: list[float], limit: float, confidence: float,
        seed: int, saved: list[dict] | None = None, save=None) -> dict:
    """Every (test rows, churn, scenario) cell; cells in `saved` (same settings) are kept, not run again; `save`
    is called with the results after each cell (a stopped run resumes)."""
    results = list(saved or [])
    for test_rows in rows:
        for churn in churns:
            for name, losses in SCENARIOS.items():
                if any((r["test_rows"], r["churn"], r["scenario"]) == (test_rows, churn, name) for r in results):
                    continue
                rng = np.random.default_rng([seed, test_rows, int(1000 * churn), list(SCENARIOS).index(name)])
                truth = true_losses(losses, churn, seed + 1)
                regression = max(truth.values()) > limit
                rejected = dict.fromkeys(OPTIONS, 0)
                for trial in range(trials):
                    past = {b: simulate(labels, acc, test_rows, churn, losses.get(b, 0.0), rng)
                            for b, labels, acc in MEMORY}
                    for option, verdict in judge(past, limit, confidence, resamples, seed + trial).items():
                        rejected[option] += verdict
                results.append({"test_rows": test_rows, "churn": churn, "scenario": name,
                                "worst_true_loss": round(max(truth.values()), 2), "regression": regression,
                                "rejected_share": {o: round(v / trials, 3) for o, v in rejected.items()}})
                print(json.dumps(results[-1]), flush=True)
                if save:
                    save(results)
    return results


def report(results: list[dict], trials: int, resamples: int, limit: float, confidence: float, seed: int) -> dict:
    return {"trials": trials, "resamples": resamples, "max_forgetting": limit, "confidence": confidence,
            "seed": seed, "memory": [{"batch": b, "labels": labels, "accuracy": acc} for b, labels, acc in MEMORY],
            "results": results, "summary": summarise(results)}


def summarise(results: list[dict]) -> dict:
    """Per option and test size: mean false-block share over the no-regression scenarios, mean detection over the
    regression ones, and the worst of each."""
    out = {}
    for option in OPTIONS:
        for rows in sorted({r["test_rows"] for r in results}):
            mine = [r for r in results if r["test_rows"] == rows]
            clean = [r["rejected_share"][option] for r in mine if not r["regression"]]
            real = [r["rejected_share"][option] for r in mine if r["regression"]]
            out.setdefault(option, {})[str(rows)] = {  # None: no such cell yet (a run still going)
                "false_blocks_mean": round(float(np.mean(clean)), 3) if clean else None,
                "false_blocks_worst": max(clean) if clean else None,
                "detection_mean": round(float(np.mean(real)), 3) if real else None,
                "detection_worst": min(real) if real else None}
    return out


def render_md(out: dict, commands: list[str], machine: str, seconds: float) -> str:
    lines = ["# How the gate weighs the past: options on simulated memories", "",
             "Command: " + ", ".join(f"`{c}`" for c in commands) + "  ",
             f"Machine: {machine}; {seconds:.0f} s (nice 10, beside other work).", "",
             f"{out['trials']} simulated memories per cell, {out['resamples']} bootstrap resamples, max_forgetting "
             f"{out['max_forgetting']} points, confidence {out['confidence']}. The memory: "
             + ", ".join(f"{m['batch']} ({len(m['labels'])} labels, champion accuracy {m['accuracy']})"
                         for m in out["memory"]) + ". See `bench/gate_options.py` for the simulation.", "",
             "## Summary", "",
             "False blocks: share of candidates rejected where no batch truly lost more than the limit (mean over "
             "the no-regression scenarios and churns; worst cell). Detection: share of real regressions rejected "
             "(mean; worst cell).", "",
             "| option | test rows | false blocks, mean | worst | detection, mean | worst |", "|---|---|---|---|---|---|"]
    def f(x):
        return "—" if x is None else f"{x:.3f}"

    for option, per in out["summary"].items():
        for rows, s in per.items():
            lines.append(f"| {option} | {rows} | {f(s['false_blocks_mean'])} | {f(s['false_blocks_worst'])} | "
                         f"{f(s['detection_mean'])} | {f(s['detection_worst'])} |")
    lines += ["", "## Every cell (share rejected)", "",
              "| test rows | churn | scenario | worst true loss | regression | " + " | ".join(OPTIONS) + " |",
              "|---|---|---|---|---|" + "---|" * len(OPTIONS)]
    for r in out["results"]:
        lines.append(f"| {r['test_rows']} | {r['churn']} | {r['scenario']} | {r['worst_true_loss']:.1f} | "
                     f"{'yes' if r['regression'] else 'no'} | "
                     + " | ".join(f"{r['rejected_share'][o]:.2f}" for o in OPTIONS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import os
    import platform
    import sys

    ap = argparse.ArgumentParser(prog="python -m bench.gate_options", description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=80, help="simulated memories per cell")
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per comparison")
    ap.add_argument("--rows", type=int, action="append", default=None, help="test rows per batch (repeatable)")
    ap.add_argument("--churn", type=float, action="append", default=None, help="share of rows that change answer")
    ap.add_argument("--out", default="bench/results/stream-gate", help="folder for options.json and options.md")
    args = ap.parse_args(argv)
    limit, confidence, seed = 5.0, 0.95, 0
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "options.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    same = {k: previous.get(k) for k in ("trials", "resamples", "seed")} == {"trials": args.trials,
                                                                            "resamples": args.resamples, "seed": seed}
    command = " ".join(["python -m bench.gate_options", *(argv if argv is not None else sys.argv[1:])])
    commands = sorted(set(previous.get("command", []) if same else []) | {command})
    seconds = previous.get("seconds", 0.0) if same else 0.0
    machine = f"{platform.node() or 'host'}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    start = time.perf_counter()

    def save(results: list[dict]) -> None:
        out = report(results, args.trials, args.resamples, limit, confidence, seed)
        out.update(command=commands, machine=machine, seconds=round(seconds + time.perf_counter() - start, 1))
        path.write_text(json.dumps(out, indent=1) + "\n")
        (folder / "options.md").write_text(render_md(out, commands, machine, out["seconds"]))

    results = run(args.trials, args.resamples, args.rows or [80, 240], args.churn or [0.05, 0.1, 0.2], limit,
                  confidence, seed, previous.get("results") if same else None, save)
    save(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
