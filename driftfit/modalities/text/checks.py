"""Check text splits against the data contract: a Great Expectations suite, plus duplicates and leakage.

The contract (`validate.contract`, a YAML file; or the `validate.*` keys when it is null; see
driftfit.data.contract) says what every split must satisfy. Its rules run as GX suites (driftfit.data.gx_suite);
duplicates and leakage, which GX cannot express, run on normalised texts (modalities/text/texts.py):
near-duplicates inside a split, and texts shared between train, val and test. An `error` stops the run, a
`warning` is reported (and logged) and the run goes on. The result is one JSON-able summary and the GX Data
Docs; driftfit.data.validation decides where they go.
Row numbers in messages are 0-based positions in the split; during `prepare` they also name the file line.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from driftfit.config import Params
from driftfit.data.contract import REFERENCE_SPLITS, REQUIRED_SPLITS, Contract, DuplicateRules, contract_for
from driftfit.data.gx_suite import DOCS_SITE, as_check, gx_context, label_expectations, label_table, run_suite
from driftfit.modalities.text.gx_rows import TEXT_COLUMNS, row_expectations, row_profile
from driftfit.data.validation import LEAKAGE_PAIRS
from driftfit.modalities.text.texts import find_duplicates, find_leakage, plain, text_ids

log = logging.getLogger(__name__)



# ---- which labels are allowed where ---------------------------------------------------------

def _labels(df: pd.DataFrame) -> set[str]:
    return set(df["label"].dropna().astype(str).unique()) if "label" in df.columns else set()


def allowed_labels(splits: dict[str, pd.DataFrame], reference_labels: list[str] | None,
                   contract: Contract) -> tuple[list[str], str, list[str]]:
    """The allowed label set, where it came from (in words), and any warnings about the choice."""
    train = _labels(splits["train"]) if "train" in splits else set()
    allowed = contract.labels.allowed
    if isinstance(allowed, list):
        return sorted(allowed), "the contract's labels.allowed", []
    if allowed == "reference":
        if reference_labels is not None:
            return sorted(reference_labels), "labels seen in the reference data", []
        return sorted(train), "labels seen in train", [
            "labels.allowed is 'reference' but there is no reference data: using the labels seen in train"]
    return sorted(train), "labels seen in train", []


# ---- messages ----------------------------------------------------------------------------------

def _quoted(value: Any) -> str:
    value = plain(value)
    return "null" if value is None else repr(value)


def _where(example: dict, sources: dict[str, str]) -> str:
    """'train row 3' or, during prepare, 'train row 3 (file 'x.csv' line 5)'."""
    where = f"{example['split']} row {example['row']}"
    if example.get("line") is not None and example["split"] in sources:
        where += f" (file '{sources[example['split']]}' line {example['line']})"
    return where


def _message(check: dict, sources: dict[str, str], empty: list[str]) -> str:
    """One line: column, a few offending rows (or labels), what was expected, which contract key."""
    expected = f"expected {check['expected']} (contract {check['rule']})"
    column = "text" if check["column"] in TEXT_COLUMNS else "label" if check["table"] == "labels" \
        or check["column"] == "label_type" else check["column"]
    if "exception" in check:
        return f"column '{column}': check {check['expectation']} could not run ({check['exception']}): {expected}"
    if check["rule"] == "splits":
        return f"split(s) {', '.join(empty)} have no rows: {expected}"
    if check["table"] == "labels":
        if "unexpected_count" not in check:  # a sum over the table
            return f"column 'label': observed {check.get('observed_value')}: {expected}"
        rows = ", ".join(f"label {_quoted(e['label'])} has {e['train_rows']} training rows"
                         + (f" (largest class / this = {e['imbalance']:.3g})" if "imbalance" in e else "")
                         for e in check["unexpected_examples"])
    else:
        rows = ", ".join(f"{_where(e, sources)} = {_quoted(e['value'])}"
                         + (f" ({e['chars']} characters)" if "chars" in e else "")
                         for e in check["unexpected_examples"])
    more = check["unexpected_count"] - len(check["unexpected_examples"])
    return f"column '{column}': {rows}{f' (and {more} more)' if more > 0 else ''}: {expected}"


def _duplicate_findings(name: str, dup: dict, rules: DuplicateRules) -> tuple[str | None, str | None]:
    """(error, warning) about one split's duplicates."""
    if not dup["count"]:
        return None, None
    e = dup["examples"][0]
    text = (f"{name}: column 'text': {dup['count']} of {dup['rows']} rows ({dup['share']:.1%}) repeat an earlier "
            f"row ({dup['exact']} exactly, the rest after lowercasing and ignoring punctuation and spaces), "
            f"e.g. row {e['row']} = row {e['same_as_row']} ({_quoted(e['text'])})")
    if dup["share"] > rules.max_share:
        return f"{text}: expected at most {rules.max_share:.0%} repeated rows (contract duplicates.max_share)", None
    return None, f"{text}: expected each text once"


# ---- the pure core ----------------------------------------------------------------------------

