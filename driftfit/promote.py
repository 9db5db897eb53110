"""Promote the candidate to champion only if it passes the gate; write the verdict and a model card.

The gate, in macro-F1 points (params `promote.*`):
  - new data: the candidate must beat the champion on the new test split by more than
    `min_improvement` (with no champion yet, the first trained candidate passes);
  - forgetting: it may lose at most `max_forgetting` against the champion on the reference test split;
  - baseline: with `beat_baseline`, it must beat the untrained pretrained model (zero-shot: the
    nearest label name) on the new test split; training that does not beat it bought nothing.
The verdict names every check with its numbers, in words.

Promotion is atomic: the new version folder (model, card, version.json) is assembled under a temp
name and renamed in, then the champion pointer is replaced in one rename (see registry.py). A run
killed at any point leaves the old champion in place; its leftovers are removed by the next run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from driftfit import memory, registry
from driftfit.config import Params, PromoteConfig
from driftfit.io import read_json, write_json
from driftfit.strategies import spec


def _macro_f1_points(metrics: dict, model: str, split: str) -> float | None:
    value = (metrics.get(model) or {}).get(split, {}).get("macro_f1")
    return None if value is None else 100.0 * value


def forgetting_per_batch(metrics: dict) -> dict[str, float]:
    """Champion minus candidate macro-F1 points on each past batch both were scored on (metrics.json's
    `reference_batches`); the gate judges the worst, evaluate records them all."""
    cand = (metrics.get("reference_batches") or {}).get("candidate") or {}
    champ = (metrics.get("reference_batches") or {}).get("champion") or {}
    return {b: 100.0 * (champ[b]["macro_f1"] - cand[b]["macro_f1"]) for b in cand if b in champ}


def decide(metrics: dict, trained: bool, gate: PromoteConfig) -> dict:
    """{"promote": bool, "reason": words, "checks": [{"name", "passed", "value", "limit", "text"}]}."""
    strategy = metrics.get("strategy")
    if not trained:
        return {"promote": False, "checks": [],
                "reason": f"kept the champion: strategy '{strategy}' trained no candidate"}
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

    promote = all(c["passed"] for c in checks)
    ordered = sorted(checks, key=lambda c: c["passed"])  # failing checks first: the reason leads with why
    words = "; ".join(c["text"] for c in ordered)
    return {"promote": promote, "checks": checks, "reason": f"{'promoted' if promote else 'rejected'}: {words}"}


def _table(metrics: dict) -> list[str]:
    rows = ["| model | split | accuracy | macro-F1 | ECE |", "|---|---|---|---|---|"]
    for model in ("candidate", "champion", "baseline"):
        for split, m in (metrics.get(model) or {}).items():
            rows.append(f"| {model} | {split} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m.get('ece', 0):.4f} |")
    return rows


def _input_size(params: Params, train_log: dict) -> str:
    """What the model reads, in the card's words: tokens per text, or pixels per image side (as trained: a
    Hugging Face image model's own size)."""
    if params.task.modality == "image":
        size = train_log.get("image_size", params.image.size)
        return f"image size {size} x {size}"
    return f"max_seq_len {params.model.max_seq_len}"


def _input_limit(params: Params, train_log: dict) -> str:
    if params.task.modality == "image":
        size = train_log.get("image_size", params.image.size)
        return (f"Images are resized whole to {size} x {size} pixels (RGB); fine detail "
                "below that resolution is lost")
    return "Texts longer than max_seq_len tokens are truncated"


def model_card(version: str, train_log: dict, decision: dict, verdict: dict, metrics: dict, manifest: dict,
               latency: dict | None, params: Params) -> str:
    """The version's model card (markdown): data, decision and why, params, metrics, cost, limitations."""
    data_rows = [f"| {name} | {s['rows']} | `{s['sha256'][:16]}` |" for name, s in manifest["splits"].items()]
    source_rows = [f"| {role} | `{s['path']}` | `{(s.get('sha256') or '—')[:16]}` |"
                   for role, s in manifest.get("sources", {}).items()]
    cost = (metrics.get("cost") or {}).get("candidate") or {}
    speed = ((latency or {}).get("models") or {}).get("candidate") or {}
    speed_line = "; ".join(f"batch {b.split('_')[1]}: p50 {v['p50_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms per example"
                           for b, v in speed.items()) or "not measured"
    train = params.train
    checks = [f"- {'pass' if c['passed'] else 'FAIL'}: {c['text']}" for c in verdict["checks"]]
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
        f"seed {train.seed}; {_input_size(params, train_log)}. "
        f"Gate: min_improvement {params.promote.min_improvement}, max_forgetting {params.promote.max_forgetting}, "
        f"beat_baseline {params.promote.beat_baseline}. All parameters: `version.json` beside this card.",
        "",
        "## Limitations",
        "- Scores come from one held-out split of the incoming batch; small classes have wide error bars.",
        f"- {_input_limit(params, train_log)}; labels outside the list above are never predicted.",
        "- Latency was measured once, on the machine that ran the evaluation; other hardware differs.",
        "- The model inherits the biases of the pretrained encoder and of the training data.",
        "",
    ])


def _rescore(params: Params, metrics: dict, serving: str | None) -> tuple[dict, str]:
    """metrics.json scored another champion than the one serving now (a rollback, or another run promoted
    meanwhile): score the serving one on the same test splits, so the gate never judges a stale champion."""
    from driftfit.modalities import step_part

    score_folder = step_part("evaluate", "score_folder", params)  # the text or image scorer
    scored = metrics.get("champion_version")
    fresh = {k: v for k, v in metrics.items() if k != "champion"}
    fresh["champion_version"] = serving
    if serving is not None:
        batches: dict = {}
        fresh["champion"] = score_folder(params, Path(params.paths.registry) / serving, batches)
        fresh["reference_batches"] = {**(metrics.get("reference_batches") or {}), "champion": batches}
    note = (f"metrics.json scored {scored or 'no champion'}, but {serving or 'no champion'} serves now"
            + (f": {serving} was re-scored on the same test splits" if serving else ""))
    return fresh, note


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
    digest = registry.model_digest(candidate) if trained else None
    root = params.paths.registry

    with registry.lock(root):
        registry.clean_leftovers(root)  # temp files a killed run may have left (never a version)
        previous = registry.champion_info(root)  # a missing or broken pointer stops here, with the fix
        serving = previous["version"] if previous else None
        existing = registry.find_version(root, digest) if trained else None
        served = registry.ever_champion(previous)  # the pointer just read, not read again
        notes = []
        if metrics.get("champion_version") != serving and existing not in served:
            metrics, note = _rescore(params, metrics, serving)
            notes.append(note)
        gate = decide(metrics, trained, params.promote)
        verdict = {"promoted": gate["promote"], "reason": gate["reason"], "checks": gate["checks"],
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
