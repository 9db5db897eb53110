"""Loaders: a CSV/TSV/JSON Lines/Parquet file, or a Hugging Face dataset, as a text/label frame.

Every dataset leaves here as a DataFrame with two string columns, `text` and `label`.
Messages name the file, the line (Parquet and hub data: the 0-based row) and the column, and say what
was expected. A file that does not parse as a table of its format is never quoted in a message: its
content could be anything (a password file, a binary), so only its shape is described.
"""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from driftfit.config import SourceConfig
from driftfit.errors import DataError
from driftfit.data.labels import invisible, label_key
from driftfit.modalities.text.texts import is_string_dtype, plain

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
MISSING_LABELS = {"", "nan", "none", "null", "na", "n/a", "<na>"}  # label spellings of "no label" (casefolded)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)")  # '1', '1.0', '.5': spellings of one number compare as one


def _line_of(raw: bytes, offset: int) -> int:
    return raw[:offset].count(b"\n") + 1


def _header_fields(text: str, sep: str, fmt: str) -> list[str]:
    """The first line's fields, as the CSV/TSV reader splits them."""
    end = text.find("\n")  # not split(): that would copy the rest of a big file
    first = (text if end < 0 else text[:end]).rstrip("\r")
    return next(csv.reader([first], delimiter=sep, quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL),
                [])


def _csv_lines(df: pd.DataFrame, first_line: int) -> np.ndarray:
    """Each row's first line in the file: a quoted field with line breaks moves the rows after it down."""
    breaks = np.zeros(len(df), np.int64)
    for col in df.columns:
        breaks += df[col].str.count("\n").to_numpy(dtype=np.int64, na_value=0)
    return np.arange(len(df)) + first_line + np.concatenate([[0], np.cumsum(breaks)[:-1]])[:len(df)]


def _parser_problem(message: str) -> str:
    """pandas' tokenizer message in words, with its line; pandas never quotes the data in these."""
    if m := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message):
        return (f"line {m[2]} has {m[3]} fields, expected {m[1]} like the lines before it; "
                "quote a text that holds the delimiter")
    if m := re.search(r"EOF inside string starting at row (\d+)", message):
        return f"the quote opened on line {int(m[1]) + 1} is never closed; expected balanced quotes"
    return message.split("C error: ")[-1][:200]


def _missing_column(path: Path, text: str, fmt: str, role: str, col: str | int, src: SourceConfig,
                    columns: list) -> DataError:
    """No `col` in a CSV/TSV. Its header is shown only when the file parsed as a table: every line as many
    fields as the header, and two or more of them (or one named like a wanted column) - see above."""
    found = [str(c) for c in columns]
    wanted = {str(src.text), str(src.label)}
    sep = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    even = {len(r) for r in csv.reader(io.StringIO(text), delimiter=sep, quoting=quoting) if r} == {len(found)}
    if not src.header or (even and (len(found) > 1 or wanted & set(found))):
        return DataError(f"data file '{path}': no {role} column {col!r}; columns found: {found}")
    # One column, named neither text nor label: a file with another delimiter, or no table at all.
    if even and any(wanted & {f.strip() for f in found[0].split(other)} for other in ("\t", ",", ";", "|")):
        return DataError(f"data file '{path}': no {role} column {col!r}; columns found: {found} (one column "
                         "only: is the delimiter right for the file's extension?)")
    delimiter = "tab" if fmt == "tsv" else "','"
    shape = "lines with different numbers of fields" if not even else f"one column, no {delimiter} between fields"
    return DataError(f"data file '{path}': not a {fmt.upper()} table with a {role} column {col!r} ({shape}); "
                     f"expected a header naming the columns {src.text!r} and {src.label!r}, one {delimiter}-"
                     "separated row per line")


