"""Would probe mode have chosen better than the rules? Scored against the decision benchmark's saved oracle.

    python -m bench.probe_rescore --scenarios bench/scenarios-fit.yaml --out bench/results/fit [--only NAME ...]
        [--set strategy.probe_candidates=[head] --name NAME]   (another probe setting, saved under its own name)

For each saved scenario of `--out` (all, or `--only` ones): rebuild its data, champion and shift report as
bench.decision did, take today's rules' decision, run the probe for real (`driftfit.policy.probe.with_probe`:
short trial runs of the rules' pick, its runner-up and strategy.probe_candidates, successive halving that stops
when the leader is ahead by more than the validation noise, the cheaper on a tie), and judge the probe's pick
against the saved oracle (`bench.stats.judge`: regret, tie with the best). Its cost is the selection as first
measured plus the probe's seconds plus the pick's saved training seconds. Nothing of the oracle is retrained.
Each scenario is saved as it ends (OUT/<name>/SCENARIO.json, name "probe" unless --name), so a run resumes;
OUT/<name>_rescore.md sums them up.
This answers whether an `auto` mode (probe only where the rules' candidates are close) could pay: if the probe
does not beat the rules where they are closest, probing there only adds cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import yaml

from bench import stats
from bench.decision import (_base_params, check_test_rows, current_choice, load_scenarios, measure_and_select,
                            saved_results, scenario_data)
from driftfit.errors import DriftfitError
from driftfit.io import read_json, write_json, write_text

log = logging.getLogger(__name__)


def probe_one(result: dict, sc, spec, base) -> dict:
    """The probe's pick on one saved scenario, judged against its saved oracle."""
    data = scenario_data(sc, spec.budget, base.train.seed)
    check_test_rows(sc, data, result)
    probing = base.model_copy(update={"strategy": base.strategy.model_copy(update={"mode": "probe"})})
    with tempfile.TemporaryDirectory(prefix=f"driftfit-probe-rescore-{sc.name}-") as work:
        _, _, probed, _, _ = measure_and_select(data, probing, Path(work))
    probe = probed.get("probe") or {}  # empty: the rules' pick trains nothing, so nothing was probed
    probe_seconds = probe.get("seconds", 0.0)
    pick, rules_pick = probed["strategy"], current_choice(result, base)
    row = {"name": result["name"], "family": result["family"], "rules": rules_pick, "probe": pick,
           "rules_on_fresh_measures": probed.get("rules_choice", pick),
           "probe_seconds": round(probe_seconds, 2), "rounds": probe.get("rounds")}
    for who, choice in (("rules", rules_pick), ("probe", pick)):
        if choice not in result["strategies"]:
            row[f"{who}_verdict"] = None  # the oracle never trained it (outside the suite's strategies)
            continue
        v = stats.judge(result, choice=choice)
        extra = probe_seconds if who == "probe" else 0.0
        compute = v["selector_compute_seconds"] + extra
        cheapest = v["strategies"][v["cheapest_tied"]]["seconds"]
        row[f"{who}_verdict"] = {**v["choice"], "compute_seconds": round(compute, 2),
                                 "cost_vs_cheapest_tied": round(stats.cost_ratio(compute, cheapest), 2),
                                 "exhaustive_seconds": v["exhaustive_seconds"]}
    return row


def summary(rows: list[dict]) -> dict:
    out = {}
    for who in ("rules", "probe"):
        scored = [r[f"{who}_verdict"] for r in rows if r[f"{who}_verdict"] is not None]
        if not scored:
            continue
        out[who] = {"scenarios": len(scored),
                    "mean_regret_points": round(sum(v["regret_points"] for v in scored) / len(scored), 2),
                    "tied_or_within_1": sum(v["tied_or_within_1"] for v in scored),
                    "compute_seconds": round(sum(v["compute_seconds"] for v in scored), 1),
                    "exhaustive_seconds": round(sum(v["exhaustive_seconds"] for v in scored), 1)}
    return out


