"""Loaders, the default data, the stratified split: real files, real errors."""

import json

import pandas as pd
import pytest

from driftfit.pipeline import runner
from driftfit.config import DefaultDataConfig, SourceConfig, SplitConfig
from driftfit.modalities.text.default_data import make_default_data
from driftfit.modalities.text.loaders import load_table
from driftfit.data.hashing import content_hash
from driftfit.data.splits import prepare_splits, stratified_split
from driftfit.errors import DataError
from tests.conftest import SHARED_DATA


def src(path, **kw):
    return SourceConfig(path=str(path), **kw)


def test_default_data_is_real_chatterbot_text_with_a_label_change():
    reference, incoming = make_default_data(DefaultDataConfig())
    assert len(reference) > 300 and len(incoming) > 300
    assert {"food", "humor"} <= set(incoming["label"]) and not {"food", "humor"} & set(reference["label"])
    assert not set(reference["text"]) & set(incoming["text"])  # a new batch: no shared utterances


@pytest.mark.parametrize("suffix,writer", [
    (".csv", lambda df, p: df.to_csv(p, index=False)),
    (".tsv", lambda df, p: df.to_csv(p, index=False, sep="\t")),
    (".jsonl", lambda df, p: df.to_json(p, orient="records", lines=True)),
    (".parquet", lambda df, p: df.to_parquet(p, index=False)),
])
def test_every_format_loads_to_text_and_string_labels(tmp_path, suffix, writer):
    df = pd.DataFrame({"sentence": ["good film", "bad film", "fine"], "y": [1, 0, 1]})
    path = tmp_path / f"d{suffix}"
    writer(df, path)
    out = load_table(src(path, text="sentence", label="y"))
    assert list(out.columns) == ["text", "label"]
    assert out["label"].tolist() == ["1", "0", "1"]
    assert out["text"].tolist() == ["good film", "bad film", "fine"]


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not present")
def test_headerless_tsv_with_column_indices_and_sampling():
    out = load_table(src(SHARED_DATA / "sentiment_domains" / "amazon.tsv", header=False, text=0, label=1, sample=50))
    assert len(out) == 50 and set(out["label"]) <= {"0", "1"}


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nhello,a\n".encode("utf-8"))
    assert load_table(src(path))["text"].tolist() == ["hello"]


