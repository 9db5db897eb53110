"""Learning-rate sweep on the decision benchmark's fitting half: is each trained strategy's learning rate the
best its budget allows?

    python -m bench.lr_sweep [--scenarios bench/scenarios-fit.yaml] [--only NAME ...] [--out bench/results/lr_sweep]

Four knobs set every encoder-side learning rate (driftfit.strategies, `learning_rate`): train.learning_rate
(full, partial, ensemble), train.lora_learning_rate (lora), train.head_learning_rate (the new head of every
strategy, and the IA3 modules) and train.adapter_learning_rate (the bottleneck adapters). Each knob is swept
over a factor grid around its params.yaml value (GRIDS) with the strategy that reads it (full, lora, ia3,
adapter), on scenarios of the FITTING half only, under the suite's budget (epochs, rows, sequence length) and
one seed; scored on the scenario's test split (the fitting half is the tuning set; the evaluation half is never
touched). Each run trains on what the pipeline would give that strategy: the batch plus the replay of the
scenario's reference rows (all of them when the batch brings new labels), as bench.decision does. Per knob and
value: the gain in test accuracy over the current value, paired by scenario and strategy; a value replaces the
current one only if it ran wherever the current one did and gains more than one point on that mean.
`--check KNOB=F1,F2` runs only those factors (a second scenario checking the first one's winners). Writes
lr_sweep.json and lr_sweep.md; each finished (scenario, strategy, value) is saved as it ends, so an interrupted
sweep resumes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.decision import _base_params, _predict, load_scenarios, scenario_data
from driftfit.io import write_json, write_text

log = logging.getLogger(__name__)

KNOBS = {  # knob -> the strategies whose training it steers (the sweep trains each)
    "train.learning_rate": ["full"],
    "train.lora_learning_rate": ["lora"],
    "train.head_learning_rate": ["ia3"],
    "train.adapter_learning_rate": ["adapter"],
}
FACTORS = (1.0, 2.0, 4.0)  # the budget is short (tens of steps): the grid leans upwards (x0.5 lost 3 points, full)
# The adapters shared the head's 1e-2 until they collapsed under it (every news text called a sentiment, 0.0, on
# sst2-to-agnews-8 and -128, where new labels replay every old row) and lost 7 points at 2e-2: their grid leans down.
GRIDS = {"train.adapter_learning_rate": (0.1, 0.3, 1.0)}
DEFAULT_SCENARIOS = ("sst2-to-amazon-128", "chatter-to-news-128")
BETTER_BY_POINTS = 1.0


def factors(knob: str) -> tuple[float, ...]:
    """The knob's factor grid around its current value."""
    return GRIDS.get(knob, FACTORS)


def _params_with(base, knob: str, value: float):
    section, name = knob.split(".")  # every knob is a train.* learning rate
    return base.model_copy(update={section: getattr(base, section).model_copy(update={name: value})})


def run(scenarios_path: str, names: list[str], out: str, params_path: str = "params.yaml",
        only: dict[str, list[float]] | None = None) -> dict:
    """only: {knob: [factors]} to run just those (a second scenario checking the first one's winners)."""
    from driftfit.policy.rules import replays_everything
    from driftfit.modalities.text.recipe import train_model
    from driftfit.training.replay import training_frame

    spec = load_scenarios(scenarios_path)
    base = _base_params(spec, params_path)
    chosen = [sc for sc in spec.scenarios if sc.name in names]
    missing = sorted(set(names) - {sc.name for sc in chosen})
    if missing:
        raise SystemExit(f"not in {scenarios_path}: {', '.join(missing)}")
    out_dir = Path(out)
    runs_dir = out_dir / "runs"
    for sc in chosen:
        data = scenario_data(sc, spec.budget, base.train.seed)
        reference = data["reference"]
        new_labels = set(data["train"]["label"]) - set([] if reference is None else reference["label"])
        for knob, strategies in KNOBS.items():
            if only is not None and knob not in only:
                continue
            current = float(eval_dotted(base, knob))
            for factor in (only[knob] if only is not None else factors(knob)):
                value = float(f"{current * factor:.3g}")
                for strategy in strategies:
                    path = runs_dir / f"{sc.name}--{strategy}--{knob}={value:g}.json"
                    if path.is_file():
                        continue
                    params = _params_with(base, knob, value)
                    replay_all = replays_everything(new_labels, reference is not None, strategy, base.strategy)
                    rows = training_frame(data["train"], reference, params.train, strategy, replay_all=replay_all)
                    work = Path(tempfile.mkdtemp(prefix="lr-sweep-"))
                    try:
                        t = time.perf_counter()
                        train_model(rows, data["val"], strategy, params, work / "model")
                        seconds = time.perf_counter() - t
                        predicted = _predict(work / "model", data["test"], params)
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    acc = float(np.mean(np.array(predicted) == data["test"]["label"].to_numpy()))
                    log.info("%s %s %s=%g: test accuracy %.4f, %.1f s", sc.name, strategy, knob, value, acc, seconds)
                    write_json(path, {"scenario": sc.name, "strategy": strategy, "knob": knob, "value": value,
                                      "factor": factor, "current": current, "accuracy": round(acc, 4),
                                      "seconds": round(seconds, 2), "test_rows": len(data["test"]),
                                      "train_rows": len(rows), "batch_rows": len(data["train"])})
    return combine(out_dir, scenarios_path, names, base, only)


