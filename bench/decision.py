"""Decision benchmark: is the strategy the selector picks as good as the best one, found by training all?

    python -m bench.decision --scenarios bench/scenarios.yaml --out bench/results [--only NAME] [--rescore]
    driftfit bench decision ...            (the same, from the project folder)

For each scenario in the YAML file: load the data, train a champion on the reference data (if any; a
`head` model, counted as set-up, not as cost), run the selector exactly as the pipeline does (shift
measures + policy, + trial runs in probe mode), then train and evaluate *every* strategy under the
same budget (the oracle). Writes decision.json and decision.md: per scenario the choice, each
strategy's test accuracy, macro-F1 and wall time, the best one, the regret (best minus chosen
accuracy, in points) and the selector's cost as a fraction of exhaustive training.

Scenario file:

    budget: {epochs: 3, max_train_examples: 4000, max_seq_len: 128}   # applies to every strategy
    strategies: [head, lora, full]        # optional: the oracle's strategies (default: all)
    scenarios:
      - name: sst2-to-amazon
        reference: {path: ../shared/data/sst2/train.tsv, text: sentence, label: label, sample: 4000}
        train: {path: ../shared/data/sentiment_domains/amazon.tsv, header: false, text: 0, label: 1}
        test_fraction: 0.3                # or test: {path: ...}
        train_per_class: 8                # optional: keep this many training rows per class (few-shot)

Paths are relative to the directory the command runs in. Formats come from the extension; a path
`chatterbot:<language>` reads that language of the chatterbot-corpus package (label = category).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, model_validator

from driftfit.config import STRATEGIES, Params, SourceConfig, StrictModel, explain, load_params, read_yaml_mapping
from driftfit.errors import ConfigError
from driftfit.io import write_json, write_text

log = logging.getLogger(__name__)


# ---- the scenario file ----------------------------------------------------------------------

_Strict = StrictModel


class Budget(_Strict):
    epochs: float = Field(3, gt=0)
    max_train_examples: int = Field(4000, gt=0)
    max_seq_len: int = Field(128, gt=0)
    batch_size: int = Field(32, gt=0)


class Scenario(_Strict):
    name: str = Field(..., min_length=1)
    reference: SourceConfig | None = None
    train: SourceConfig
    test: SourceConfig | None = None
    test_fraction: float = Field(0.3, gt=0, lt=1)
    train_per_class: int | None = Field(None, gt=0)
    note: str = ""


class ScenarioFile(_Strict):
    budget: Budget = Budget()
    strategies: list[Literal[STRATEGIES]] | None = None  # type: ignore[valid-type]
    scenarios: list[Scenario] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "ScenarioFile":
        names = [s.name for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario names must be unique, got {names}")
        return self


def load_scenarios(path: str | Path) -> ScenarioFile:
    path = Path(path)
    try:
        return ScenarioFile.model_validate(read_yaml_mapping(path, "scenario file"))
    except ValidationError as err:
        raise ConfigError(explain(err, str(path), f"{Path(__file__).name}'s docstring")) from None


# ---- data -----------------------------------------------------------------------------------

def chatterbot_frame(language: str) -> pd.DataFrame:
    """Every utterance of one chatterbot-corpus language, labelled by category; ambiguous ones dropped."""
    from driftfit.default_data import chatterbot_conversations

    rows = [(u, label) for label, convs in chatterbot_conversations(language).values() for c in convs for u in c]
    df = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates()
    owners = df.groupby("text")["label"].nunique()
    return df[df["text"].map(owners) == 1].reset_index(drop=True)


def load_source(src: SourceConfig, seed: int) -> pd.DataFrame:
    from driftfit.loaders import load_table

    if src.path.startswith("chatterbot:"):
        df = chatterbot_frame(src.path.split(":", 1)[1])
        if src.sample is not None and src.sample < len(df):
            df = df.sample(n=src.sample, random_state=seed).reset_index(drop=True)
        return df
    df = load_table(src, seed=seed)
    return df[df["text"].notna() & (df["text"].astype(str).str.strip() != "")].reset_index(drop=True)


def cap_per_class(df: pd.DataFrame, total: int | None, per_class: int | None, seed: int) -> pd.DataFrame:
    """A seeded, stratified subsample: at most `per_class` rows per label, at most `total` rows in all."""
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = [i for _, idx in sorted(df.groupby("label").indices.items())
                for i in rng.permutation(idx)[:per_class]]
        df = df.iloc[sorted(keep)]
    if total is not None and len(df) > total:
        from driftfit.prepare import stratified_split

        keep = total / len(df)
        df = stratified_split(df, {"keep": keep}, seed)["keep"]
    return df.reset_index(drop=True)


def scenario_data(sc: Scenario, budget: Budget, seed: int) -> dict[str, pd.DataFrame | None]:
    from driftfit.prepare import stratified_split

    incoming = load_source(sc.train, seed)
    if sc.test is not None:
        test = load_source(sc.test, seed)
    else:
        parts = stratified_split(incoming, {"test": sc.test_fraction}, seed)
        incoming, test = parts["train"], parts["test"]
    parts = stratified_split(incoming, {"val": 0.15}, seed)
    train = cap_per_class(parts["train"], budget.max_train_examples, sc.train_per_class, seed)
    val = parts["val"]
    if sc.train_per_class is not None:  # few-shot: the validation split is as small as the data
        val = cap_per_class(val, None, max(2, sc.train_per_class // 2), seed)
    reference = None
    if sc.reference is not None:
        reference = cap_per_class(load_source(sc.reference, seed), budget.max_train_examples, None, seed)
    return {"train": train, "val": val, "test": test, "reference": reference}


# ---- one scenario ---------------------------------------------------------------------------

def _accuracy_f1(model_dir: Path, test: pd.DataFrame, params: Params) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    from driftfit.model import load_classifier, pick_device, predict_proba

    model, tokenizer, labels = load_classifier(model_dir, params.model.trust_remote_code)
    probs = predict_proba(model, tokenizer, list(test["text"]), params.model.max_seq_len,
                          params.evaluate.batch_size, pick_device(params.train.device))
    pred, true = [labels[i] for i in probs.argmax(1)], list(test["label"])
    return {"accuracy": round(float(accuracy_score(true, pred)), 4),
            "macro_f1": round(float(f1_score(true, pred, labels=sorted(set(true)), average="macro",
                                             zero_division=0)), 4)}


def run_scenario(sc: Scenario, spec: ScenarioFile, base: Params, work: Path) -> dict:
    from driftfit.model import load_classifier, load_encoder, load_tokenizer
    from driftfit.shift import measure_shift
    from driftfit.strategy import select_strategy, with_probe
    from driftfit.train import settle_scratch_tokenizer, train_model

    seed = base.train.seed
    data = scenario_data(sc, spec.budget, seed)
    train, val, test, reference = data["train"], data["val"], data["test"], data["reference"]
    log.info("scenario %s: %d train, %d val, %d test rows, reference %s", sc.name, len(train), len(val),
             len(test), "none" if reference is None else len(reference))

    champion_dir = None
    if reference is not None:  # the model "in production": a head on the reference data (set-up, not cost)
        champion_dir = work / "champion"
        train_model(reference, val.iloc[:0], "head", base, champion_dir)

    start = time.perf_counter()
    tokenizer, encoder = load_tokenizer(base.model), load_encoder(base.model)
    champion = load_classifier(champion_dir, base.model.trust_remote_code) if champion_dir else None
    report = measure_shift(reference, train, val, encoder, tokenizer, base.shift, base.model.max_seq_len, champion)
    decision = select_strategy(report, base.strategy, champion is not None)
    base = settle_scratch_tokenizer(base, report)  # scratch's tokenizer from this scenario's own shift report
    if base.strategy.mode == "probe":
        decision = with_probe(decision, train, val, base)
    selector_seconds = time.perf_counter() - start

    names = list(spec.strategies or STRATEGIES)
    if champion_dir is None:
        names = [n for n in names if n != "skip"]  # nothing to keep
    if decision["strategy"] not in names:
        names.append(decision["strategy"])
    oracle: dict[str, dict] = {}
    for name in names:
        t = time.perf_counter()
        if name == "skip":
            model_dir = champion_dir
        else:
            model_dir = work / name
            train_model(train, val, name, base, model_dir)
        seconds = time.perf_counter() - t if name != "skip" else 0.0
        oracle[name] = {**_accuracy_f1(model_dir, test, base), "seconds": round(seconds, 2)}
        log.info("scenario %s: %s -> %s", sc.name, name, oracle[name])

    best = max(oracle, key=lambda n: (oracle[n]["accuracy"], -oracle[n]["seconds"]))
    chosen = decision["strategy"]
    exhaustive = sum(r["seconds"] for r in oracle.values())
    return {
        "name": sc.name, "note": sc.note,
        "rows": {"train": len(train), "val": len(val), "test": len(test),
                 "reference": None if reference is None else len(reference),
                 "classes": int(train["label"].nunique())},
        "choice": chosen, "runner_up": decision["runner_up"], "rule": decision["rule"],
        "measures": decision["measures"],
        "reason": decision["reason"], "best": best,
        "regret_points": round(100 * (oracle[best]["accuracy"] - oracle[chosen]["accuracy"]), 2),
        "selector_seconds": round(selector_seconds, 2),
        "exhaustive_seconds": round(exhaustive, 2),
        "selector_cost_fraction": round(selector_seconds / exhaustive, 4) if exhaustive else None,
        "shift": {"unk_rate": report["tokenizer"]["incoming"]["unk_rate"],
                  "tokens_per_word": report["tokenizer"]["incoming"]["tokens_per_word"],
                  "mmd2": (report.get("embedding") or {}).get("mmd2"),
                  "p_value": (report.get("embedding") or {}).get("p_value"),
                  "probe_accuracy": report["probe"].get("accuracy"),
                  "new_labels": report["label_shift"].get("new_labels"),
                  "seconds": round(report["seconds"], 2)},
        "strategies": oracle,
    }


# ---- the whole benchmark --------------------------------------------------------------------

def summarise(results: list[dict]) -> dict:
    regrets = [r["regret_points"] for r in results]
    costs = [r["selector_cost_fraction"] for r in results if r["selector_cost_fraction"] is not None]
    within = sum(x <= 1.0 for x in regrets)
    return {"scenarios": len(results), "regret_at_most_1_point": within,
            "share_regret_at_most_1_point": round(within / len(results), 3) if results else None,
            "mean_regret_points": round(float(np.mean(regrets)), 2) if regrets else None,
            "max_selector_cost_fraction": max(costs) if costs else None,
            "targets": {"regret_share_at_least": 0.9, "selector_cost_fraction_at_most": 0.2}}


def render_md(out: dict) -> str:
    s = out["summary"]
    lines = [
        "# Decision benchmark", "",
        "Commands: " + ", ".join(f"`{c}`" for c in out["command"]) + "  ",
        f"Machine: {'; '.join(out['machine'])}; last finished {out['finished']}; budget {out['budget']}; "
        f"selector mode `{out['selector_mode']}`.", "",
        *([f"Not run yet: {', '.join(out['not_run'])}.", ""] if out["not_run"] else []),
        f"**{s['regret_at_most_1_point']} of {s['scenarios']} scenarios** have a regret of at most 1 accuracy "
        f"point (target: 90%); mean regret {s['mean_regret_points']} points; the selector's largest cost is "
        f"{(s['max_selector_cost_fraction'] or 0):.1%} of exhaustive training (target: at most 20%).", "",
        "| scenario | rows (train/test) | chosen (rule) | best | regret (points) | selector cost |",
        "|---|---|---|---|---|---|",
    ]
    for r in out["results"]:
        lines.append(f"| {r['name']} | {r['rows']['train']}/{r['rows']['test']} | {r['choice']} ({r['rule']}) | "
                     f"{r['best']} | {r['regret_points']:.1f} | {r['selector_cost_fraction']:.1%} |")
    for r in out["results"]:
        lines += ["", f"## {r['name']}", "", r["note"] or "", "", f"Why `{r['choice']}`: {r['reason']}", "",
                  "| strategy | test accuracy | macro-F1 | seconds |", "|---|---|---|---|"]
        for name, m in sorted(r["strategies"].items(), key=lambda kv: -kv[1]["accuracy"]):
            mark = " (chosen)" if name == r["choice"] else ""
            lines.append(f"| {name}{mark} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def run(scenarios_path: str | Path, out_dir: str | Path = "bench/results", params_path: str | Path = "params.yaml",
        only: list[str] | None = None, command: str | None = None) -> dict:
    """Run the scenarios (all, or `only`); each finished scenario is saved at once under out_dir/scenarios/,
    and decision.json/.md are rebuilt from every saved result of this file's scenarios, so a long run
    can be split (--only) or resumed without losing finished work."""
    import platform

    import torch

    spec = load_scenarios(scenarios_path)
    b = spec.budget
    base = load_params(params_path, {
        "model.max_seq_len": b.max_seq_len, "train.epochs": b.epochs, "train.batch_size": b.batch_size,
        "train.max_steps": -1, "train.replay_fraction": 0.0, "train.checkpoint_steps": 0,
        "strategy.force": None})
    chosen = [s for s in spec.scenarios if not only or s.name in only]
    if only and len(chosen) != len(only):
        raise ConfigError(f"unknown scenario(s) {sorted(set(only) - {s.name for s in chosen})}; "
                          f"the file has {[s.name for s in spec.scenarios]}")
    out_dir = Path(out_dir)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    machine = f"{platform.node() or 'host'}: {device}, torch {torch.__version__}"
    for sc in chosen:
        with tempfile.TemporaryDirectory(prefix=f"driftfit-bench-{sc.name}-") as work:
            result = run_scenario(sc, spec, base, Path(work))
        result.update(machine=machine, finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                      command=command or f"driftfit bench decision --scenarios {scenarios_path} --out {out_dir}")
        write_json(out_dir / "scenarios" / f"{sc.name}.json", result)
    return combine(spec, base, out_dir)


def combine(spec: ScenarioFile, base: Params, out_dir: Path) -> dict:
    """decision.json + decision.md from the saved results of the file's scenarios (missing ones listed)."""
    results, missing = [], []
    for sc in spec.scenarios:
        path = out_dir / "scenarios" / f"{sc.name}.json"
        (results.append(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else missing.append(sc.name))
    out = {"command": sorted({r["command"] for r in results}) if results else [],
           "machine": sorted({r["machine"] for r in results}) if results else [],
           "finished": max((r["finished"] for r in results), default=None),
           "budget": spec.budget.model_dump(), "selector_mode": base.strategy.mode,
           "summary": summarise(results), "not_run": missing, "results": results}
    write_json(out_dir / "decision.json", out)
    write_text(out_dir / "decision.md", render_md(out))
    return out["summary"]


def rescore(out_dir: str | Path = "bench/results", scenarios_path: str | Path = "bench/scenarios.yaml",
            params_path: str | Path = "params.yaml") -> dict:
    """Re-score saved results under the current policy without training anything again.

    The oracle (every strategy trained and tested) does not depend on the choice, and the rule that
    fires depends only on the measures and thresholds; so the current policy's choice for each saved
    scenario follows from its rule (and, for tokenizer_misfit, its size). Writes decision-rescored.md.
    Note: a policy revised after seeing these results is scored in-sample here.
    """
    from driftfit.strategy import CHOICES

    spec, base = load_scenarios(scenarios_path), load_params(params_path)
    out_dir = Path(out_dir)
    rows, regrets = [], []
    for sc in spec.scenarios:
        path = out_dir / "scenarios" / f"{sc.name}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        rule = r["rule"].removeprefix("probe (").removesuffix(")")
        if rule == "tokenizer_misfit" and r["rows"]["train"] >= base.strategy.scratch_min_examples:
            rule = "tokenizer_misfit_large"
        choice = CHOICES[rule][0] if rule in CHOICES else r["choice"]
        acc = r["strategies"]
        best = max(acc, key=lambda n: acc[n]["accuracy"])
        regret = round(100 * (acc[best]["accuracy"] - acc[choice]["accuracy"]), 2) if choice in acc else None
        regrets.append(regret)
        rows.append(f"| {sc.name} | {r['rule']} | {r['choice']} ({r['regret_points']:.1f}) | {choice} "
                    f"({'n/a' if regret is None else f'{regret:.1f}'}) | {best} |")
    known = [x for x in regrets if x is not None]
    summary = {"scenarios": len(rows), "regret_at_most_1_point": sum(x <= 1.0 for x in known),
               "mean_regret_points": round(float(np.mean(known)), 2) if known else None}
    md = ["# Decision benchmark, re-scored under the current policy", "",
          "Command: `driftfit bench decision --rescore` (no training: the saved oracle results of "
          "`bench/results/scenarios/` with the current rule -> strategy table of `driftfit/strategy.py`).", "",
          "Caution: the policy was revised after these results were seen, so this is an in-sample score; "
          "a fresh run of the benchmark (or new scenarios) is the out-of-sample check.", "",
          f"**{summary['regret_at_most_1_point']} of {summary['scenarios']}** scenarios within 1 accuracy point; "
          f"mean regret {summary['mean_regret_points']} points.", "",
          "| scenario | rule | chosen when run (regret) | current policy (regret) | best |", "|---|---|---|---|---|",
          *rows]
    write_text(out_dir / "decision-rescored.md", "\n".join(md) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from driftfit.errors import DriftfitError

    ap = argparse.ArgumentParser(prog="python -m bench.decision", description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="bench/scenarios.yaml", help="scenario YAML file")
    ap.add_argument("--out", default="bench/results", help="folder for decision.json and decision.md")
    ap.add_argument("--params", default="params.yaml", help="base params (model, shift, strategy thresholds)")
    ap.add_argument("--only", action="append", default=None, metavar="NAME", help="run only this scenario")
    ap.add_argument("--rescore", action="store_true", help="no training: re-score the saved results under the "
                                                           "current policy")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.rescore:
            print(json.dumps(rescore(args.out, args.scenarios, args.params)))
        else:
            print(json.dumps(run(args.scenarios, args.out, args.params, args.only,
                                 command=" ".join(["python -m bench.decision", *(argv or sys.argv[1:])]))))
    except DriftfitError as err:
        print(f"bench decision: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