@pytest.mark.parametrize("content,match", [
    (b"", "is empty"),
    (b"text,label\n", "no data rows"),
    (b"words,label\nhi,a\n", r"no text column 'text'.*columns found"),
    (b"text,tag\nhi,a\n", r"no label column 'label'"),
    (b"text\tlabel\nhi\ta\n", "delimiter"),
    (b"text,label\nhi,a\nbye,\n", r"1 row\(s\) without a label.*line/row \[3\].*expected a label in every row"),
    (b"text,label\nhi,a\n\xff\xfe oops,b\n", r"line 3: bytes that are not UTF-8"),
])
def test_bad_csv_files_give_one_clear_error(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        load_table(src(path))
    assert str(path) in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_table(src(tmp_path / "nope.csv"))
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        load_table(src(tmp_path / "dir.csv"))


def test_mixed_label_types_in_jsonl(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 1}\n{"text": "c", "label": "pos"}\n')
    with pytest.raises(DataError, match=r"mixed types \['int', 'str'\] \(e.g. line/row 3: 'pos'\)"):
        load_table(src(path))


def test_lines_point_into_the_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhello,a\nbye,b\n")
    assert load_table(src(path), lines=True)["line"].tolist() == [2, 3]
    assert "line" not in load_table(src(path)).columns


def test_prepare_checks_the_contract_before_writing(make_params, tmp_path):
    from driftfit.data import splits as data
    from driftfit.errors import ValidationFailed

    rows = [f"text number {i} about {lab}" for i in range(8) for lab in ("a", "b")]
    lines = ["text,label"] + [f"{t},{t[-1]}" for t in rows]
    lines[5] = ",b"  # line 6 of the file: an empty text
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    params = make_params({"data.reference": None, "data.incoming.path": str(tmp_path / "in.csv")})
    validation = tmp_path / "reports" / "validation"
    (validation / "data_docs").mkdir(parents=True)  # the last good batch's report: the DVC validate stage's output
    (validation / "summary.json").write_bytes(b'{"success": true}\n')
    (validation / "data_docs" / "index.html").write_bytes(b"<html>good batch</html>")
    before = {p: p.read_bytes() for p in validation.rglob("*") if p.is_file()}
    with pytest.raises(ValidationFailed, match=rf"row \d+ \(file '{tmp_path / 'in.csv'}' line 6\) = ''") as err:
        runner("prepare")(params)
    assert not (tmp_path / "data" / "prepared").exists()
    assert {p: p.read_bytes() for p in validation.rglob("*") if p.is_file()} == before  # byte-identical
    [report] = (tmp_path / "reports" / "rejected").glob("*/summary.json")  # the report is there instead
    assert str(err.value).endswith(f"(details: {report})") and err.value.summary_path == str(report)
    assert json.loads(report.read_text())["success"] is False
    assert (report.parent / "data_docs" / "index.html").is_file()


def test_prepare_writes_splits_without_the_line_column(make_params, tmp_path):
    from driftfit.data import splits as data

    rows = [f"text number {i} about {lab}" for i in range(8) for lab in ("a", "b")]
    (tmp_path / "in.csv").write_text("text,label\n" + "\n".join(f"{t},{t[-1]}" for t in rows) + "\n")
    params = make_params({"data.reference": None, "data.incoming.path": str(tmp_path / "in.csv")})
    manifest = runner("prepare")(params)
    assert sum(s["rows"] for s in manifest["splits"].values()) == 16
    assert list(pd.read_parquet(tmp_path / "data" / "prepared" / "train.parquet").columns) == ["text", "label"]


def test_stratified_split_keeps_every_label_everywhere_and_is_seeded():
    df = pd.DataFrame({"text": [f"t{i}" for i in range(60)], "label": ["a"] * 30 + ["b"] * 20 + ["c"] * 10})
    parts = stratified_split(df, {"val": 0.2, "test": 0.2}, seed=1)
    assert sum(len(p) for p in parts.values()) == 60
    assert all(set(p["label"]) == {"a", "b", "c"} for p in parts.values())
    assert not set(parts["train"]["text"]) & set(parts["test"]["text"])
    again = stratified_split(df, {"val": 0.2, "test": 0.2}, seed=1)
    assert content_hash(parts["test"]) == content_hash(again["test"])
    other = stratified_split(df, {"val": 0.2, "test": 0.2}, seed=2)
    assert content_hash(parts["test"]) != content_hash(other["test"])


def test_explicit_test_file_is_used_as_is():
    inc = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": ["a", "b"] * 10})
    test = pd.DataFrame({"text": ["x", "y"], "label": ["a", "z"]})
    splits = prepare_splits(None, inc, test, SplitConfig())
    assert splits["test"].equals(test) and "reference_test" not in splits


def test_a_reference_that_is_the_incoming_file_is_leakage(make_params, tmp_path):
    """reference_train is replayed in training: the same file as reference and incoming puts test rows in it."""
    from driftfit.data import splits as data
    from driftfit.errors import ValidationFailed

    rows = [f"text number {i} about {lab}" for i in range(10) for lab in ("a", "b")]
    (tmp_path / "in.csv").write_text("text,label\n" + "\n".join(f"{t},{t[-1]}" for t in rows) + "\n")
    same = {"path": str(tmp_path / "in.csv"), "text": "text", "label": "label"}
    params = make_params({"data.reference": same, "data.incoming.path": same["path"]})
    with pytest.raises(ValidationFailed, match=r"test: column 'text' shares \d+ text\(s\) with reference_train.*"
                                               r"expected no text in both reference_train and test"):
        runner("prepare")(params)
    assert not (tmp_path / "data" / "prepared").exists()


# ---- what the loader no longer accepts silently (issue 10) ----------------------------------------

@pytest.mark.parametrize("name,content,match", [
    ("d.jsonl", '{"text": "a", "label": "x"}\n\n{"text": 3.5, "label": "y"}\n',  # a blank line still counts
     r"line 3, column 'text': 3.5 is a float"),
    ("d.jsonl", '{"text": "a", "label": "x"}\n["a", "x"]\n', r"line 2: an array, not an object"),
    ("d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": }\n', r"line 2: not valid JSON \(Expecting value"),
    ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 2.5}\n', r"line 2, column 'label': 2.5 is a float"),
    ("d.jsonl", '{"text": "a", "label": "x", "label": "y"}\n', r"line 1: key 'label' appears more than once"),
    ("d.csv", "text,label\na,x\nb,null\nc,<NA>\nd,nan\n",
     r"3 row\(s\) without a label \(first at line/row \[3, 4, 5\]"),
    ("d.csv", "text,label\na,pos\nb,neg\nc, pos\n", r"labels ' pos', 'pos' differ only in case/whitespace"),
    ("d.tsv", "text\tlabel\tlabel\na\tx\ty\n", r"line 1: column 'label' appears 2 times in the header"),
    ("d.csv", 'text,label\na,x\n"b,x\nc,y\n', r"not a CSV table \(the quote opened on line 3 is never closed"),
    ("d.csv", "text,label\na,x\nb,x,extra\n", r"not a CSV table \(line 3 has 3 fields, expected 2"),
])
def test_bad_values_name_the_line(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        load_table(src(path))
    assert str(path) in str(err.value)


def test_integer_and_boolean_labels_stay_allowed(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 10}\n')
    assert load_table(src(path))["label"].tolist() == ["1", "10"]
    path.write_text('{"text": "a", "label": true}\n{"text": "b", "label": false}\n')
    assert load_table(src(path))["label"].tolist() == ["True", "False"]


def test_parquet_integer_labels_with_a_gap_are_missing_not_floats(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": pa.array([1, None, 2])}), path)
    with pytest.raises(DataError, match=r"1 row\(s\) without a label \(first at line/row \[1\]"):
        load_table(src(path))
    pq.write_table(pa.table({"text": ["a", "b"], "label": [1.0, 2.0]}), path)
    with pytest.raises(DataError, match=r"row 0, column 'label': 1.0 is a float"):
        load_table(src(path))


def test_lines_after_a_quoted_line_break_are_right(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"two\nlines",a\nnext,a\n"x, y",b\nlast,b\n')
    out = load_table(src(path), lines=True)
    assert out["line"].tolist() == [2, 4, 5, 6] and out["text"][0] == "two\nlines"  # a real line break is fine


@pytest.mark.parametrize("content", [
    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
    "root:x:0:0:root,,,:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",  # ragged: 4 fields, then 1
])
def test_a_file_that_is_no_table_is_never_quoted(tmp_path, content):
    path = tmp_path / "batch.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=r"not a CSV table with a text column 'text'") as err:
        load_table(src(path))
    assert "root" not in str(err.value).replace(str(path), "") and "bin" not in str(err.value)


def test_non_utf8_bytes_are_not_quoted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\nhi,a\ncaf\xe9 au lait,b\n")
    with pytest.raises(DataError, match=r"line 3: bytes that are not UTF-8 \(byte 4 of the line\)") as err:
        load_table(src(path))
    assert "\\x" not in str(err.value)
