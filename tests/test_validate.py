"""The data-quality gate: real Great Expectations runs on small DataFrames (no mocks).

A GX context costs time, so each scenario is validated once (module fixtures) and asserted on many times.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from driftfit.config import Params, ValidateConfig
from driftfit.errors import ValidationFailed
from driftfit.validate import allowed_labels, find_duplicates, find_leakage, normalise, run, validate_splits

CFG = ValidateConfig(min_text_chars=1, max_text_chars=100, min_rows_per_class=3, allowed_labels="any")


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
    train.loc[5, "text"] = "Train  EXAMPLE 0 about greet"  # a repeat of row 0 after normalisation
    test = splits["test"].copy()
    test.loc[0, "label"] = "unknown"
    test.loc[1, "text"] = " TRAIN example 0 about BYE"  # leaked from train row 6
    return {"train": train, "val": splits["val"], "test": test}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    docs = tmp_path_factory.mktemp("validate") / "data_docs"
    return validate_splits(clean_splits(), None, CFG, docs)


@pytest.fixture(scope="module")
def dirty():
    return validate_splits(dirty_splits(), None, CFG, None)


def errors_about(summary: dict, split: str, column: str, *fragments: str) -> list[str]:
    prefix = f"{split}: column '{column}'"
    return [e for e in summary["errors"] if e.startswith(prefix) and all(f in e for f in fragments)]


# ---- a clean set ----------------------------------------------------------------------------

def test_clean_splits_pass(clean):
    assert clean["success"], clean["errors"]
    assert clean["errors"] == [] and clean["warnings"] == []
    assert set(clean["splits"]) == {"train", "val", "test"}
    assert clean["allowed_labels"] == ["ask", "bye", "greet"]
    train_checks = {(c["table"], c["expectation"], c["column"]) for c in clean["splits"]["train"]["checks"]}
    assert ("train", "expect_column_to_exist", "text") in train_checks
    assert ("train", "expect_column_values_to_match_regex", "text") in train_checks
    assert ("train_label_counts", "expect_column_values_to_be_between", "count") in train_checks
    assert ("test", "expect_column_values_to_be_in_set", "label") in {
        (c["table"], c["expectation"], c["column"]) for c in clean["splits"]["test"]["checks"]}
    json.dumps(clean)  # JSON-able as it stands


def test_data_docs_site_is_built(clean):
    index = clean["data_docs"]
    assert index is not None and index.endswith("index.html")
    html = open(index, encoding="utf-8").read()
    assert "driftfit_train" in html and "driftfit_test" in html


# ---- each kind of bad data fails, naming split, column and rows ---------------------------------

def test_dirty_splits_fail(dirty):
    assert not dirty["success"]
    assert not dirty["splits"]["train"]["success"] and not dirty["splits"]["test"]["success"]
    assert dirty["splits"]["val"]["success"]


def test_null_text(dirty):
    assert errors_about(dirty, "train", "text", "row 1 = null", "a text in every row")


def test_empty_and_whitespace_only_text(dirty):
    [msg] = errors_about(dirty, "train", "text", "whitespace is stripped")
    assert "row 2 = ''" in msg and "row 3 = '  \\t '" in msg


def test_too_long_text(dirty):
    assert errors_about(dirty, "train", "text", "row 4 = 'xxx", "at most 100 characters")


def test_unknown_label_in_test(dirty):
    assert errors_about(dirty, "test", "label", "row 0 = 'unknown'", "labels seen in train")


def test_class_below_minimum(dirty):
    assert errors_about(dirty, "train", "label", "label 'rare' has 2 rows", "at least 3 training rows per label")


def test_train_test_leakage_is_an_error(dirty):
    assert errors_about(dirty, "test", "text", "test row 1 = train row 6", "shares 1 text(s) with train")
    assert dirty["leakage"]["test"]["count"] == 1 and dirty["leakage"]["val"]["count"] == 0


def test_duplicates_within_train_are_a_warning(dirty):
    assert dirty["duplicates"]["train"]["count"] == 1
    assert any(w.startswith("train: column 'text'") and "row 5 = row 0" in w for w in dirty["warnings"])
    assert not any("repeated" in e for e in dirty["errors"])


# ---- pure helpers (no GX) -------------------------------------------------------------------------

def test_allowed_labels_modes():
    splits = clean_splits()
    assert allowed_labels(splits, ["x"], CFG)[0] == ["ask", "bye", "greet"]
    ref = CFG.model_copy(update={"allowed_labels": "reference"})
    assert allowed_labels(splits, ["bye", "x"], ref)[:2] == (["bye", "x"], "labels seen in the reference data")
    labels, _, warnings = allowed_labels(splits, None, ref)
    assert labels == ["ask", "bye", "greet"] and "no reference data" in warnings[0]
    listed = CFG.model_copy(update={"allowed_labels": ["b", "a"]})
    assert allowed_labels(splits, None, listed)[0] == ["a", "b"]


def test_normalise_duplicates_and_leakage():
    norm = normalise(pd.Series(["Hello  World", "hello world ", None, "", "other"]))
    assert list(norm) == ["hello world", "hello world", "", "", "other"]
    assert find_duplicates(norm)["count"] == 1  # empty texts are not counted as duplicates
    leak = find_leakage(norm, normalise(pd.Series(["OTHER", "new", ""])))
    assert leak == {"count": 1, "examples": [{"row": 0, "train_row": 4, "text": "other"}]}


def test_import_does_not_load_great_expectations():
    code = "import sys, driftfit.validate; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- the thin edge: files in, a whole validation folder out ------------------------------------

def params_for(tmp_path, allowed="reference") -> Params:
    return Params.model_validate({
        "paths": {"prepared": str(tmp_path / "prepared"), "validation": str(tmp_path / "validation")},
        "data": {"incoming": {"path": str(tmp_path / "incoming.csv")}},
        "validate": {"max_text_chars": 100, "allowed_labels": allowed},
    })


def write_prepared(tmp_path, splits: dict[str, pd.DataFrame]) -> None:
    (tmp_path / "prepared").mkdir()
    for name, df in splits.items():
        df.to_parquet(tmp_path / "prepared" / f"{name}.parquet", index=False)


def test_run_writes_summary_and_docs_then_raises(tmp_path):
    splits = clean_splits()
    splits["reference_train"] = frame({"greet": 4, "bye": 4}, "ref")  # no 'ask' in the reference
    splits["reference_test"] = frame({"greet": 1, "bye": 1}, "reftest")
    write_prepared(tmp_path, splits)
    with pytest.raises(ValidationFailed) as err:
        run(params_for(tmp_path, allowed="reference"))
    message = str(err.value)
    assert message.startswith("data validation failed:")
    assert "train: column 'label'" in message and "'ask'" in message
    assert str(tmp_path / "validation" / "summary.json") in message
    summary = json.loads((tmp_path / "validation" / "summary.json").read_text())
    assert summary["success"] is False and summary["allowed_labels"] == ["bye", "greet"]
    assert set(summary["splits"]) == {"train", "val", "test", "reference_train", "reference_test"}
    assert summary["data_docs"] == str(tmp_path / "validation" / "data_docs" / "index.html")
    assert (tmp_path / "validation" / "data_docs" / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left


def test_run_passes_on_clean_files(tmp_path):
    write_prepared(tmp_path, clean_splits())
    summary = run(params_for(tmp_path, allowed="any"))
    assert summary["success"]
    assert json.loads((tmp_path / "validation" / "summary.json").read_text())["success"] is True
