"""Validate the prepared splits: a Great Expectations suite per split, plus duplicate and leakage checks.

Every split runs through one real GX suite (columns exist, text present and of sane length, labels
allowed, rows present); the training label counts run through one more. Duplicates and train/val/test
leakage are exact matches after lowercasing and collapsing whitespace, checked in pandas.
Row numbers in messages are 0-based positions in the split file.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd

from driftfit.config import Params, ValidateConfig
from driftfit.errors import DataError, ValidationFailed
from driftfit.io import atomic_dir, write_json

log = logging.getLogger(__name__)

REQUIRED_SPLITS = ("train", "val", "test")
REFERENCE_SPLITS = ("reference_train", "reference_test")
EXAMPLES = 5          # unexpected rows kept per check (detail vs summary size)
SHOWN_CHARS = 60      # texts are cut to this many characters in messages and the summary
DOCS_SITE = "driftfit"
MAX_ERRORS_IN_MESSAGE = 10  # the rest are in summary.json


# ---- which labels are allowed where ---------------------------------------------------------

def _labels(df: pd.DataFrame) -> set[str]:
    return set(df["label"].dropna().astype(str)) if "label" in df.columns else set()


def allowed_labels(splits: dict[str, pd.DataFrame], reference_labels: list[str] | None,
                   cfg: ValidateConfig) -> tuple[list[str], str, list[str]]:
    """The allowed label set, where it came from (in words), and any warnings about the choice."""
    train = _labels(splits["train"]) if "train" in splits else set()
    if isinstance(cfg.allowed_labels, list):
        return sorted(cfg.allowed_labels), "validate.allowed_labels", []
    if cfg.allowed_labels == "reference":
        if reference_labels is not None:
            return sorted(reference_labels), "labels seen in the reference data", []
        return sorted(train), "labels seen in train", [
            "validate.allowed_labels is 'reference' but there is no reference data: using the labels seen in train"]
    return sorted(train), "labels seen in train", []


# ---- the GX suites ---------------------------------------------------------------------------

def _min_chars_regex(n: int) -> str:
    """Matches (searching) a text whose stripped length is at least n: whitespace alone never matches."""
    return r"\S" if n <= 1 else rf"\S[\s\S]{{{n - 2},}}\S"


def _split_expectations(df: pd.DataFrame, allowed: list[str], allowed_from: str,
                        check_labels: bool, cfg: ValidateConfig) -> list:
    """The expectations for one split; column checks are only added when the column exists."""
    import great_expectations as gx

    E = gx.expectations
    out = [E.ExpectColumnToExist(column="text", description="a 'text' column"),
           E.ExpectColumnToExist(column="label", description="a 'label' column"),
           E.ExpectTableRowCountToBeBetween(min_value=1, description="at least one row")]
    if "text" in df.columns:
        out += [
            E.ExpectColumnValuesToNotBeNull(column="text", description="a text in every row"),
            E.ExpectColumnValuesToMatchRegex(
                column="text", regex=_min_chars_regex(cfg.min_text_chars),
                description=f"at least {cfg.min_text_chars} character(s) once surrounding whitespace is stripped"),
            E.ExpectColumnValueLengthsToBeBetween(
                column="text", max_value=cfg.max_text_chars, description=f"at most {cfg.max_text_chars} characters"),
        ]
    if "label" in df.columns:
        out.append(E.ExpectColumnValuesToNotBeNull(column="label", description="a label in every row"))
        if check_labels:
            shown = ", ".join(allowed[:20]) + (", ..." if len(allowed) > 20 else "")
            out.append(E.ExpectColumnValuesToBeInSet(
                column="label", value_set=allowed, description=f"a label in {{{shown}}} ({allowed_from})"))
    return out


def _count_expectations(cfg: ValidateConfig) -> list:
    import great_expectations as gx

    return [gx.expectations.ExpectColumnValuesToBeBetween(
        column="count", min_value=cfg.min_rows_per_class,
        description=f"at least {cfg.min_rows_per_class} training rows per label (validate.min_rows_per_class)")]


def _gx_context(docs_dir: Path | None):
    """One in-memory context; its only Data Docs site (if any) is a local folder."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig)

    sites = {}
    if docs_dir is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        }
    config = DataContextConfig(
        # init_temp_docs_sites=False: no default site writing into a stray temp folder
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _run_suite(context, name: str, df: pd.DataFrame, expectations: list, index_columns: list[str] | None = None):
    """Validate `df` as its own dataframe asset against a suite named driftfit_<name>."""
    import great_expectations as gx

    batch = context.data_sources.get("splits").add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name=f"driftfit_{name}", expectations=expectations))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES}
    if index_columns:
        result_format["unexpected_index_column_names"] = index_columns
    return definition.run(batch_parameters={"dataframe": df}, result_format=result_format)