def validate_splits(splits: dict[str, pd.DataFrame], reference_labels: list[str] | None, contract: Contract,
                    docs_dir: Path | None, sources: dict[str, str] | None = None) -> dict:
    """Check every split against the contract; return a JSON-able summary (and build Data Docs).

    `sources` maps a split to the file its rows came from; with a `line` column in the splits, row
    messages then name the file line too.
    """
    started = time.perf_counter()
    sources = sources or {}
    splits = {name: df.reset_index(drop=True) for name, df in splits.items()}  # index = row number
    errors: list[str] = []
    warnings: list[str] = []
    for name, df in list(splits.items()):  # a split without the contract's columns cannot be profiled
        missing = [c for c in contract.columns if c not in df.columns]
        if missing:
            errors.append(f"{name}: column(s) {', '.join(repr(c) for c in missing)} missing: expected the columns "
                          f"{', '.join(contract.columns)} (contract columns)")
            del splits[name]
    if "train" not in splits:
        errors.append("train: split missing: expected a training split")
    allowed, allowed_from, notes = allowed_labels(splits, reference_labels, contract)
    warnings += notes
    summary: dict[str, Any] = {"success": False, "errors": errors, "warnings": warnings,
                               "contract": contract.model_dump(), "allowed_labels": allowed,
                               "allowed_labels_from": allowed_from,
                               "splits": {name: {"rows": len(df)} for name, df in splits.items()}, "checks": []}

    # Great Expectations: the contract's rules
    seconds = summary["seconds"] = {}
    tick = time.perf_counter()
    context = gx_context(docs_dir)
    detailed = docs_dir is not None  # Data Docs show observed values; a bare check details failures only
    index = ["split", "row"] + (["line"] if any("line" in df.columns for df in splits.values()) else [])
    if splits:
        key = repr((contract, allowed, allowed_from, sorted(splits)))
        rows = run_suite(context, "rows", row_profile(splits),
                         lambda: row_expectations(contract, allowed, allowed_from, list(splits)), key, index, detailed)
        summary["checks"] += [as_check(r, "rows", splits) for r in rows["results"]]
    if "train" in splits:
        has_reference = "reference_train" in splits
        labels = run_suite(context, "labels", label_table(splits), lambda: label_expectations(contract, has_reference),
                           repr((contract, has_reference)), ["label", "train_rows"], detailed)
        summary["checks"] += [as_check(r, "labels", splits) for r in labels["results"]]
    for check in summary["checks"]:
        if not check["success"]:
            empty = [n for n in REQUIRED_SPLITS if n in splits and not len(splits[n])]
            (errors if check["severity"] == "error" else warnings).append(_message(check, sources, empty))

    seconds["gx_suite"] = round(time.perf_counter() - tick, 4)

    # duplicates and leakage: on ids of the normalised texts
    tick = time.perf_counter()
    ids = text_ids({name: df["text"] for name, df in splits.items()})
    summary["duplicates"] = {name: find_duplicates(splits[name]["text"], i) for name, i in ids.items()}
    for name, dup in summary["duplicates"].items():
        error, warning = _duplicate_findings(name, dup, contract.duplicates)
        errors += [error] if error else []
        warnings += [warning] if warning else []
    summary["leakage"] = {}
    for source, other in LEAKAGE_PAIRS:
        if source not in ids or other not in ids:
            continue
        leak = summary["leakage"][f"{source}->{other}"] = find_leakage(ids[source], ids[other],
                                                                       splits[other]["text"])
        if leak["count"]:
            shown = ", ".join(f"{other} row {e['row']} = {source} row {e['source_row']} ({_quoted(e['text'])})"
                              for e in leak["examples"])
            more = leak["count"] - len(leak["examples"])
            (errors if contract.leakage == "error" else warnings).append(
                f"{other}: column 'text' shares {leak['count']} text(s) with {source} (after lowercasing and "
                f"ignoring punctuation and spaces): {shown}{f' (and {more} more)' if more > 0 else ''}: "
                f"expected no text in both {source} and {other} (contract leakage)")

    seconds["duplicates_and_leakage"] = round(time.perf_counter() - tick, 4)

    summary["data_docs"] = None
    if docs_dir is not None:
        tick = time.perf_counter()
        context.build_data_docs(site_names=[DOCS_SITE])
        summary["data_docs"] = str(Path(docs_dir) / "index.html")
        seconds["data_docs"] = round(time.perf_counter() - tick, 4)
    summary["success"] = not errors
    seconds["total"] = round(time.perf_counter() - started, 4)
    log.info("validated %d splits in %.2fs: %d errors, %d warnings",
             len(splits), seconds["total"], len(errors), len(warnings))
    return summary


# ---- the modality's validate ---------------------------------------------------------------------

def _reference_labels(splits: dict[str, pd.DataFrame]) -> list[str] | None:
    reference = [splits[n] for n in REFERENCE_SPLITS if n in splits]
    return sorted(set().union(*map(_labels, reference))) if reference else None


def validate(params: Params, splits: dict[str, pd.DataFrame], docs_dir: Path | None,
             sources: dict[str, str] | None = None) -> dict:
    """The contract (validate.contract, or the validate.* keys) checked on every split (see validate_splits)."""
    contract, contract_from = contract_for(params.validate_)
    summary = validate_splits(splits, _reference_labels(splits), contract, docs_dir, sources)
    summary["contract_from"] = contract_from
    return summary