def eval_dotted(params, dotted: str):
    node = params
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def combine(out_dir: Path, scenarios_path: str, names: list[str], base,
            only: dict[str, list[float]] | None = None) -> dict:
    """The report over the saved runs of `names`: each knob's grid, plus the factors a --check asked for."""
    rows = [json.loads(p.read_text()) for p in sorted((out_dir / "runs").glob("*.json"))]
    rows = [r for r in rows if r["scenario"] in names
            and (r["factor"] in factors(r["knob"]) or r["factor"] in (only or {}).get(r["knob"], ()))]
    knobs = {}
    for knob in KNOBS:
        mine = [r for r in rows if r["knob"] == knob]
        if not mine:
            continue
        current = float(eval_dotted(base, knob))
        acc = {(r["scenario"], r["strategy"], r["value"]): r["accuracy"] for r in mine}
        values = sorted({r["value"] for r in mine})
        cur = next((v for v in values if abs(v - current) <= 1e-6 * current), None)
        per_value = {}
        for v in values:
            runs = [a for (sc, st, val), a in acc.items() if val == v]
            paired = [acc[(sc, st, v)] - acc[(sc, st, cur)] for (sc, st, val) in acc
                      if val == v and cur is not None and (sc, st, cur) in acc]
            per_value[f"{v:g}"] = {"mean_accuracy_points": round(100 * float(np.mean(runs)), 2), "runs": len(runs),
                                   "gain_over_current_points": round(100 * float(np.mean(paired)), 2) if paired
                                   else None, "paired_runs": len(paired)}
        full = per_value.get(f"{current:g}", {}).get("runs", 0)  # only values run wherever the current one ran
        gains = {v: p["gain_over_current_points"] for v, p in per_value.items()
                 if p["gain_over_current_points"] is not None and p["paired_runs"] == full}
        best = max(gains, key=gains.get) if gains else f"{current:g}"
        change = gains.get(best, 0.0) > BETTER_BY_POINTS
        knobs[knob] = {"current": current, "values": per_value, "recommended": float(best) if change else current,
                       "why": (f"{best} gains {gains[best]:.2f} points over the current {current:g} on the same "
                               f"scenarios and strategies ({per_value[best]['paired_runs']} paired runs)" if change else
                               f"no value gains more than {BETTER_BY_POINTS} point over the current {current:g}")}
    checks = "".join(f" --check {k}={','.join(f'{f:g}' for f in v)}" for k, v in (only or {}).items())
    report = {"command": f"python -m bench.lr_sweep --scenarios {scenarios_path} "
                         + " ".join(f"--only {n}" for n in names) + checks + f" --out {out_dir}",
              "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "scenarios": names, "factors": {k: list(factors(k)) for k in KNOBS}, "knobs": knobs, "runs": rows}
    write_json(out_dir / "lr_sweep.json", report)
    write_text(out_dir / "lr_sweep.md", render_md(report))
    return report


def render_md(report: dict) -> str:
    lines = ["# Learning-rate sweep (fitting half)", "", f"Command: `{report['command']}`  ",
             f"Finished {report['finished']}; scenarios: {', '.join(report['scenarios'])}; one seed; test accuracy "
             "of the fitting half's scenarios (the evaluation half is never used).", "",
             "| knob | strategies | current | by value: gain over the current in points (paired runs) | recommended "
             "| why |", "|---|---|---|---|---|---|"]
    for knob, k in report["knobs"].items():
        by = ", ".join(f"{v}: {p['gain_over_current_points']:+.2f} ({p['paired_runs']})" for v, p in k["values"].items()
                       if p["gain_over_current_points"] is not None)
        lines.append(f"| `{knob}` | {', '.join(KNOBS[knob])} | {k['current']:g} | {by} | {k['recommended']:g} | "
                     f"{k['why']} |")
    lines += ["", "## Every run", "", "| scenario | strategy | knob | value | test accuracy | seconds |",
              "|---|---|---|---|---|---|"]
    for r in sorted(report["runs"], key=lambda r: (r["knob"], r["scenario"], r["strategy"], r["value"])):
        lines.append(f"| {r['scenario']} | {r['strategy']} | `{r['knob']}` | {r['value']:g} | {r['accuracy']:.4f} | "
                     f"{r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.lr_sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="bench/scenarios-fit.yaml", help="the FITTING half's scenario file")
    ap.add_argument("--only", action="append", default=None, metavar="NAME", help="a scenario (repeatable)")
    ap.add_argument("--out", default="bench/results/lr_sweep", help="results folder")
    ap.add_argument("--params", default="params.yaml", help="base params (the current learning rates)")
    ap.add_argument("--check", action="append", default=None, metavar="KNOB=F1,F2",
                    help="run only these factors of this knob (e.g. train.learning_rate=1,2)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if "eval" in Path(a.scenarios).name:
        raise SystemExit("the learning rates are tuned on the fitting half only, never on the evaluation half")
    only = None
    if a.check:
        only = {k: [float(f) for f in v.split(",")] for k, v in (c.split("=", 1) for c in a.check)}
    report = run(a.scenarios, a.only or list(DEFAULT_SCENARIOS), a.out, a.params, only)
    for knob, k in report["knobs"].items():
        print(f"{knob}: -> {k['recommended']:g} ({k['why']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