# ---- turning GX results into checks and messages ---------------------------------------------

def _plain(value: Any) -> Any:
    """A JSON-able, short version of a cell value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return value[:SHOWN_CHARS] + "..."
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _show(value: Any) -> str:
    value = _plain(value)
    return "null" if value is None else repr(value)


def _check(result: dict, table: str) -> dict:
    config, res = result["expectation_config"], result.get("result") or {}
    check = {"table": table, "expectation": config["type"], "column": config["kwargs"].get("column"),
             "success": bool(result["success"]), "expected": config.get("description")}
    if "observed_value" in res:
        check["observed_value"] = _plain(res["observed_value"])
    if "unexpected_count" in res:
        check["unexpected_count"] = int(res["unexpected_count"])
        indexes = res.get("partial_unexpected_index_list") or []
        values = res.get("partial_unexpected_list") or []
        if indexes and isinstance(indexes[0], dict):  # derived tables: rows named by their index columns
            check["unexpected_examples"] = [{k: _plain(v) for k, v in row.items()} for row in indexes]
        else:
            check["unexpected_examples"] = [{"row": _plain(i), "value": _plain(v)} for i, v in zip(indexes, values)]
    exception = result.get("exception_info") or {}
    if exception.get("raised_exception"):
        check["exception"] = str(exception.get("exception_message"))
    return check


def _message(split: str, check: dict) -> str:
    """One line: split, column, a few offending rows, what was expected."""
    expected = f"expected {check['expected']}"
    if check["expectation"] == "expect_column_to_exist":
        return f"{split}: column '{check['column']}' is missing: {expected}"
    if check["expectation"] == "expect_table_row_count_to_be_between":
        return f"{split}: {check.get('observed_value')} rows: {expected}"
    if check["table"].endswith("_label_counts"):  # the derived table: name the labels, not the count column
        where = f"{split}: column 'label':"
        rows = ", ".join(f"label {_show(e.get('label'))} has {e.get('count')} rows"
                         for e in check.get("unexpected_examples", []))
    else:
        where = f"{split}: column '{check['column']}'"
        rows = ", ".join(f"row {e['row']} = {_show(e['value'])}" for e in check.get("unexpected_examples", []))
    if "exception" in check or "unexpected_count" not in check:
        return f"{where} check {check['expectation']} could not run ({check.get('exception')}): {expected}"
    more = check["unexpected_count"] - len(check["unexpected_examples"])
    return f"{where} {rows}{f' (and {more} more)' if more > 0 else ''}: {expected}"


# ---- duplicates and leakage (pandas, outside GX) ---------------------------------------------

def normalise(texts: pd.Series) -> pd.Series:
    """Lowercase and collapse runs of whitespace: 'Hello  World ' and 'hello world' are one text."""
    return texts.fillna("").astype(str).str.lower().str.replace(r"\s+", " ", regex=True).str.strip()


def find_duplicates(norm: pd.Series) -> dict:
    """Rows that repeat an earlier row's text, with a few examples (first row, repeat row)."""
    norm = norm[norm != ""]
    repeats = norm[norm.duplicated(keep="first")]
    first = {text: row for row, text in norm[~norm.duplicated(keep="first")].items()}
    examples = [{"row": int(row), "same_as_row": int(first[text]), "text": _plain(text)}
                for row, text in repeats.head(EXAMPLES).items()]
    return {"count": int(len(repeats)), "examples": examples}


def find_leakage(train_norm: pd.Series, other_norm: pd.Series) -> dict:
    """Rows of another split whose text also occurs in train."""
    train_rows = {text: row for row, text in train_norm[train_norm != ""].items()}
    leaked = other_norm[other_norm.isin(train_rows.keys()) & (other_norm != "")]
    examples = [{"row": int(row), "train_row": int(train_rows[text]), "text": _plain(text)}
                for row, text in leaked.head(EXAMPLES).items()]
    return {"count": int(len(leaked)), "examples": examples}


# ---- the pure core ----------------------------------------------------------------------------

