"""What people read about the registry and the last run: `driftfit registry list` and `driftfit summary`."""

from __future__ import annotations

import json
from pathlib import Path

from driftfit.io import read_json


def _when(stamp: str | None) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM' (UTC, as recorded); '-' when unknown."""
    return stamp.replace("T", " ")[:16] if stamp else "-"


def registry_table(rows: list[dict]) -> str:
    """One line per version (registry.list_versions' rows), oldest first, in aligned columns."""
    if not rows:
        return "no versions yet (nothing was promoted)"
    head = ["version", "promoted (UTC)", "strategy", "macro-F1 on its batch", "serves"]
    serves = {"champion": "<- serving", "retired": "served before", "never served": "never served"}
    body = [[r["version"], _when(r.get("promoted_at")), r.get("strategy") or "-",
             "-" if r.get("macro_f1_new") is None else f"{r['macro_f1_new']:.3f}", serves.get(r["stage"], r["stage"])]
            for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [head, *body])


def registry_json(rows: list[dict]) -> str:
    return json.dumps(rows, default=str)


def _f1(metrics: dict, model: str) -> float | None:
    return ((metrics.get(model) or {}).get("test") or {}).get("macro_f1")


def last_run(decision_file: str | Path, metrics_file: str | Path, promotion_file: str | Path) -> str:
    """The last run in one line: what was chosen and why, the new score, promoted or not and why."""
    files = [Path(p) for p in (decision_file, metrics_file, promotion_file)]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        return f"no finished run yet ({', '.join(missing)} missing): run 'make run' or 'dvc repro'"
    decision, metrics, verdict = (read_json(p) for p in files)
    rule = f", rule {decision['rule']}" if decision.get("rule") else ""
    parts = [f"chose {decision.get('strategy')}{rule}"]
    new, champ, base = _f1(metrics, "candidate"), _f1(metrics, "champion"), _f1(metrics, "baseline")
    if new is not None:
        against = [f"champion {champ:.3f}" if champ is not None else "no champion before"]
        if base is not None:
            against.append(f"pretrained baseline {base:.3f}")
        parts.append(f"new model macro-F1 {new:.3f} on the new test split ({', '.join(against)})")
    if verdict.get("promoted"):
        parts.append(f"PROMOTED as {verdict.get('version') or verdict.get('champion')}")
    else:
        parts.append(f"not promoted, {verdict.get('champion') or 'no model'} keeps serving")
    reason = verdict.get("reason", "")
    for lead in ("promoted: ", "rejected: "):
        reason = reason.removeprefix(lead)
    return "; ".join(parts) + (f" ({reason})" if reason else "")