def _check_merged_rows(texts: pd.Series, labels: set[str], lines: np.ndarray, where: Path, col: str | int) -> None:
    """An unbalanced quote in a CSV reads the rows up to the next quote as one text: catch the telltale, lines
    inside a text that end in ',<a label of the file>' like rows of their own."""
    multi = np.flatnonzero(texts.str.contains("\n", regex=False).to_numpy(dtype=bool, na_value=False))
    for pos in multi:
        parts = re.split(r"\r?\n", texts.iloc[pos])
        rows = [p for p in parts[:-1] if "," in p and p.rsplit(",", 1)[1].strip() in labels]
        if rows:
            ends = sorted({"," + p.rsplit(",", 1)[1].strip() for p in rows})
            line = int(lines[pos])
            raise DataError(f"data file '{where}', line {line}: column {col!r} runs over lines {line}-"
                            f"{line + len(parts) - 1}, {len(rows)} of them ending in {', '.join(map(repr, ends))} "
                            "like rows of their own: an unbalanced quote (\") merged rows; expected one row per "
                            "line (close the quote, or double it as \"\" inside a quoted text)")


def _read_csv(path: Path, text: str, src: SourceConfig, fmt: str) -> tuple[pd.DataFrame, np.ndarray]:
    sep = "\t" if fmt == "tsv" else ","
    if src.header:
        fields = _header_fields(text, sep, fmt)
        repeated = next((f for f in fields if f.strip() and fields.count(f) > 1), None)
        if repeated is not None:
            raise DataError(f"data file '{path}', line 1: column {repeated!r} appears {fields.count(repeated)} times "
                            "in the header; expected each column once")
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, header=0 if src.header else None, dtype=str,
                         keep_default_na=False, quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty; expected a header and data rows") from None
    except pd.errors.ParserError as err:
        raise DataError(f"data file '{path}': not a {fmt.upper()} table ({_parser_problem(str(err))})") from None
    for role, col in (("text", src.text), ("label", src.label)):
        if len(df) and col not in df.columns:
            raise _missing_column(path, text, fmt, role, col, src, list(df.columns))
    lines = np.arange(len(df)) + 1 + src.header
    if len(df) and text.count("\n") + (not text.endswith("\n")) > len(df) + src.header:  # lines that are no row:
        lines = _csv_lines(df, 1 + src.header)                                           # blank, or inside quotes
        if fmt == "csv":
            _check_merged_rows(df[src.text], set(df[src.label].str.strip()), lines, path, src.text)
    return df, lines


class _RepeatedKey(ValueError):
    """A JSON object names a key twice: json.loads would silently keep the last value."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    repeated = next((k for k in keys if keys.count(k) > 1), None)
    if repeated is not None:
        raise _RepeatedKey(repeated)
    return dict(pairs)


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false",
               type(None): "null"}


def _read_jsonl(path: Path, text: str) -> tuple[pd.DataFrame, np.ndarray]:
    """One JSON object per line, parsed line by line: errors name the line, and 1 stays an int, 1.0 a float."""
    rows, lines = [], []
    for number, line in enumerate(text.split("\n"), 1):  # only \n ends a line (str.splitlines knows more)
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except _RepeatedKey as err:
            raise DataError(f"data file '{path}', line {number}: key {err.args[0]!r} appears more than once in "
                            "the object; expected each column once") from None
        except json.JSONDecodeError as err:
            raise DataError(f"data file '{path}', line {number}: not valid JSON ({err.msg} at character "
                            f"{err.colno}); expected one JSON object per line") from None
        if not isinstance(row, dict):
            raise DataError(f"data file '{path}', line {number}: {_JSON_KINDS.get(type(row), 'a value')}, not an "
                            "object; expected one JSON object per line, e.g. {\"text\": ..., \"label\": ...}")
        rows.append(row)
        lines.append(number)
    columns = dict.fromkeys(k for row in rows for k in row)
    df = pd.DataFrame({c: pd.Series([row.get(c) for row in rows], dtype=object) for c in columns},
                      index=pd.RangeIndex(len(rows)))
    return df, np.asarray(lines, dtype=np.int64)


def _read_parquet(path: Path, raw: bytes) -> tuple[pd.DataFrame, np.ndarray]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(io.BytesIO(raw))
        names = file.schema_arrow.names
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated is not None:
            raise DataError(f"data file '{path}': column {repeated!r} appears {names.count(repeated)} times; "
                            "expected each column once")
        # integer_object_nulls: an integer column with a gap stays integers (and None), not floats
        df = file.read().to_pandas(integer_object_nulls=True).reset_index(drop=True)
    except DataError:
        raise
    except Exception as err:  # pyarrow raises several types; its messages describe the file, not its data
        raise DataError(f"data file '{path}': not a readable Parquet file ({str(err)[:200]})") from None
    return df, np.arange(len(df))


def _read_file(path: Path, src: SourceConfig) -> tuple[pd.DataFrame, np.ndarray]:
    """The file as a frame, and each row's line in it (Parquet: its 0-based row)."""
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist")
    if path.is_dir():
        raise DataError(f"data file '{path}' is a directory; expected a file ({', '.join(FORMATS)})")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"data file '{path}': unknown extension '{path.suffix}'; expected one of {', '.join(FORMATS)}")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"data file '{path}' is empty; expected a header and data rows")
    if fmt == "parquet":
        return _read_parquet(path, raw)
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is allowed and dropped
    except UnicodeDecodeError as err:
        line = _line_of(raw, err.start)
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(f"data file '{path}', line {line}: bytes that are not UTF-8 (byte {column} of the line); "
                        "expected UTF-8 text (re-save the file as UTF-8)") from None
    if fmt == "jsonl":
        return _read_jsonl(path, text)
    return _read_csv(path, text, src, fmt)


