"""The data-quality gate: the contract, real Great Expectations runs on small DataFrames (no mocks).

A GX run costs time, so each scenario is validated once (module fixtures) and asserted on many times.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from driftfit.config import Params, ValidateConfig
from driftfit.errors import ConfigError, ValidationFailed
from driftfit.data.contract import Contract, contract_from_config, load_contract
from driftfit.modalities.text.texts import find_duplicates, find_leakage, normalise, text_flags, text_ids
from driftfit.modalities.text.checks import allowed_labels, validate_splits
from driftfit.pipeline import runner
from tests.conftest import ROOT

CONTRACT = contract_from_config(ValidateConfig(max_text_chars=100))


def frame(label_counts: dict[str, int], tag: str) -> pd.DataFrame:
    """Unique, clean texts: `tag` keeps splits from sharing any text."""
    rows = [(f"{tag} example {i} about {label}", label) for label, n in label_counts.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"])


def clean_splits() -> dict[str, pd.DataFrame]:
    return {"train": frame({"greet": 6, "bye": 6, "ask": 6}, "train"),
            "val": frame({"greet": 2, "bye": 2, "ask": 2}, "val"),
            "test": frame({"greet": 2, "bye": 2, "ask": 2}, "test")}


def dirty_splits() -> dict[str, pd.DataFrame]:
    splits = clean_splits()
    train = pd.concat([splits["train"], frame({"rare": 2}, "train")], ignore_index=True)  # 'rare': below minimum
    train.loc[1, "text"] = np.nan
    train.loc[2, "text"] = ""
    train.loc[3, "text"] = "  \t "
    train.loc[4, "text"] = "x" * 101
    train.loc[5, "text"] = "Train  EXAMPLE 0 about greet!"  # a near-repeat of row 0
    test = splits["test"].copy()
    test.loc[0, "label"] = "unknown"
    test.loc[1, "text"] = " TRAIN example 0 about BYE."  # leaked from train row 6
    return {"train": train, "val": splits["val"], "test": test}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    docs = tmp_path_factory.mktemp("validate") / "data_docs"
    return validate_splits(clean_splits(), None, CONTRACT, docs)


@pytest.fixture(scope="module")
def dirty():
    return validate_splits(dirty_splits(), None, CONTRACT, None)


def errors_about(summary: dict, column: str, *fragments: str, warnings: bool = False) -> list[str]:
    found = summary["warnings"] if warnings else summary["errors"]
    return [e for e in found if f"column '{column}'" in e and all(f in e for f in fragments)]


# ---- the contract ---------------------------------------------------------------------------

def test_shipped_contract_equals_the_default_keys():
    assert load_contract(ROOT / "data" / "contract.yaml") == contract_from_config(ValidateConfig())


def test_every_contract_key_is_commented():
    for line in (ROOT / "data" / "contract.yaml").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            assert "#" in line, f"uncommented key: {line!r}"


@pytest.mark.parametrize("body,match", [
    ("text:\n  min_char: 3\n", r"unknown key 'text.min_char'"),
    ("labels:\n  min_rows_per_class: 0\n", r"key 'labels.min_rows_per_class' = 0: .*greater than or equal to 1"),
    ("leakage: maybe\n", r"key 'leakage' = 'maybe'"),
    ("columns: {text: string}\n", r"key 'columns'.*exactly the keys text and label"),
    ("labels:\n  allowed: []\n", r"key 'labels.allowed'.*empty list"),
    ("- a list\n", r"expected a mapping"),
    ("text: [unclosed\n", r"not valid YAML"),
])
def test_bad_contract_names_file_and_key(tmp_path, body, match):
    path = tmp_path / "contract.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=match) as err:
        load_contract(path)
    assert str(path) in str(err.value)


def test_missing_contract_file(tmp_path):
    with pytest.raises(ConfigError, match=r"validate.contract = .*no such file"):
        load_contract(tmp_path / "nope.yaml")


# ---- a clean set ----------------------------------------------------------------------------

def test_clean_splits_pass(clean):
    assert clean["success"], clean["errors"]
    assert clean["errors"] == [] and clean["warnings"] == []
    assert clean["splits"] == {"train": {"rows": 18}, "val": {"rows": 6}, "test": {"rows": 6}}
    assert clean["allowed_labels"] == ["ask", "bye", "greet"]
    rules = {c["rule"] for c in clean["checks"]}
    assert {"splits", "columns.text", "columns.label", "text.min_chars/max_chars", "labels.allowed",
            "labels.min_classes", "labels.min_rows_per_class", "labels.max_imbalance"} <= rules
    assert "labels.max_divergence" not in rules  # no reference: nothing to diverge from
    assert all(c["success"] and c["severity"] in ("error", "warning") for c in clean["checks"])
    assert clean["leakage"]["train->test"]["count"] == 0 and clean["duplicates"]["train"]["count"] == 0
    json.dumps(clean)  # JSON-able as it stands


def test_data_docs_site_is_built(clean):
    index = clean["data_docs"]
    assert index is not None and index.endswith("index.html")
    html = open(index, encoding="utf-8").read()
    assert "driftfit_rows" in html and "driftfit_labels" in html


# ---- each kind of bad data fails, naming split, row, column and contract key --------------------

def test_dirty_splits_fail(dirty):
    assert not dirty["success"]
    failed = {c["rule"] for c in dirty["checks"] if not c["success"]}
    assert failed == {"text.min_chars/max_chars", "labels.allowed", "labels.min_rows_per_class"}


def test_null_empty_whitespace_and_too_long_texts(dirty):
    [msg] = errors_about(dirty, "text", "contract text.min_chars/max_chars")
    assert "train row 1 = null (0 characters)" in msg
    assert "train row 2 = '' (0 characters)" in msg and "train row 3 = '  \\t ' (0 characters)" in msg
    assert "train row 4 = 'xxx" in msg and "(101 characters)" in msg and "between 1 and 100 characters" in msg


def test_unknown_label_in_test(dirty):
    assert errors_about(dirty, "label", "test row 0 = 'unknown'", "labels seen in train", "labels.allowed")


def test_class_below_minimum(dirty):
    assert errors_about(dirty, "label", "label 'rare' has 2 training rows", "at least 3 training rows per label")


def test_train_test_leakage_is_an_error(dirty):
    assert errors_about(dirty, "text", "test row 1 = train row 6", "shares 1 text(s) with train", "contract leakage")
    assert dirty["leakage"]["train->test"]["count"] == 1 and dirty["leakage"]["train->val"]["count"] == 0


def test_near_duplicates_within_train_are_a_warning(dirty):
    assert dirty["duplicates"]["train"]["count"] == 1 and dirty["duplicates"]["train"]["exact"] == 0
    assert errors_about(dirty, "text", "train:", "row 5 = row 0", warnings=True)
    assert not any("repeat" in e for e in dirty["errors"])


def test_contract_severities_and_thresholds():
    """One run: duplicate share above the limit is an error, leakage downgraded to a warning,
    a single class, imbalance and divergence from the reference."""
    splits = {"train": pd.DataFrame({"text": ["same text"] * 4 + ["other"], "label": ["a"] * 5}),
              "val": frame({"a": 1}, "val"), "test": pd.DataFrame({"text": ["Same text!"], "label": ["a"]}),
              "reference_train": frame({"a": 1, "b": 9}, "ref")}
    contract = Contract.model_validate({"leakage": "warning", "duplicates": {"max_share": 0.5},
                                        "labels": {"max_divergence": 0.3, "allowed": "any"}})
    s = validate_splits(splits, ["a", "b"], contract, None)
    assert errors_about(s, "text", "train:", "3 of 5 rows (60.0%)", "3 exactly", "duplicates.max_share")
    assert errors_about(s, "label", "observed 1", "at least 2 distinct labels in train", "labels.min_classes")
    assert errors_about(s, "text", "test row 0 = train row 0", "contract leakage", warnings=True)
    assert errors_about(s, "label", "observed 0.9", "labels.max_divergence", warnings=True)
    assert not s["success"]


def test_imbalance_warning_names_the_small_class():
    splits = clean_splits()
    splits["train"] = frame({"big": 50, "small": 3}, "train")
    splits["val"], splits["test"] = frame({"big": 1, "small": 1}, "val"), frame({"big": 1, "small": 1}, "test")
    contract = Contract.model_validate({"labels": {"max_imbalance": 10}})
    s = validate_splits(splits, None, contract, None)
    assert s["success"], s["errors"]
    assert errors_about(s, "label", "label 'small' has 3 training rows", "largest class / this = 16.7",
                        "labels.max_imbalance", warnings=True)


def test_wrong_types_and_integer_labels():
    splits = clean_splits()
    splits["train"] = splits["train"].astype(object)
    splits["train"].loc[0, "text"] = 42  # a number where a text belongs (Parquet made elsewhere)
    contract = Contract.model_validate({"columns": {"text": "string", "label": "integer"}})
    s = validate_splits(splits, None, contract, None)
    assert errors_about(s, "text", "train row 0 = 42", "texts that are strings", "columns.text")
    assert errors_about(s, "label", "label 'ask'", "labels that are integers", "columns.label")


def test_missing_column_and_empty_split():
    splits = clean_splits()
    splits["val"] = splits["val"].drop(columns="label")
    splits["test"] = splits["test"].iloc[:0]
    s = validate_splits(splits, None, CONTRACT, None)
    assert any(e.startswith("val: column(s) 'label' missing") for e in s["errors"])
    assert any(e.startswith("split(s) test have no rows") for e in s["errors"])


def test_file_lines_are_named_when_known():
    splits = clean_splits()
    splits["test"]["line"] = np.arange(len(splits["test"])) + 2
    splits["test"].loc[3, "text"] = ""
    s = validate_splits(splits, None, CONTRACT, None, sources={"test": "new.csv"})
    assert errors_about(s, "text", "test row 3 (file 'new.csv' line 5) = ''")


# ---- pure helpers (no GX) -------------------------------------------------------------------------

def test_allowed_labels_modes():
    splits = clean_splits()
    assert allowed_labels(splits, ["x"], CONTRACT)[0] == ["ask", "bye", "greet"]
    ref = Contract.model_validate({"labels": {"allowed": "reference"}})
    assert allowed_labels(splits, ["bye", "x"], ref)[:2] == (["bye", "x"], "labels seen in the reference data")
    labels, _, warnings = allowed_labels(splits, None, ref)
    assert labels == ["ask", "bye", "greet"] and "no reference data" in warnings[0]
    listed = Contract.model_validate({"labels": {"allowed": ["b", "a"]}})
    assert allowed_labels(splits, None, listed)[0] == ["a", "b"]


def test_normalise_duplicates_and_leakage():
    texts = pd.Series(["Hello,  World", "hello world!", None, "", "other", "Café au lait", "CAFÉ-AU-LAIT", 5],
                      dtype=object)
    assert normalise(texts).tolist() == ["helloworld", "helloworld", "", "", "other", "caféaulait", "caféaulait", ""]
    ids = text_ids({"train": texts, "test": pd.Series(["OTHER.", "new", ""])})
    dup = find_duplicates(texts, ids["train"])
    assert dup["count"] == 2 and dup["exact"] == 0  # empty texts are not duplicates
    assert dup["examples"][0] == {"row": 1, "same_as_row": 0, "text": "hello world!"}
    leak = find_leakage(ids["train"], ids["test"], pd.Series(["OTHER.", "new", ""]))
    assert leak == {"count": 1, "examples": [{"row": 0, "source_row": 4, "text": "OTHER."}]}


def test_text_flags():
    texts = pd.Series(["12345", " -3.5 ", "50%", "1,200", "route 66", "hel\x00lo", "bell\x07", "c1\x85",
                       "tab\tand\r\n", "zero\u200bwidth", "\ufeffbom", "word\u2060joiner", "café ’quotes’",
                       None, 7, ""], dtype=object)
    flags = {name: np.flatnonzero(rows).tolist() for name, rows in text_flags(texts).items()}
    assert flags == {"numeric": [0, 1, 2, 3], "nul": [5], "control": [6, 7], "zero_width": [9, 10, 11]}


def test_nul_is_an_error_and_other_hidden_characters_warnings():
    splits = clean_splits()
    for row, text in enumerate(["12345", "hel\x00lo there", "bell\x07 here", "zero\u200bwidth space"]):
        splits["train"].loc[row, "text"] = text
    s = validate_splits(splits, None, CONTRACT, None)
    assert errors_about(s, "text", "train row 1 = 'hel\\x00lo there'", "without NUL characters", "contract text.nul")
    assert errors_about(s, "text", "train row 0 = '12345'", "not only a number", "text.numeric", warnings=True)
    assert errors_about(s, "text", "train row 2 = 'bell\\x07 here'", "control characters", "text.control",
                        warnings=True)
    assert errors_about(s, "text", "train row 3 = 'zero\\u200bwidth space'", "zero-width", "text.zero_width",
                        warnings=True)
    assert len(s["errors"]) == 1 and len(s["warnings"]) == 3
    strict = Contract.model_validate({"text": {"numeric": "error", "nul": "warning"}})
    s = validate_splits(splits, None, strict, None)
    assert errors_about(s, "text", "train row 0 = '12345'", "text.numeric")
    assert errors_about(s, "text", "train row 1", "text.nul", warnings=True)


def test_import_does_not_load_great_expectations():
    code = "import sys, driftfit.steps.validate, driftfit.modalities.text.checks; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- the thin edge: files in, a whole validation folder out ------------------------------------

def params_for(tmp_path, contract: str | None = None, **validate) -> Params:
    return Params.model_validate({
        "paths": {"prepared": str(tmp_path / "prepared"), "validation": str(tmp_path / "validation"),
                  "rejected": str(tmp_path / "rejected")},
        "data": {"incoming": {"path": str(tmp_path / "incoming.csv")}},
        "validate": {"max_text_chars": 100, "contract": contract, **validate},
    })


def write_prepared(tmp_path, splits: dict[str, pd.DataFrame]) -> None:
    (tmp_path / "prepared").mkdir()
    for name, df in splits.items():
        df.to_parquet(tmp_path / "prepared" / f"{name}.parquet", index=False)


def rejected_reports(tmp_path) -> list:
    return sorted((tmp_path / "rejected").glob("*/summary.json"))


def test_run_writes_a_rejected_report_then_raises(tmp_path):
    """A failed run writes its report under paths.rejected (a folder per batch), never paths.validation."""
    splits = clean_splits()
    splits["reference_train"] = frame({"greet": 4, "bye": 4}, "ref")  # no 'ask' in the reference
    splits["reference_test"] = frame({"greet": 1, "bye": 1}, "reftest")
    write_prepared(tmp_path, splits)
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "summary.json").write_text('{"success": true}')  # the last good batch's report
    with pytest.raises(ValidationFailed) as err:
        runner("validate")(params_for(tmp_path, allowed_labels="reference"))
    message = str(err.value)
    assert message.startswith("data validation failed:") and "\n" not in message
    assert "column 'label': train row" in message and "'ask'" in message and "labels.allowed" in message
    [report] = rejected_reports(tmp_path)
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", report.parent.name)  # time + hash of the split files
    assert message.endswith(f"(details: {report})") and err.value.summary_path == str(report)
    assert (tmp_path / "validation" / "summary.json").read_text() == '{"success": true}'  # as it was
    assert [p.name for p in (tmp_path / "validation").iterdir()] == ["summary.json"]
    summary = json.loads(report.read_text())
    assert summary["success"] is False and summary["allowed_labels"] == ["bye", "greet"]
    assert summary["contract_from"] == "validate.* keys in params.yaml"
    assert set(summary["splits"]) == {"train", "val", "test", "reference_train", "reference_test"}
    assert summary["data_docs"] == str(report.parent / "data_docs" / "index.html")
    assert (report.parent / "data_docs" / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left
    assert [p.name for p in (tmp_path / "rejected").iterdir() if p.name.startswith(".")] == []


def test_the_contract_file_drives_the_suite(tmp_path):
    write_prepared(tmp_path, clean_splits())
    contract = tmp_path / "contract.yaml"
    contract.write_text("text:\n  min_chars: 30\n")  # the clean texts are shorter
    with pytest.raises(ValidationFailed, match=r"between 30 and 5000 characters.*text.min_chars"):
        runner("validate")(params_for(tmp_path, contract=str(contract)))
    assert not (tmp_path / "validation").exists()
    [report] = rejected_reports(tmp_path)
    summary = json.loads(report.read_text())
    assert summary["contract_from"] == str(contract) and summary["contract"]["text"]["min_chars"] == 30


def test_run_passes_on_clean_files(tmp_path):
    write_prepared(tmp_path, clean_splits())
    summary = runner("validate")(params_for(tmp_path, contract=str(ROOT / "data" / "contract.yaml")))
    assert summary["success"]
    assert json.loads((tmp_path / "validation" / "summary.json").read_text())["success"] is True


def test_warnings_are_reported_and_logged(tmp_path, caplog):
    """A warning does not stop the run: it is in summary.json and in the log (driftfit.data.validation)."""
    splits = clean_splits()
    splits["train"].loc[0, "text"] = "12345"
    write_prepared(tmp_path, splits)
    with caplog.at_level(logging.WARNING, logger="driftfit.data.validation"):
        summary = runner("validate")(params_for(tmp_path, contract=str(ROOT / "data" / "contract.yaml")))
    assert summary["success"] and not (tmp_path / "rejected").exists()
    [warning] = errors_about(summary, "text", "train row 0 = '12345'", "contract text.numeric", warnings=True)
    logged = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "driftfit.data.validation"]
    assert [r.getMessage() for r in logged] == [f"data validation warning: {warning}"]
    assert json.loads((tmp_path / "validation" / "summary.json").read_text())["warnings"] == [warning]
