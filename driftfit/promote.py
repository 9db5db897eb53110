"""Promote the candidate to champion only if it is better; write the verdict and a model card.

The gate (macro-F1, in points):
  - no champion yet: the first trained candidate is promoted;
  - otherwise the candidate must beat the champion on the new test split by more than
    `promote.min_improvement` and may lose at most `promote.max_forgetting` on the reference split.
The registry switch is one atomic rename of the pointer file (see registry.py).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from driftfit.config import Params
from driftfit.io import read_json, write_json
from driftfit.registry import add_version, champion_info, set_champion


def _f1(metrics: dict, model: str, split: str) -> float | None:
    value = (metrics.get(model) or {}).get(split, {}).get("macro_f1")
    return None if value is None else 100.0 * value


def decide(metrics: dict, trained: bool, min_improvement: float, max_forgetting: float) -> tuple[bool, str]:
    """(promote?, reason in words)."""
    if not trained:
        return False, f"kept the champion: strategy '{metrics.get('strategy')}' trained no candidate"
    new = _f1(metrics, "candidate", "test")
    if "champion" not in metrics:
        return True, f"promoted: first model (macro-F1 {new:.1f} on the new test split), no champion to beat"
    gain = new - _f1(metrics, "champion", "test")
    ref_new, ref_old = _f1(metrics, "candidate", "reference_test"), _f1(metrics, "champion", "reference_test")
    forgetting = (ref_old - ref_new) if ref_new is not None and ref_old is not None else 0.0
    ref_part = (f"{-forgetting:+.1f} on reference (limit -{max_forgetting:.1f})"
                if ref_new is not None and ref_old is not None else "no reference split")
    if gain <= min_improvement:
        return False, (f"rejected: {gain:+.1f} macro-F1 on new data, needs more than +{min_improvement:.1f}; "
                       f"{ref_part}")
    if forgetting > max_forgetting:
        return False, f"rejected: {gain:+.1f} macro-F1 on new data but {ref_part}: forgets too much"
    return True, f"promoted: {gain:+.1f} macro-F1 on new data, {ref_part}"


def model_card(version: str, log: dict, decision: dict, metrics: dict, manifest: dict, params: Params) -> str:
    rows = []
    for model in ("candidate", "champion"):
        for split, m in (metrics.get(model) or {}).items():
            rows.append(f"| {model} | {split} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |")
    data_rows = [f"| {name} | {s['rows']} | `{s['sha256'][:16]}` |" for name, s in manifest["splits"].items()]
    train = params.train
    return "\n".join([
        f"# Model card: {version}",
        "",
        f"Promoted {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}.",
        f"Base model: `{params.model.pretrained}`; strategy **{log['strategy']}** "
        f"({log['trainable_params']:,} of {log['total_params']:,} parameters trained, {log['steps']} steps, "
        f"{log['seconds']} s on {log['device']}).",
        "",
        "## Why this strategy",
        decision.get("reason", "(no reason recorded)"),
        "",
        "## Labels",
        ", ".join(log["labels"]),
        "",
        "## Metrics",
        "| model | split | accuracy | macro-F1 |", "|---|---|---|---|", *rows,
        "",
        "## Data (content SHA-256)",
        "| split | rows | sha256 |", "|---|---|---|", *data_rows,
        "",
        "## Training parameters",
        f"epochs {train.epochs}, max_steps {train.max_steps}, batch {train.batch_size}, lr {train.learning_rate}, "
        f"head lr {train.head_learning_rate}, weight decay {train.weight_decay}, scheduler {train.lr_scheduler}, "
        f"warm-up {train.warmup_ratio}, replay {train.replay_fraction}, seed {train.seed}, "
        f"max_seq_len {params.model.max_seq_len}.",
        "",
        "## Limitations",
        "- Scores come from one held-out split of the incoming batch; small classes have wide error bars.",
        "- Texts longer than max_seq_len tokens are truncated; labels outside the list above are never predicted.",
        "- The model inherits the biases of the pretrained encoder and of the training data.",
        "",
    ])


def run(params: Params) -> dict:
    metrics = read_json(params.paths.metrics)
    candidate = Path(params.paths.candidate)
    log = read_json(candidate / "train_log.json")
    decision = read_json(params.paths.decision)
    manifest = read_json(Path(params.paths.prepared) / "manifest.json")
    promote, reason = decide(metrics, bool(log.get("trained")), params.promote.min_improvement,
                             params.promote.max_forgetting)
    previous = champion_info(params.paths.registry)
    verdict = {"promoted": promote, "reason": reason, "strategy": log["strategy"],
               "previous_champion": previous["version"] if previous else None, "champion": None}
    if promote:
        version = add_version(params.paths.registry, candidate)  # copied under a temp name, then renamed
        card = model_card(version, log, decision, metrics, manifest, params)
        (Path(params.paths.registry) / version / "MODEL_CARD.md").write_text(card, encoding="utf-8")
        set_champion(params.paths.registry, version, {
            "strategy": log["strategy"], "metrics": metrics.get("candidate"),
            "data": {n: s["sha256"] for n, s in manifest["splits"].items()},
            "reason": reason, "previous": verdict["previous_champion"],
            "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        })
        verdict["champion"] = version
        verdict["model_card"] = str(Path(params.paths.registry) / version / "MODEL_CARD.md")
    else:
        verdict["champion"] = verdict["previous_champion"]
    write_json(params.paths.promotion, verdict)
    return verdict