def _read_hub(dataset_id: str, src: SourceConfig) -> pd.DataFrame:
    import datasets

    try:
        return datasets.load_dataset(dataset_id, split=src.split).to_pandas()
    except Exception as err:  # offline, unknown id, unknown split
        raise DataError(f"dataset 'hf:{dataset_id}' (split {src.split}) could not be loaded: {err}") from None


def _kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (int, np.integer)):
        return "an integer"
    if isinstance(value, (float, np.floating)):
        return "a float"
    return {list: "a list", dict: "an object"}.get(type(value), f"a {type(value).__name__}")


def _first_bad(values: pd.Series, ok: Callable[[Any], bool]) -> int | None:
    """Position of the first present (non-null) value that is not `ok`, or None."""
    present = values.notna().to_numpy()
    if values.dtype != object:  # one type for the whole column: its first present value says it
        first = np.flatnonzero(present)[:1]
        return int(first[0]) if len(first) and not ok(values.iloc[first[0]]) else None
    return next((i for i, (v, p) in enumerate(zip(values.to_numpy(), present)) if p and not ok(v)), None)


def _type_error(where: str, at: str, col: str | int, value: Any, expected: str) -> DataError:
    if isinstance(value, (bytes, bytearray)):  # Parquet binary: str() would make it the text "b'...'"
        return DataError(f"data file '{where}', {at}, column {col!r}: bytes, not a string; expected {expected}; "
                         "decode the bytes to UTF-8 first")
    value = value.item() if hasattr(value, "item") else value  # numpy scalars: 1.0, not np.float64(1.0)
    shown = repr(value) if isinstance(value, (int, float)) else repr(plain(value))
    return DataError(f"data file '{where}', {at}, column {col!r}: {shown} is {_kind(value)}; expected {expected}")


def _checked_texts(texts: pd.Series, where: str, col: str | int, at: Callable[[int], str]) -> pd.Series:
    """Texts must be strings (or missing): a number, bytes or a list is not silently turned into one."""
    if is_string_dtype(texts):
        return texts
    bad = _first_bad(texts, lambda v: isinstance(v, str))
    if bad is not None:
        raise _type_error(where, at(bad), col, texts.iloc[bad], "strings")
    return texts.astype("str")  # missing stays missing (NaN): the contract's text.min_chars reports it


def _label_strings(labels: pd.Series, where: str, col: str | int, line_of: np.ndarray,
                   at: Callable[[int], str]) -> pd.Series:
    """Labels as strings: strings stay, integers are written as '1'. A float (1.5, and 1.0 too: it would
    become '1.0' beside '1'), bytes or a mix of types is an error."""
    if is_string_dtype(labels):
        return labels
    bad = _first_bad(labels, lambda v: isinstance(v, (str, int, np.integer, np.bool_)))
    if bad is not None:
        raise _type_error(where, at(bad), col, labels.iloc[bad], "strings or integers (write 1, not 1.0)")
    present = labels.notna().to_numpy()
    kinds = pd.Series([type(v).__name__ for v in labels.to_numpy()[present]], dtype="str")
    if kinds.nunique() > 1:
        minority = kinds.value_counts().index[-1]
        pos = int(np.flatnonzero(present)[int(np.argmax((kinds == minority).to_numpy()))])
        raise DataError(f"data file '{where}', column {col!r}: labels of mixed types {sorted(set(kinds))} "
                        f"(e.g. line/row {int(line_of[pos])}: {labels.iloc[pos]!r}); "
                        "expected one type (all strings or all integers)")
    return labels.map(str, na_action="ignore").astype("str")


