"""Markdown a person reads: used for Prefect artifacts and printed summaries. No Prefect here."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "—"
    return "—" if value is None else str(value)


def _flatten(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten(value, f"{name}.")
        else:
            rows.append((name, value))
    return rows


def table(rows: list[tuple[str, Any]], header: tuple[str, str] = ("measure", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in rows]
    return "\n".join(lines)


def validation_md(summary: dict) -> str:
    status = "passed" if summary.get("success") else "FAILED"
    parts = [f"# Data validation {status}"]
    if summary.get("errors"):
        parts += ["## Errors", *[f"- {e}" for e in summary["errors"]]]
    if summary.get("warnings"):
        parts += ["## Warnings", *[f"- {w}" for w in summary["warnings"]]]
    if summary.get("data_docs"):
        parts.append(f"Great Expectations Data Docs: `{summary['data_docs']}`")
    return "\n\n".join(parts)


def shift_md(report: dict) -> str:
    rows = [(k, v) for k, v in _flatten(report) if not isinstance(v, (list, dict)) or k.endswith("labels")]
    return "# Shift report\n\n" + table(rows)


def decision_md(decision: dict) -> str:
    measures = table(sorted((decision.get("measures") or {}).items()))
    forced = " (forced by the user)" if decision.get("forced") else ""
    return (f"# Strategy: **{decision['strategy']}**{forced}\n\n"
            f"Runner-up: {decision.get('runner_up') or '—'} · rule: `{decision.get('rule')}`\n\n"
            f"**Why:** {decision.get('reason')}\n\n## Measures behind it\n\n{measures}")


def metrics_rows(metrics: dict) -> list[dict]:
    rows = []
    for model in ("candidate", "champion"):
        for split, m in (metrics.get(model) or {}).items():
            rows.append({"model": model, "split": split, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
    return rows


def promotion_md(verdict: dict) -> str:
    head = "Promoted" if verdict["promoted"] else "Not promoted"
    card = f"\n\nModel card: `{verdict['model_card']}`" if verdict.get("model_card") else ""
    return f"# {head}\n\n{verdict['reason']}\n\nChampion now: {verdict.get('champion') or 'none'}{card}"