def render_md(scenarios_path: str, out_dir: Path, names: list[str], rows: list[dict], total: dict,
              params_path: str = "params.yaml", name: str = "probe", sets: dict | None = None) -> str:
    options = ("" if params_path == "params.yaml" else f" --params {params_path}") + \
        "".join(f" --set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in (sets or {}).items()) + \
        ("" if name == "probe" else f" --name {name}")
    lines = ["# Probe mode against the rules, on the saved oracle", "",
             f"Command: `python -m bench.probe_rescore --scenarios {scenarios_path} --out {out_dir}"
             + "".join(f" --only {n}" for n in names) + options + "`  ",
             f"The probe ran for real (driftfit.policy.probe.with_probe, the probe settings of {params_path}"
             f"{' with the --set overrides' if sets else ''}: "
             f"candidates = the rules' pick, its runner-up and {rows[0]['candidates_param'] if rows else '?'}, "
             f"first round {rows[0]['first_steps'] if rows else '?'} steps); the strategies' "
             "accuracies and seconds are the benchmark's saved ones. Compute: selection + probe + the pick's "
             "training.", "",
             "| policy | scenarios | tied or within 1 point | mean regret (points) | compute s | exhaustive s |",
             "|---|---|---|---|---|---|"]
    for who, t in total.items():
        lines.append(f"| {who} | {t['scenarios']} | {t['tied_or_within_1']} | {t['mean_regret_points']:.2f} | "
                     f"{t['compute_seconds']:.0f} | {t['exhaustive_seconds']:.0f} |")
    lines += ["", "| scenario | rules (regret, tied) | probe (regret, tied) | probe seconds |", "|---|---|---|---|"]
    for r in rows:
        cells = []
        for who in ("rules", "probe"):
            v = r[f"{who}_verdict"]
            cells.append(f"{r[who]} ({v['regret_points']:.2f}, {'yes' if v['tied'] else 'no'})" if v else
                         f"{r[who]} (not in the oracle)")
        lines.append(f"| {r['name']} | {cells[0]} | {cells[1]} | {r['probe_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def run(scenarios_path: str, out: str, only: list[str] | None, params_path: str = "params.yaml",
        name: str = "probe", sets: dict | None = None) -> dict:
    """sets: dotted params overrides for this probe setting (e.g. {"strategy.probe_candidates": ["head"]})."""
    spec = load_scenarios(scenarios_path)
    base = _base_params(spec, params_path, sets)
    out_dir = Path(out)
    results, _, _ = saved_results(spec, out_dir)
    by_name = {s.name: s for s in spec.scenarios}
    chosen = [r for r in results if not only or r["name"] in only]
    missing = sorted(set(only or []) - {r["name"] for r in chosen})
    if missing:
        raise SystemExit(f"no saved result under {out_dir} for {missing}")
    rows = []
    for result in chosen:
        path = out_dir / name / f"{result['name']}.json"
        if not path.is_file():
            row = {**probe_one(result, by_name[result["name"]], spec, base),
                   "candidates_param": list(base.strategy.probe_candidates),
                   "first_steps": base.strategy.probe_max_steps}
            write_json(path, row)
            log.info("%s: rules %s, probe %s (%.0f s)", row["name"], row["rules"], row["probe"], row["probe_seconds"])
        rows.append(read_json(path))
    total = summary(rows)
    names = [r["name"] for r in chosen] if only else []
    write_json(out_dir / f"{name}_rescore.json", {"scenarios": scenarios_path, "params": params_path,
                                                  "sets": sets or {}, "summary": total, "rows": rows})
    write_text(out_dir / f"{name}_rescore.md", render_md(scenarios_path, out_dir, names, rows, total, params_path,
                                                         name, sets))
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.probe_rescore", description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", required=True, help="scenario YAML file of the saved results")
    ap.add_argument("--out", required=True, help="the folder bench.decision saved them in")
    ap.add_argument("--only", action="append", default=None, metavar="NAME", help="a scenario (repeatable)")
    ap.add_argument("--params", default="params.yaml", help="base params (the probe settings)")
    ap.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                    help="a dotted params override, the value read as YAML (e.g. strategy.probe_candidates=[head])")
    ap.add_argument("--name", default="probe", help="folder and report name of this probe setting under --out")
    a = ap.parse_args(argv)
    if not a.name.isidentifier():
        raise SystemExit(f"--name '{a.name}': letters, digits and underscores only")
    sets = {}
    for item in a.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set '{item}': expected KEY=VALUE")
        sets[key] = yaml.safe_load(value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        print(run(a.scenarios, a.out, a.only, a.params, a.name, sets))
    except DriftfitError as err:  # a bad params file or --set, or test rows that changed under a saved result
        print(f"bench probe_rescore: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