def _spelling(label: str) -> str:
    """What a label means: 'Pos ', 'pos' and 'pos' in another Unicode normal form are one label, as are '1'
    and '1.0'."""
    key = label_key(label)
    return str(Decimal(key).normalize()) if _NUMBER.fullmatch(key) else key


def _check_spellings(labels: pd.Series, where: str, col: str | int, at: Callable[[int], str]) -> None:
    spellings: dict[str, list[str]] = {}
    for label in sorted(labels.dropna().unique()):
        hidden = invisible(label)
        if hidden is not None:
            raise DataError(f"data file '{where}', {at(int(np.argmax((labels == label).to_numpy())))}, column "
                            f"{col!r}: label {label!r} holds an invisible character {hidden}; expected visible "
                            "characters only (it would look like another label)")
        spellings.setdefault(_spelling(label), []).append(label)
    clash = next((group for group in spellings.values() if len(group) > 1), None)
    if clash is None:
        return
    if len({s.strip().casefold() for s in clash}) == 1:
        how = "case/whitespace"
    elif len({label_key(s) for s in clash}) == 1:
        how = "Unicode normalisation (the same letters, encoded differently)"
    else:
        how = "number format"
    first = ", ".join(f"{s!r} at {at(int(np.argmax((labels == s).to_numpy())))}" for s in clash)
    raise DataError(f"data file '{where}', column {col!r}: labels {', '.join(map(repr, clash))} differ only in "
                    f"{how} ({first}): expected one spelling per label")


def load_table(src: SourceConfig, path: str | None = None, seed: int = 0, lines: bool = False) -> pd.DataFrame:
    """Load one source into a text/label frame (both str), with clear errors.

    With `lines`, a third column `line` holds each row's line in the file (its row number for
    Parquet and hub data), so later messages can point into the file.
    """
    where = path or src.path
    if where.startswith("hf:"):
        df, fmt = _read_hub(where[3:], src), "hub"
        line_of = np.arange(len(df))
    else:
        (df, line_of), fmt = _read_file(Path(where), src), FORMATS.get(Path(where).suffix.lower())
    at = (lambda pos: f"row {int(line_of[pos])}") if fmt in ("parquet", "hub") else \
        (lambda pos: f"line {int(line_of[pos])}")
    if len(df) == 0:
        raise DataError(f"data file '{where}' has a header but no data rows")
    for role, col in (("text", src.text), ("label", src.label)):
        if col not in df.columns:  # JSON Lines, Parquet or hub data: a table, so its column names can be shown
            found = [str(c) for c in df.columns]
            raise DataError(f"data file '{where}': no {role} column {col!r}; columns found: {found}")
    df = df.reset_index(drop=True)
    texts = _checked_texts(df[src.text], where, src.text, at)
    labels = _label_strings(df[src.label], where, src.label, line_of, at)
    stripped = labels.str.strip()
    missing = labels.isna().to_numpy() | stripped.str.casefold().isin(MISSING_LABELS).to_numpy()
    if missing.any():
        rows = [int(line_of[i]) for i in np.flatnonzero(missing)[:5]]
        raise DataError(f"data file '{where}', column {src.label!r}: {int(missing.sum())} row(s) without a label "
                        f"(first at line/row {rows}; empty, or NaN/None/null/NA); expected a label in every row")
    _check_spellings(labels, where, src.label, at)
    out = pd.DataFrame({"text": texts, "label": stripped})
    if lines:
        out["line"] = line_of
    if src.sample is not None and src.sample < len(out):
        out = out.sample(n=src.sample, random_state=seed).sort_index()
    return out.reset_index(drop=True)


def load(params, source: SourceConfig, path: str | None = None) -> pd.DataFrame:
    """The modality's load: a source as text/label rows, with each row's `line` in the file (for messages)."""
    return load_table(source, path=path, seed=params.split.seed, lines=True)
