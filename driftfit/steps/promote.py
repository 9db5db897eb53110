"""Promote the candidate to champion only if it passes the gate; write the verdict and a model card.

The gate, in macro-F1 points (params `promote.*`). Candidate and champion are compared on the same test rows
(evaluate's predictions.csv), each difference with its paired-bootstrap interval (evaluation/gate.py), so that the
noise of a few rows neither promotes nor blocks:
  - new data: the gain on the new test split must be significant, its interval's lower end above
    `min_improvement`; or the two tie (neither significantly better) and the candidate costs less to serve
    (fewer parameters). With no champion yet, the first trained candidate passes;
  - forgetting: no past batch (grouped as `past` says) may lose significantly more than `max_forgetting`:
    its interval's upper end below -max_forgetting, Holm-corrected over the past groups. A new task's candidate
    passes when the old batches' differences are noise. A past test split too small to show a loss of
    max_forgetting points at all is named;
  - baseline: with `beat_baseline`, it must not score significantly below the untrained pretrained model
    (zero-shot: the nearest label name) on the new test split.
The verdict names every check with its numbers and bounds, in words, and which differences were within noise.
`test: point`, or an evaluation without per-row predictions, judges metrics.json's point estimates instead: a
gain above min_improvement, the worst past batch within max_forgetting, a margin over the baseline.

Promotion is atomic: the new version folder (model, card, version.json) is assembled under a temp
name and renamed in, then the champion pointer is replaced in one rename (see state/registry.py). A run
killed at any point leaves the old champion in place; its leftovers are removed by the next run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from driftfit import modalities
from driftfit.config import Params, PromoteConfig
from driftfit.errors import DataError
from driftfit.evaluation import gate as gate_stats
from driftfit.evaluation.scoring import forgetting_per_batch, read_test_splits, score_on_tests
from driftfit.io import read_json, write_json
from driftfit.report import comparisons_md
from driftfit.state import candidate as run_candidate
from driftfit.state import memory, registry
from driftfit.strategies import spec


def _macro_f1_points(metrics: dict, model: str, split: str) -> float | None:
    value = (metrics.get(model) or {}).get(split, {}).get("macro_f1")
    return None if value is None else 100.0 * value


def decide(metrics: dict, trained: bool, gate: PromoteConfig, predictions: pd.DataFrame | None = None) -> dict:
    """{"promote": bool, "reason": words, "checks": [{"name", "passed", "value", "limit", "text", ...}],
    "judged_on": "bootstrap" | "point", "comparisons": [the table of differences and bounds]}.

    With `gate.test` bootstrap and `predictions` (evaluate's predictions.csv: the label and each model's answer per
    test row), every difference is judged on the same rows by its paired-bootstrap interval (gate.py); otherwise
    by the point estimates of metrics.json alone."""
    strategy = metrics.get("strategy")
    if not trained:
        return {"promote": False, "checks": [], "comparisons": [], "judged_on": None,
                "reason": f"kept the champion: strategy '{strategy}' trained no candidate"}
    if gate.test == "bootstrap" and predictions is not None:
        checks, comparisons, judged = *_paired_checks(metrics, strategy, gate, predictions), "bootstrap"
    else:
        checks, comparisons, judged = _point_checks(metrics, strategy, gate), [], "point"
    promote = all(c["passed"] for c in checks)
    ordered = sorted(checks, key=lambda c: c["passed"])  # failing checks first: the reason leads with why
    words = "; ".join(c["text"] for c in ordered)
    return {"promote": promote, "checks": checks, "comparisons": comparisons, "judged_on": judged,
            "reason": f"{'promoted' if promote else 'rejected'}: {words}"}


# ---- judged on the same rows (promote.test: bootstrap) ---------------------------------------------

def _bounds(c: dict, confidence: float) -> str:
    return f"{c['rows']} rows; {confidence:.0%} interval {c['low']:+.1f} to {c['high']:+.1f}"


def _cheaper(metrics: dict) -> tuple[bool, str]:
    """Does the candidate cost less to serve? Fewer parameters than the champion (metrics.json's cost)."""
    cost = metrics.get("cost") or {}
    cand, champ = ((cost.get(m) or {}).get("parameters") for m in ("candidate", "champion"))
    if cand is None or champ is None:
        return False, "the champion's cost is not known"
    return cand < champ, f"{cand:,} parameters against the champion's {champ:,}"


def _group_name(g: dict) -> str:
    if g["group"] == "memory":
        return f"all {len(g['batches'])} past batches together"
    if g["group"].startswith("labels "):
        return f"the {len(g['batches'])} past batches with {g['group']} together"
    return "reference" if g["group"] == "reference" else f"past batch {g['group']}"


def _paired_checks(metrics: dict, strategy: str | None, gate: PromoteConfig, rows: pd.DataFrame) -> tuple[list, list]:
    """The checks, each difference with its bounds and whether it is within noise, and the comparisons table."""
    conf, m = gate.confidence, gate.max_forgetting
    stats = {"confidence": conf, "resamples": gate.resamples, "seed": gate.seed}
    new = rows[rows["split"] == "test"]
    checks, table = [], []

    if "champion" not in rows:
        first = _macro_f1_points(metrics, "candidate", "test")
        checks.append({"name": "new_data", "passed": True, "value": first, "limit": None,
                       "text": f"first model (macro-F1 {first:.1f} on the new test split), no champion to beat"})
    else:
        r = gate_stats.judge_gain(new["label"], new["candidate"], new["champion"], gate.min_improvement, **stats)
        cheaper, cost = _cheaper(metrics)
        tie = ("within noise" if r["low"] <= 0
               else f"a real gain, not significantly more than +{gate.min_improvement:.1f}")
        reads = {"gain": "a real gain" + (f" beyond +{gate.min_improvement:.1f}" if gate.min_improvement else ""),
                 "worse": "significantly worse than the champion",
                 "tie": f"{tie}, and cheaper to serve ({cost})" if cheaper else
                        f"{tie}, and not cheaper to serve ({cost}): needs the interval above "
                        f"+{gate.min_improvement:.1f}"}[r["verdict"]]
        passed = r["verdict"] == "gain" or (r["verdict"] == "tie" and cheaper)
        checks.append({"name": "new_data", "passed": passed, "value": r["difference"], "limit": gate.min_improvement,
                       **r, "cheaper": cheaper,
                       "text": f"{r['difference']:+.1f} macro-F1 on new data ({_bounds(r, conf)}): {reads}"})
        table.append({"on": "the new test split", "against": "champion", **r,
                      "reads": tie if r["verdict"] == "tie" else reads})

    past = rows[rows["split"] == "reference_test"] if "champion" in rows else rows.iloc[:0]
    if len(past):
        key = past["batch"].where(past["batch"] != "", "reference")
        by_batch = {str(b): (g["label"].to_numpy(), g["candidate"].to_numpy(), g["champion"].to_numpy())
                    for b, g in past.groupby(key, sort=False)}
        r = gate_stats.judge_past(by_batch, m, gate.past, **stats)
        checks.append(_forgetting_check(r, metrics, gate))
        reads = {"beyond": f"significantly beyond the {m:.1f} limit", "gain": "a real gain", "noise": "within noise",
                 "loss": f"a real loss, not significantly beyond the {m:.1f} limit"}
        table += [{"on": _group_name(g), "against": "champion", **g,
                   "reads": reads[g["state"]] + (f"; too few rows to detect a loss of {m:.1f}" if g["too_small"] else "")}
                  for g in r["groups"]]

    if gate.beat_baseline:
        if strategy is not None and spec(strategy).is_baseline:
            checks.append({"name": "baseline", "passed": True, "value": None, "limit": None,
                           "text": f"the candidate is the pretrained baseline itself ({strategy})"})
        elif "baseline" not in rows:
            checks.append({"name": "baseline", "passed": False, "value": None, "limit": None,
                           "text": "no baseline score to compare with"})
        else:
            r = gate_stats.judge_gain(new["label"], new["candidate"], new["baseline"], 0.0, **stats)
            reads = {"gain": "", "tie": ": within noise of it",
                     "worse": ": significantly below it, must not lose to it"}[r["verdict"]]
            checks.append({"name": "baseline", "passed": r["verdict"] != "worse", "value": r["difference"],
                           "limit": 0.0, **r,
                           "text": f"{r['difference']:+.1f} over the pretrained baseline ({_bounds(r, conf)}){reads}"})
            table.append({"on": "the new test split", "against": "pretrained baseline", **r,
                          "reads": {"gain": "a real gain", "tie": "within noise",
                                    "worse": "significantly worse"}[r["verdict"]]})
    return checks, table


def _forgetting_check(r: dict, metrics: dict, gate: PromoteConfig) -> dict:
    """The forgetting check in words: the groups beyond the limit (or the worst one), what was within noise, and
    which past test splits are too small to show a loss of max_forgetting points."""
    m, conf, groups = gate.max_forgetting, gate.confidence, r["groups"]
    worst = min(groups, key=lambda g: g["difference"])
    beyond = [g for g in groups if g["state"] == "beyond"]
    holm = f"Holm-adjusted over {len(groups)} tests, " if len(groups) > 1 else ""
    if beyond:
        text = "; ".join(f"{g['difference']:+.1f} on {_group_name(g)} ({_bounds(g, conf)}): significantly beyond the "
                         f"{m:.1f} limit ({holm}p = {g['p_adjusted']:.3f}): forgets too much" for g in beyond)
    else:
        counts = {s: sum(g["state"] == s for g in groups) for s in ("noise", "loss", "gain")}
        said = ", ".join(f"{n} {w}" for n, w in ((counts["noise"], "within noise"),
                                                 (counts["loss"], "a real loss within the limit"),
                                                 (counts["gain"], "a real gain")) if n)
        worst_words = {"noise": "within noise", "gain": "a real gain",
                       "loss": f"a real loss, not significantly beyond the {m:.1f} limit"}[worst["state"]]
        text = (f"{worst['difference']:+.1f} on {_group_name(worst)}, the worst of {len(groups)} "
                f"({_bounds(worst, conf)}): {worst_words}; nothing lost significantly more than the {m:.1f} limit"
                + (f" ({said})" if len(groups) > 1 else ""))
    small = [g for g in groups if g["too_small"]]
    if small:
        text += (f"; {len(small)} of {len(groups)} past comparisons have fewer than {r['rows_needed']} rows, too few "
                 f"to detect a loss of {m:.1f} points")
    return {"name": "forgetting", "passed": r["passed"], "value": -worst["difference"], "limit": m,
            "batch": worst["group"], "per_batch": forgetting_per_batch(metrics), "groups": groups,
            "too_small": [g["group"] for g in small], "rows_needed": r["rows_needed"], "how": r["how"],
            "resamples": r["resamples"], "text": text}


# ---- judged on point estimates (promote.test: point) -----------------------------------------------

def _point_checks(metrics: dict, strategy: str | None, gate: PromoteConfig) -> list[dict]:
    """The point-estimate checks: a gain above min_improvement, the worst past batch within max_forgetting, and
    a margin over the baseline, each on metrics.json's numbers alone (noise not allowed for)."""
    checks = []
    new, champ_new = _macro_f1_points(metrics, "candidate", "test"), _macro_f1_points(metrics, "champion", "test")
    if champ_new is None:
        checks.append({"name": "new_data", "passed": True, "value": new, "limit": None,
                       "text": f"first model (macro-F1 {new:.1f} on the new test split), no champion to beat"})
    else:
        gain = new - champ_new
        ok = gain > gate.min_improvement
        checks.append({"name": "new_data", "passed": ok, "value": gain, "limit": gate.min_improvement,
                       "text": f"{gain:+.1f} macro-F1 on new data"
                               + ("" if ok else f", needs more than +{gate.min_improvement:.1f}")})

    ref_new, ref_old = _macro_f1_points(metrics, "candidate", "reference_test"), _macro_f1_points(metrics, "champion", "reference_test")
    batches = forgetting_per_batch(metrics)
    if batches:  # the data memory's past batches: the gate judges the worst one, and names it
        worst = max(batches, key=batches.get)
        forgetting, mean = batches[worst], sum(batches.values()) / len(batches)
        ok = forgetting <= gate.max_forgetting
        checks.append({"name": "forgetting", "passed": ok, "value": forgetting, "limit": gate.max_forgetting,
                       "batch": worst, "per_batch": batches,
                       "text": f"{-forgetting:+.1f} on past batch {worst}, the worst of {len(batches)} "
                               f"(mean {-mean:+.1f}), "
                               + (f"within the {gate.max_forgetting:.1f} limit" if ok
                                  else f"beyond the {gate.max_forgetting:.1f} limit: forgets too much")})
    elif ref_new is not None and ref_old is not None:
        forgetting = ref_old - ref_new
        ok = forgetting <= gate.max_forgetting
        checks.append({"name": "forgetting", "passed": ok, "value": forgetting, "limit": gate.max_forgetting,
                       "text": f"{-forgetting:+.1f} on reference, "
                               + (f"within the {gate.max_forgetting:.1f} limit" if ok
                                  else f"beyond the {gate.max_forgetting:.1f} limit: forgets too much")})

    if gate.beat_baseline:
        base = _macro_f1_points(metrics, "baseline", "test")
        if strategy is not None and spec(strategy).is_baseline:
            checks.append({"name": "baseline", "passed": True, "value": None, "limit": None,
                           "text": f"the candidate is the pretrained baseline itself ({strategy})"})
        elif base is None:
            checks.append({"name": "baseline", "passed": False, "value": None, "limit": None,
                           "text": "no baseline score to compare with"})
        else:
            margin = new - base
            ok = margin > 0
            checks.append({"name": "baseline", "passed": ok, "value": margin, "limit": 0.0,
                           "text": f"{margin:+.1f} over the pretrained baseline"
                                   + ("" if ok else ", must beat it")})
    return checks


def _table(metrics: dict) -> list[str]:
    rows = ["| model | split | accuracy | macro-F1 | ECE |", "|---|---|---|---|---|"]
    for model in ("candidate", "champion", "baseline"):
        for split, m in (metrics.get(model) or {}).items():
            rows.append(f"| {model} | {split} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m.get('ece', 0):.4f} |")
    return rows


def _noise_limit(verdict: dict, gate: PromoteConfig) -> str:
    """The card's limitation on noise: how many test rows the gate judged on, and what they cannot show."""
    if verdict.get("judged_on") != "bootstrap":
        return ("- Scores come from one held-out split of the incoming batch and were compared as point estimates; "
                "small splits and small classes have wide error bars.")
    needed = gate_stats.rows_to_detect(gate.max_forgetting, gate_stats.alpha_of(gate.confidence))
    forgetting = next((c for c in verdict["checks"] if c["name"] == "forgetting"), None)
    small = (f" Past test splits under {needed} rows cannot show a loss of {gate.max_forgetting:g} points at all"
             + (f"; here {len(forgetting['too_small'])} of the {len(forgetting['groups'])} past comparisons were."
                if forgetting and forgetting.get("too_small") else ".")) if needed else ""
    return (f"- Differences were judged on the test rows above, with {gate.confidence:.0%} paired-bootstrap intervals: "
            f"a real change smaller than an interval's width can pass as noise.{small}")


def model_card(version: str, train_log: dict, decision: dict, verdict: dict, metrics: dict, manifest: dict,
               latency: dict | None, params: Params) -> str:
    """The version's model card (markdown): data, decision and why, params, metrics, cost, limitations."""
    input_size, input_limit = modalities.get(params.task.modality).describe_input(params, train_log)
    data_rows = [f"| {name} | {s['rows']} | `{s['sha256'][:16]}` |" for name, s in manifest["splits"].items()]
    source_rows = [f"| {role} | `{s['path']}` | `{(s.get('sha256') or '—')[:16]}` |"
                   for role, s in manifest.get("sources", {}).items()]
    cost = (metrics.get("cost") or {}).get("candidate") or {}
    speed = ((latency or {}).get("models") or {}).get("candidate") or {}
    speed_line = "; ".join(f"batch {b.split('_')[1]}: p50 {v['p50_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms per example"
                           for b, v in speed.items()) or "not measured"
    train = params.train
    checks = [f"- {'pass' if c['passed'] else 'FAIL'}: {c['text']}" for c in verdict["checks"]]
    gate = params.promote
    return "\n".join([
        f"# Model card: {version}",
        "",
        f"Promoted {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}, replacing "
        f"{verdict.get('previous_champion') or 'no earlier champion'}.",
        f"Base model: `{params.model.pretrained}`; strategy **{train_log['strategy']}** "
        f"({train_log['trainable_params']:,} of {train_log['total_params']:,} parameters trained, {train_log['steps']} steps, "
        f"{train_log['seconds']} s on {train_log['device']}).",
        "",
        "## Why it was promoted",
        verdict["reason"],
        "",
        *checks,
        "",
        *(["## How sure", *comparisons_md(verdict), ""] if verdict.get("comparisons") else []),
        "## Why this strategy",
        decision.get("reason", "(no reason recorded)"),
        "",
        "## Labels",
        ", ".join(train_log["labels"]),
        "",
        "## Metrics",
        "Scored when it was promoted; `baseline` is the untrained pretrained model (nearest label name).",
        "",
        *_table(metrics),
        "",
        "## Inference cost",
        f"{cost.get('parameters', 0):,} parameters, {cost.get('size_mb', 0):.1f} MB on disk; "
        f"{speed_line} (on {(latency or {}).get('device', '?')}, {(latency or {}).get('torch_threads', '?')} threads).",
        "",
        "## Data (content SHA-256)",
        "| split | rows | sha256 |", "|---|---|---|", *data_rows,
        "",
        "| source | path | file sha256 |", "|---|---|---|", *source_rows,
        "",
        "## Parameters",
        f"train: epochs {train.epochs}, max_steps {train.max_steps}, batch {train.batch_size}, "
        f"lr {train.learning_rate}, head lr {train.head_learning_rate}, weight decay {train.weight_decay}, "
        f"scheduler {train.lr_scheduler}, warm-up {train.warmup_ratio}, replay {train.replay_fraction}, "
        f"seed {train.seed}; {input_size}. "
        f"Gate: min_improvement {gate.min_improvement}, max_forgetting {gate.max_forgetting}, "
        f"beat_baseline {gate.beat_baseline}, test {gate.test}"
        + (f" (confidence {gate.confidence}, past {gate.past}, {gate.resamples} resamples, seed {gate.seed})"
           if gate.test == "bootstrap" else "") + ". All parameters: `version.json` beside this card.",
        "",
        "## Limitations",
        _noise_limit(verdict, gate),
        f"- {input_limit}; labels outside the list above are never predicted.",
        "- Latency was measured once, on the machine that ran the evaluation; other hardware differs.",
        "- The model inherits the biases of the pretrained encoder and of the training data.",
        "",
    ])


def _rescore(params: Params, metrics: dict, predictions: pd.DataFrame | None,
             serving: str | None) -> tuple[dict, pd.DataFrame | None, str]:
    """metrics.json scored another champion than the one serving now (a rollback, or another run promoted
    meanwhile): score the serving one on the same test splits, so the gate never judges a stale champion. Its
    answers replace the champion's in the per-row predictions; the stale champion's cost is dropped."""
    modality = modalities.get(params.task.modality)
    scored = metrics.get("champion_version")
    fresh = {k: v for k, v in metrics.items() if k != "champion"}
    fresh["champion_version"] = serving
    fresh["reference_batches"] = {k: v for k, v in (metrics.get("reference_batches") or {}).items() if k != "champion"}
    fresh["cost"] = {k: v for k, v in (metrics.get("cost") or {}).items() if k != "champion"}
    rows = None if predictions is None else predictions.drop(columns="champion", errors="ignore")
    if serving is not None:
        batches: dict = {}
        answers: dict = {}
        champion = modality.classifier(params, registry.version_dir(params.paths.registry, serving))
        fresh["champion"] = score_on_tests(params, champion, read_test_splits(params, modality), batches, answers)
        fresh["reference_batches"]["champion"] = batches
        if rows is not None:
            rows["champion"] = ""
            for split, predicted in answers.items():
                where = rows["split"] == split
                if where.sum() != len(predicted):
                    raise DataError(f"{Path(params.paths.evaluation) / gate_stats.PREDICTIONS} holds {where.sum()} rows "
                                    f"of the {split} split, the prepared split has {len(predicted)}: run "
                                    f"`driftfit evaluate` again")
                rows.loc[where, "champion"] = [str(v) for v in predicted]
    note = (f"metrics.json scored {scored or 'no champion'}, but {serving or 'no champion'} serves now"
            + (f": {serving} was re-scored on the same test splits" if serving else ""))
    return fresh, rows, note


def _read_predictions(params: Params, metrics: dict, trained: bool) -> pd.DataFrame | None:
    """evaluate's per-row predictions (every column a string, so a label 'NA' stays 'NA'); None when there are
    none. They must be the candidate metrics.json scored: its macro-F1 on the new test split must agree."""
    path = Path(params.paths.evaluation) / gate_stats.PREDICTIONS
    if not trained or not path.is_file():
        return None
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    new = rows[rows["split"] == "test"] if {"split", "label", "candidate"} <= set(rows) else rows.iloc[:0]
    expected = (metrics.get("candidate") or {}).get("test", {}).get("macro_f1")
    if len(new) == 0 or expected is None:
        raise DataError(f"{path}: no candidate answers on the test split to judge: run `driftfit evaluate` again")
    truth, (answer,), labels = gate_stats.encode(new["label"], new["candidate"])
    found = float(gate_stats.macro_f1(truth, answer, labels, np.ones((1, len(truth))))[0])
    if abs(found - expected) > 1e-5:
        raise DataError(f"{path} does not match {params.paths.metrics} (candidate macro-F1 on test {found:.6f} vs "
                        f"{expected:.6f}): they come from different evaluations; run `driftfit evaluate` again")
    return rows


def _already_registered(existing: str, serving: str | None, served: set[str]) -> str:
    if existing == serving:
        return f"kept the champion: the candidate is {existing}, which serves already"
    return (f"kept {serving}: the candidate is {existing}, which served before and was replaced (rolled back or "
            f"superseded); promoting it again would undo that ('driftfit rollback --to {existing}' serves it again)")


def run(params: Params) -> dict:
    """Apply the gate; on a pass, add the candidate as a new registry version and make it champion.

    Under the registry lock: the champion the gate compares with is the one serving now (re-scored when
    metrics.json scored another), and a candidate that already is a version is never added twice.
    """
    metrics = read_json(params.paths.metrics)
    candidate = Path(params.paths.candidate)
    train_log = read_json(candidate / "train_log.json")
    decision = read_json(params.paths.decision)
    manifest = read_json(Path(params.paths.prepared) / "manifest.json")
    latency_file = Path(params.paths.evaluation) / "latency.json"
    latency = read_json(latency_file) if latency_file.is_file() else None
    trained = bool(train_log.get("trained"))
    run_candidate.check(params, train_log)  # trained for this decision and batch
    whole = registry.model_digest(candidate)
    run_candidate.check_scored(params, metrics, whole)  # and metrics.json scored this very candidate
    predictions = _read_predictions(params, metrics, trained)  # the gate's rows: label and answers per test row
    digest = whole if trained else None
    root = params.paths.registry

    with registry.lock(root):
        registry.clean_leftovers(root)  # temp files a killed run may have left (never a version)
        previous = registry.champion_info(root)  # a missing or broken pointer stops here, with the fix
        serving = previous["version"] if previous else None
        existing = registry.find_version(root, digest) if trained else None
        served = registry.ever_champion(previous)  # the pointer just read, not read again
        notes = []
        if metrics.get("champion_version") != serving and existing not in served:
            metrics, predictions, note = _rescore(params, metrics, predictions, serving)
            notes.append(note)
        gate = decide(metrics, trained, params.promote, predictions)
        if gate["judged_on"] == "point" and params.promote.test == "bootstrap":
            notes.append(f"no per-row predictions ({Path(params.paths.evaluation) / gate_stats.PREDICTIONS}): "
                         "judged on the point estimates of metrics.json, as promote.test: point does")
        verdict = {"promoted": gate["promote"], "reason": gate["reason"], "checks": gate["checks"],
                   "judged_on": gate["judged_on"], "confidence": params.promote.confidence,
                   "comparisons": gate["comparisons"],
                   "strategy": train_log["strategy"], "previous_champion": serving, "champion": serving, "notes": notes}
        if existing is not None and existing in served:
            verdict.update(promoted=False, reason=_already_registered(existing, serving, served), version=existing)
        elif gate["promote"] and existing is not None:  # a complete version whose switch a killed run never made
            registry.set_champion(root, existing, action="promote", reason=gate["reason"])
            verdict.update(champion=existing, version=existing,
                           model_card=str(Path(root) / existing / registry.CARD))
            notes.append(f"completed the interrupted promotion of {existing}")
        elif gate["promote"]:
            version = registry.next_version(root)
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            record = {
                "version": version, "promoted_at": now, "strategy": train_log["strategy"], "reason": gate["reason"],
                "checks": gate["checks"], "previous": serving, "model_sha256": digest,
                "data": {name: s["sha256"] for name, s in manifest["splits"].items()},
                "sources": manifest.get("sources", {}),
                "memory": memory.lineage(params.paths.memory),  # the accepted batches as of this promotion
                "metrics": {k: metrics[k] for k in ("candidate", "champion", "baseline", "reference_batches", "cost")
                            if k in metrics},
                "decision": {k: decision.get(k) for k in ("strategy", "reason", "rule", "runner_up")},
                "params": params.portable_dump(),  # project paths relative: the record outlives this checkout
            }
            card = model_card(version, train_log, decision, verdict, metrics, manifest, latency, params)
            registry.add_version(root, version, candidate, record, card)  # staged, then renamed in
            registry.set_champion(root, version, action="promote", reason=gate["reason"])  # the switch
            verdict.update(champion=version, version=version, model_card=str(Path(root) / version / registry.CARD))
    write_json(params.paths.promotion, verdict)
    return verdict
