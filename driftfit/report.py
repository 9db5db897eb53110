"""Markdown a person reads: used for Prefect artifacts and printed summaries. No Prefect here."""

from __future__ import annotations

from typing import Any


def _cell(value: Any) -> str:
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
    lines += [f"| {k} | {_cell(v)} |" for k, v in rows]
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


def validation_rows(summary: dict) -> list[dict]:
    """One row per contract check (a GX expectation), for a table artifact."""
    return [{"rule": c.get("rule"), "severity": c.get("severity"), "table": c.get("table"),
             "expectation": c.get("expectation"), "column": c.get("column") or "", "passed": c.get("success"),
             "expected": c.get("expected") or "",
             "observed": _cell(c.get("observed_value", c.get("unexpected_count")))}
            for c in summary.get("checks") or []]


def metrics_rows(metrics: dict) -> list[dict]:
    """One row per model and test split: accuracy, macro-F1, calibration error."""
    rows = []
    for model in ("candidate", "champion", "baseline"):
        for split, m in (metrics.get(model) or {}).items():
            rows.append({"model": model, "split": split, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                         "ece": m.get("ece")})
    return rows


def comparisons_md(verdict: dict) -> list[str]:
    """The gate's paired comparisons as a table: each difference (candidate minus the other model, macro-F1 points,
    on the same test rows), its interval and how it reads; no lines when the gate judged point estimates."""
    rows = verdict.get("comparisons") or []
    if not rows:
        return []
    level = f"{verdict.get('confidence', 0.95):.0%}"
    lines = [f"Candidate minus the other model on the same test rows, macro-F1 points, with the {level} interval of "
             "a paired bootstrap over those rows: an interval that holds 0 is within noise.", "",
             f"| compared on | against | rows | difference | {level} interval | reads as |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['on']} | {r['against']} | {r['rows']} | {r['difference']:+.1f} | {r['low']:+.1f} to "
              f"{r['high']:+.1f} | {r['reads']} |" for r in rows]
    return lines


def promotion_md(verdict: dict) -> str:
    """The promotion verdict (the Prefect artifact): the reason, every check, the comparisons with their bounds."""
    head = "Promoted" if verdict["promoted"] else "Not promoted"
    checks = "\n".join(f"- {'✅' if c['passed'] else '❌'} {c['text']}" for c in verdict.get("checks", []))
    table = comparisons_md(verdict)
    bounds = ("\n\n## How sure\n\n" + "\n".join(table)) if table else ""
    notes = "".join(f"\n\nNote: {n}" for n in verdict.get("notes") or [])
    card = f"\n\nModel card: `{verdict['model_card']}`" if verdict.get("model_card") else ""
    return (f"# {head}\n\n{verdict['reason']}\n\n{checks}{bounds}{notes}\n\n"
            f"Champion now: {verdict.get('champion') or 'none'}{card}")


def cost_md(metrics: dict, latency: dict) -> str:
    """Parameters, size on disk and latency per example of the models that would serve."""
    lines = ["# Inference cost", "",
             f"Measured on {latency.get('device')} with {latency.get('torch_threads')} threads.", "",
             "| model | parameters | size (MB) | batch 1 p50 / p95 (ms) | batch 32 p50 / p95 (ms per example) |",
             "|---|---|---|---|---|"]
    for model, cost in (metrics.get("cost") or {}).items():
        lat = (latency.get("models") or {}).get(model, {})
        cells = [f"{lat[b]['p50_ms']:.2f} / {lat[b]['p95_ms']:.2f}" if b in lat else "—"
                 for b in ("batch_1", "batch_32")]
        lines.append(f"| {model} | {cost['parameters']:,} | {cost['size_mb']:.1f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def confusion_md(confusion: dict) -> str:
    """A confusion matrix as a markdown table: rows are the true labels, columns the predicted ones."""
    labels = confusion["labels"]
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {label} | " + " | ".join(str(v) for v in row) + " |"
              for label, row in zip(labels, confusion["matrix"])]
    return "\n".join(lines)


def test_images_md(png: bytes, confusion: dict, title: str) -> str:
    """The grid of test images (true / predicted; embedded as a PNG data URI) and the confusion matrix beside it."""
    import base64

    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (f"# {title}\n\nEach image is titled *true / predicted* (green: right, red: wrong).\n\n"
            f"![test images, true / predicted]({uri})\n\n## Confusion matrix\n\n{confusion_md(confusion)}")