def validate_splits(splits: dict[str, pd.DataFrame], reference_labels: list[str] | None,
                    cfg: ValidateConfig, docs_dir: Path | None) -> dict:
    """Run the data-quality suite on every split; return a JSON-able summary (and build Data Docs)."""
    started = time.perf_counter()
    splits = {name: df.reset_index(drop=True) for name, df in splits.items()}  # index = row number
    allowed, allowed_from, warnings = allowed_labels(splits, reference_labels, cfg)
    errors: list[str] = []
    summary: dict[str, Any] = {"success": False, "errors": errors, "warnings": warnings,
                               "allowed_labels": allowed, "allowed_labels_from": allowed_from, "splits": {}}
    if "train" not in splits:
        errors.append("train: split missing: expected a training split")

    context = _gx_context(docs_dir)
    context.data_sources.add_pandas("splits")
    for name, df in splits.items():
        # with 'any', train defines the allowed labels, so checking train against them is moot
        check_labels = bool(allowed) and not (cfg.allowed_labels == "any" and name == "train")
        expectations = _split_expectations(df, allowed, allowed_from, check_labels, cfg)
        result = _run_suite(context, name, df, expectations).to_json_dict()
        checks = [_check(r, name) for r in result["results"]]
        if name == "train" and "label" in df.columns:
            counts = df["label"].dropna().astype(str).value_counts().rename_axis("label").reset_index(name="count")
            counts_result = _run_suite(context, "train_label_counts", counts, _count_expectations(cfg),
                                       index_columns=["label"]).to_json_dict()
            checks += [_check(r, "train_label_counts") for r in counts_result["results"]]
        summary["splits"][name] = {"rows": len(df), "success": all(c["success"] for c in checks), "checks": checks}
        errors += [_message(name, c) for c in checks if not c["success"]]

    norms = {name: normalise(df["text"]) for name, df in splits.items() if "text" in df.columns}
    summary["duplicates"] = {name: find_duplicates(norm) for name, norm in norms.items()}
    for name, dup in summary["duplicates"].items():
        if dup["count"]:
            e = dup["examples"][0]
            warnings.append(f"{name}: column 'text' has {dup['count']} repeated row(s) (after lowercasing and "
                            f"collapsing whitespace), e.g. row {e['row']} = row {e['same_as_row']} "
                            f"({_show(e['text'])}): expected each text once")
    summary["leakage"] = {}
    if "train" in norms:
        for name in ("val", "test"):
            if name not in norms:
                continue
            leak = summary["leakage"][name] = find_leakage(norms["train"], norms[name])
            if leak["count"]:
                rows = ", ".join(f"{name} row {e['row']} = train row {e['train_row']} ({_show(e['text'])})"
                                 for e in leak["examples"])
                more = leak["count"] - len(leak["examples"])
                errors.append(f"{name}: column 'text' shares {leak['count']} text(s) with train (after lowercasing and "
                              f"collapsing whitespace): {rows}{f' (and {more} more)' if more > 0 else ''}: "
                              f"expected no text in both train and {name}")

    summary["data_docs"] = None
    if docs_dir is not None:
        context.build_data_docs(site_names=[DOCS_SITE])
        summary["data_docs"] = str(Path(docs_dir) / "index.html")
    summary["success"] = not errors
    log.info("validated %d splits in %.2fs: %d errors, %d warnings",
             len(splits), time.perf_counter() - started, len(errors), len(warnings))
    return summary


# ---- the thin edge ----------------------------------------------------------------------------

def read_splits(prepared: str | Path) -> dict[str, pd.DataFrame]:
    """train/val/test (required) and reference_train/reference_test (when present) from `prepared`."""
    folder = Path(prepared)
    splits = {}
    for name in REQUIRED_SPLITS + REFERENCE_SPLITS:
        path = folder / f"{name}.parquet"
        if path.is_file():
            splits[name] = pd.read_parquet(path)
        elif name in REQUIRED_SPLITS:
            raise DataError(f"{path} is missing: expected the prepared {name} split (run 'driftfit prepare' first)")
    return splits


def run(params: Params) -> dict:
    """Validate paths.prepared; write paths.validation/ (summary.json + data_docs/) whole; raise on errors."""
    splits = read_splits(params.paths.prepared)
    reference = [splits[n] for n in REFERENCE_SPLITS if n in splits]
    reference_labels = sorted(set().union(*map(_labels, reference))) if reference else None
    target = Path(params.paths.validation)
    with atomic_dir(target) as tmp:
        summary = validate_splits(splits, reference_labels, params.validate_, tmp / "data_docs")
        summary["data_docs"] = str(target / "data_docs" / "index.html")  # where it lands once renamed
        write_json(tmp / "summary.json", summary)
    if not summary["success"]:
        errors = summary["errors"]
        shown = "; ".join(errors[:MAX_ERRORS_IN_MESSAGE])
        more = f"; and {len(errors) - MAX_ERRORS_IN_MESSAGE} more" if len(errors) > MAX_ERRORS_IN_MESSAGE else ""
        raise ValidationFailed(f"data validation failed: {shown}{more} (details: {target / 'summary.json'})")
    return summary
