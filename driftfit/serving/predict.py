"""Score a file with a registry version: every input row comes out with the predicted label, its probability
(every label's on request) and the version that scored it, written whole or not at all.

Text inputs: CSV, TSV, JSON Lines or Parquet (by extension, as `prepare` reads them), with a text column
(`predict.text_column`). Image inputs: a folder (every image file under it, any depth) or a manifest in one
of those formats with a column of image paths (`predict.image_column`, relative to the manifest's folder).
The output's format follows its extension (default: beside the input, `<name>.predictions.<ext>`).

Memory stays flat: the input is read, scored and written `predict.chunk_rows` rows at a time. The output is
written to a temp file beside it and renamed into place at the end, so a bad row in the millionth line, a
crash or Ctrl-C leaves no half-written output (and an earlier output untouched). Errors are one line naming
the file, the line (Parquet: the 0-based row) and the column, and what was expected; the file's content is
not echoed.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from driftfit.errors import DataError, DriftfitError

log = logging.getLogger(__name__)
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
LABEL, PROBABILITY, VERSION = "predicted_label", "predicted_probability", "model_version"


def added_columns(labels: list[str], all_probabilities: bool) -> list[str]:
    """The columns scoring adds to every row, in order."""
    return [LABEL, PROBABILITY] + ([f"p_{label}" for label in labels] if all_probabilities else []) + [VERSION]


# ---- reading, in chunks ------------------------------------------------------------------------

@dataclass
class Chunk:
    rows: Any                 # the input rows as read: a DataFrame (CSV/TSV), pyarrow Table (Parquet), dicts (JSONL)
    items: list               # what is scored: texts, or absolute image paths
    where: list[str]          # each row's place for messages: "line 12" or "row 11"


class _Utf8Stream(io.TextIOBase):
    """A file decoded as UTF-8 (a byte-order mark dropped) while it is read, counting lines, so bytes that are
    not UTF-8 are reported with their line; `consumed` is the bytes read so far (the progress bar's)."""

    def __init__(self, path: Path):
        self.path, self.file = path, open(path, "rb")
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.lines, self.consumed = 0, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        block = self.file.read(size if size and size > 0 else 1 << 20)
        try:
            text = self.decoder.decode(block, final=not block)
        except UnicodeDecodeError as err:
            line = self.lines + block[:err.start].count(b"\n") + 1
            raise DataError(f"data file '{self.path}', line {line}: bytes that are not UTF-8; expected UTF-8 text "
                            "(re-save the file as UTF-8)") from None
        self.lines += block.count(b"\n")
        self.consumed += len(block)
        return text

    def close(self) -> None:
        self.file.close()
        super().close()


def _check_source(path: Path) -> str:
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist")
    if path.is_dir():
        raise DataError(f"data file '{path}' is a directory; expected a file ({', '.join(FORMATS)})")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"data file '{path}': unknown extension '{path.suffix}'; expected one of {', '.join(FORMATS)}")
    if path.stat().st_size == 0:
        raise DataError(f"data file '{path}' is empty; expected a header and data rows")
    return fmt


def _header(path: Path, fmt: str, column: str) -> list[str]:
    """The first line's fields; a repeated or missing column is an error. A header of one field is not shown
    (the file may not be a table at all, and its content is not echoed)."""
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    try:
        text = first.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError(f"data file '{path}', line 1: bytes that are not UTF-8; expected UTF-8 text (re-save the "
                        "file as UTF-8)") from None
    sep = "\t" if fmt == "tsv" else ","
    fields = next(csv.reader([text], delimiter=sep, quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL),
                  [])
    repeated = next((f for f in fields if f.strip() and fields.count(f) > 1), None)
    if repeated is not None:
        raise DataError(f"data file '{path}', line 1: column {repeated!r} appears {fields.count(repeated)} times in "
                        "the header; expected each column once")
    if column not in fields:
        if len(fields) > 1:
            raise DataError(f"data file '{path}': no column {column!r}; columns found: {fields}")
        delimiter = "tab" if fmt == "tsv" else "','"
        raise DataError(f"data file '{path}': no column {column!r} (the first line has one field, no {delimiter} "
                        f"between fields); expected a header naming the column {column!r}")
    return fields


def _parser_problem(message: str) -> str:
    if m := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message):
        return (f"line {m[2]} has {m[3]} fields, expected {m[1]} like the lines before it; "
                "quote a text that holds the delimiter")
    if m := re.search(r"EOF inside string starting at row (\d+)", message):
        return f"the quote opened on line {int(m[1]) + 1} is never closed; expected balanced quotes"
    return message.split("C error: ")[-1][:200]


def _csv_chunks(path: Path, fmt: str, column: str, chunk_rows: int, stream: _Utf8Stream) -> Iterator[Chunk]:
    _header(path, fmt, column)
    reader = pd.read_csv(stream, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                         quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL, chunksize=chunk_rows,
                         skip_blank_lines=False)
    line = 2  # the first data line
    try:
        for frame in reader:
            filled = frame.replace("", np.nan).notna()
            breaks = np.zeros(len(frame), np.int64)
            for col in frame.columns:
                breaks += frame[col].str.count("\n").to_numpy(dtype=np.int64, na_value=0)
            lines = line + np.concatenate([[0], np.cumsum(breaks + 1)[:-1]])
            line = int(lines[-1] + breaks[-1] + 1) if len(frame) else line
            keep = filled.any(axis=1).to_numpy()  # a blank line is no row
            frame, lines = frame[keep].reset_index(drop=True), lines[keep]
            texts = frame[column].fillna("").tolist()
            yield Chunk(frame, texts, [f"line {n}" for n in lines])
    except pd.errors.ParserError as err:
        raise DataError(f"data file '{path}': not a {fmt.upper()} table ({_parser_problem(str(err))})") from None


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    repeated = next((k for k in keys if keys.count(k) > 1), None)
    if repeated is not None:
        raise KeyError(repeated)
    return dict(pairs)


def _jsonl_chunks(path: Path, column: str, chunk_rows: int, stream: _Utf8Stream) -> Iterator[Chunk]:
    rows, where = [], []
    for number, line in enumerate(stream_lines(stream), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_no_repeats)
        except KeyError as err:
            raise DataError(f"data file '{path}', line {number}: key {err.args[0]!r} appears more than once in the "
                            "object; expected each key once") from None
        except json.JSONDecodeError as err:
            raise DataError(f"data file '{path}', line {number}: not valid JSON ({err.msg} at character "
                            f"{err.colno}); expected one JSON object per line") from None
        if not isinstance(row, dict):
            raise DataError(f"data file '{path}', line {number}: not a JSON object; expected one object per line, "
                            "e.g. {\"text\": ...}")
        if column not in row:
            raise DataError(f"data file '{path}', line {number}: no key {column!r}; expected it in every object")
        rows.append(row)
        where.append(f"line {number}")
        if len(rows) == chunk_rows:
            yield Chunk(rows, [r[column] for r in rows], where)
            rows, where = [], []
    if rows:
        yield Chunk(rows, [r[column] for r in rows], where)


def stream_lines(stream: _Utf8Stream) -> Iterator[str]:
    """Lines split on \\n only (str.splitlines would also split on other separators inside a text)."""
    rest = ""
    while block := stream.read(1 << 20):
        parts = (rest + block).split("\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _parquet_chunks(path: Path, column: str, chunk_rows: int) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types; its messages describe the file, not its data
        raise DataError(f"data file '{path}': not a readable Parquet file ({str(err)[:200]})") from None
    names = file.schema_arrow.names
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise DataError(f"data file '{path}': column {repeated!r} appears {names.count(repeated)} times; expected "
                        "each column once")
    if column not in names:
        raise DataError(f"data file '{path}': no column {column!r}; columns found: {names}")
    kind = file.schema_arrow.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        what = "bytes" if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) else f"of type {kind}"
        raise DataError(f"data file '{path}', column {column!r}: {what}, not strings; expected a string column")
    start = 0
    for batch in file.iter_batches(batch_size=chunk_rows):
        table = pa.Table.from_batches([batch])
        texts = table.column(column).to_pylist()
        yield Chunk(table, texts, [f"row {start + i}" for i in range(len(texts))])
        start += len(texts)


def _check_items(chunk: Chunk, path: Path, column: str) -> None:
    """Every row has a text (a string, not empty, no NUL byte): a bad one is an error naming its place."""
    for i, text in enumerate(chunk.items):
        problem = None
        if text is None:
            problem = "no value (null)"
        elif not isinstance(text, str):
            problem = f"{text!r} is {type(text).__name__}" if isinstance(text, (int, float, bool)) else \
                f"a {type(text).__name__}, not a string"
        elif not text.strip():
            problem = "an empty text"
        elif "\x00" in text:
            problem = "a NUL byte inside the text (a binary or broken file?)"
        if problem:
            raise DataError(f"data file '{path}', {chunk.where[i]}, column {column!r}: {problem}; expected a "
                            "non-empty string in every row")


@dataclass
class Source:
    """An input opened for reading: its chunks, their count or size for the progress bar, and its kind."""
    path: Path
    fmt: str                  # csv | tsv | jsonl | parquet | folder
    column: str
    total: int                # rows (Parquet, folder) or bytes (text formats), for the progress bar
    unit: str
    roots: list[str] | None = None  # a manifest's images must lie in these (a flow parameter named it)

    def chunks(self, chunk_rows: int, image: bool) -> Iterator[tuple[Chunk, int]]:
        """(chunk, progress made) pairs; texts checked, image paths resolved and checked to exist."""
        if self.fmt == "folder":
            files = _image_files(self.path)
            outside = [f for f in files if self.roots is not None and not any(
                f.resolve().is_relative_to(Path(r).resolve()) for r in self.roots)]
            if outside:  # a link inside the folder to a file elsewhere
                raise DataError(f"'{outside[0]}': links outside the data roots {self.roots}; expected images "
                                "inside data.roots")
            for start in range(0, len(files), chunk_rows):
                part = files[start:start + chunk_rows]
                rows = [{"path": p.relative_to(self.path).as_posix()} for p in part]
                yield Chunk(rows, [str(p) for p in part], [f"file {r['path']}" for r in rows]), len(part)
            return
        if self.fmt == "parquet":
            chunks = ((c, len(c.items)) for c in _parquet_chunks(self.path, self.column, chunk_rows))
        else:
            stream = _Utf8Stream(self.path)
            raw = _csv_chunks(self.path, self.fmt, self.column, chunk_rows, stream) if self.fmt != "jsonl" \
                else _jsonl_chunks(self.path, self.column, chunk_rows, stream)
            chunks = _with_bytes(raw, stream)
        for chunk, step in chunks:
            _check_items(chunk, self.path, self.column)
            if image:
                chunk.items = [self._image_path(chunk, i, p) for i, p in enumerate(chunk.items)]
            yield chunk, step

    def _image_path(self, chunk: Chunk, i: int, value: str) -> str:
        path = (self.path.parent / value).resolve()
        if self.roots is not None and not any(path.is_relative_to(Path(r).resolve()) for r in self.roots):
            raise DataError(f"data file '{self.path}', {chunk.where[i]}, column {self.column!r}: an image outside the "
                            f"data roots {self.roots}; expected images inside data.roots")
        if not path.is_file():
            raise DataError(f"data file '{self.path}', {chunk.where[i]}, column {self.column!r}: {value!r} is not a "
                            "file; expected an image path relative to the manifest's folder (or absolute)")
        return str(path)


def _with_bytes(chunks: Iterator[Chunk], stream: _Utf8Stream) -> Iterator[tuple[Chunk, int]]:
    """Each chunk with the bytes read since the one before (the progress bar's steps); the file closed at the end."""
    done = 0
    try:
        for chunk in chunks:
            yield chunk, stream.consumed - done
            done = stream.consumed
    finally:
        stream.close()


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"'{folder}': no image files under it; expected files with extensions "
                        f"{', '.join(IMAGE_EXTENSIONS)}")
    return files


def open_source(path: str | Path, column: str, image: bool) -> Source:
    """Check what can be checked before any model is loaded: it exists, its format, its header or schema."""
    path = Path(path)
    if image and path.is_dir():
        return Source(path, "folder", column, len(_image_files(path)), "img")
    fmt = _check_source(path)
    if fmt == "parquet":
        first = next(_parquet_chunks(path, column, 1), None)  # checks the schema and the column
        import pyarrow.parquet as pq

        return Source(path, fmt, column, pq.ParquetFile(path).metadata.num_rows if first else 0, "row")
    if fmt in ("csv", "tsv"):
        _header(path, fmt, column)
    return Source(path, fmt, column, path.stat().st_size, "B")


# ---- writing, whole or not at all ----------------------------------------------------------------

def _plain(value: Any) -> Any:
    """A value as JSON writes it: numpy scalars as numbers, dates as ISO text, anything else as its text."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


class Writer:
    """Rows appended chunk by chunk to a temp file beside `path`; `commit` renames it into place, `abort` removes it."""

    def __init__(self, path: Path, source: Path):
        self.path, self.source = path, source  # the source: named in errors
        self.fmt = FORMATS.get(path.suffix.lower())
        if self.fmt is None:
            raise DataError(f"output '{path}': unknown extension '{path.suffix}'; expected one of "
                            f"{', '.join(FORMATS)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
        self.tmp = Path(tmp)
        self.file = os.fdopen(fd, "wb")
        self.columns: list[str] | None = None
        self.parquet = None

    def write(self, chunk: Chunk, added: dict[str, list]) -> None:
        if self.fmt == "parquet":
            return self._write_parquet(chunk, added)
        if self.fmt == "jsonl":
            rows = chunk.rows if isinstance(chunk.rows, list) else _frame(chunk.rows).to_dict("records")
            names = list(added)
            lines = []
            for i, row in enumerate(rows):
                out = {**row, **{name: added[name][i] for name in names}}
                lines.append(json.dumps(out, ensure_ascii=False, default=_plain))
            self.file.write(("\n".join(lines) + "\n").encode("utf-8"))
            return None
        frame = _frame(chunk.rows)
        for name, values in added.items():
            frame[name] = values
        if self.columns is None:
            self.columns = list(frame.columns)
        elif list(frame.columns) != self.columns:
            new = [c for c in frame.columns if c not in self.columns] or \
                [c for c in self.columns if c not in frame.columns]
            raise DataError(f"data file '{self.source}', {chunk.where[0]}..{chunk.where[-1]}: the keys {new} come or go "
                            f"after the first {self.fmt.upper()} rows were written; write JSON Lines output to keep "
                            "every key")
        text = frame.to_csv(sep="\t" if self.fmt == "tsv" else ",", index=False, header=self.file.tell() == 0,
                            lineterminator="\n")
        self.file.write(text.encode("utf-8"))
        return None

    def _write_parquet(self, chunk: Chunk, added: dict[str, list]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = chunk.rows if isinstance(chunk.rows, pa.Table) else \
            pa.Table.from_pandas(_frame(chunk.rows), preserve_index=False)
        for name, values in added.items():
            table = table.append_column(name, pa.array(values))
        if self.parquet is None:
            self.parquet = pq.ParquetWriter(self.file, table.schema)
        elif table.schema != self.parquet.schema:
            try:
                table = table.select(self.parquet.schema.names).cast(self.parquet.schema)
            except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as err:
                raise DataError(f"data file '{self.source}', {chunk.where[0]}..{chunk.where[-1]}: the rows do not "
                                f"fit the Parquet schema of the rows before them ({str(err)[:160]}); write CSV or JSON Lines output, or give the "
                                "input one type per column") from None
        self.parquet.write_table(table)

    def commit(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            if self.parquet is not None:
                self.parquet.close()
            self.file.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def _frame(rows: Any) -> pd.DataFrame:
    """Rows as a DataFrame: a Parquet table's own types; JSON objects with nested values as JSON text."""
    if isinstance(rows, pd.DataFrame):
        return rows.copy()
    if isinstance(rows, list):
        frame = pd.DataFrame.from_records(rows)
        for col in frame.columns:
            if frame[col].map(lambda v: isinstance(v, (dict, list))).any():
                frame[col] = frame[col].map(lambda v: json.dumps(v, ensure_ascii=False)
                                            if isinstance(v, (dict, list)) else v)
        return frame
    return rows.to_pandas()


def _input_columns(chunk: Chunk) -> list[str]:
    if isinstance(chunk.rows, pd.DataFrame):
        return list(chunk.rows.columns)
    if isinstance(chunk.rows, list):
        return list(dict.fromkeys(k for row in chunk.rows for k in row))
    return list(chunk.rows.column_names)


# ---- scoring -----------------------------------------------------------------------------------

def default_output(path: str | Path) -> Path:
    """Beside the input: `<name>.predictions<ext>` (a folder of images: `<folder>.predictions.csv`)."""
    path = Path(path)
    if path.is_dir():
        return path.with_name(f"{path.name}.predictions.csv")
    return path.with_name(f"{path.stem}.predictions{path.suffix}")


def predict_file(champion, source: Source, out: str | Path, chunk_rows: int = 2048,
                 all_probabilities: bool = False, progress: bool = True) -> dict:
    """Score `source` chunk by chunk with `champion` (driftfit.serving.load) into `out`; returns a summary."""
    from tqdm.auto import tqdm

    out = Path(out)
    if out.resolve() == source.path.resolve():
        raise DataError(f"output '{out}' is the input file; write the predictions elsewhere")
    image = champion.parts.ITEMS_ARE_FILES
    added_names = added_columns(champion.labels, all_probabilities)
    writer = Writer(out, source.path)
    counts = np.zeros(len(champion.labels), np.int64)
    rows, below_half, prob_sum = 0, 0, 0.0
    started = time.perf_counter()
    bar = tqdm(total=source.total, unit=source.unit, unit_scale=True, desc=f"scoring with {champion.version}",
               disable=not progress or None, leave=False)
    try:
        for chunk, step in source.chunks(chunk_rows, image):
            if rows == 0:
                clash = [c for c in added_names if c in _input_columns(chunk)]
                if clash:
                    raise DataError(f"data file '{source.path}': it already has column(s) {clash}, which scoring "
                                    "adds; rename them first (nothing is overwritten)")
            probs = champion.predict_proba(chunk.items)
            best = probs.argmax(1)
            top = probs[np.arange(len(best)), best]
            added = {LABEL: [champion.labels[k] for k in best], PROBABILITY: top.astype(float).tolist()}
            if all_probabilities:
                added.update({f"p_{label}": probs[:, j].astype(float).tolist()
                              for j, label in enumerate(champion.labels)})
            added[VERSION] = [champion.version] * len(best)
            writer.write(chunk, added)
            counts += np.bincount(best, minlength=len(champion.labels))
            rows += len(best)
            below_half += int((top < 0.5).sum())
            prob_sum += float(top.sum())
            bar.update(step)
        if rows == 0:
            raise DataError(f"data file '{source.path}' has no data rows; nothing to score")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    return {"input": str(source.path), "output": str(out), "rows": rows, "version": champion.version,
            "backend": champion.backend, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 1),
            "labels": {label: int(c) for label, c in zip(champion.labels, counts) if c},
            "mean_probability": round(prob_sum / rows, 4), "below_half": below_half}


def check_inside(path: Path, roots: list[str], key: str) -> None:
    """A path given from outside params.yaml (a flow parameter) must lie in a data root, links followed."""
    real = Path(path).resolve()
    if not any(real.is_relative_to(Path(r).resolve()) for r in roots):
        raise DriftfitError(f"{key} = '{path}': outside the data roots {roots}; a path given as a flow parameter "
                            "must lie in data.roots (params.yaml)")


def run(params, input_path: str | Path, out: str | Path | None = None, version: str | None = None,
        all_probabilities: bool | None = None, backend: str | None = None, column: str | None = None,
        progress: bool = True, inside_roots: bool = False) -> dict:
    """`driftfit predict`: the input checked first, then the version loaded (and verified), then the file scored.

    inside_roots: the input, the output and every image a manifest lists must lie in data.roots (the flow)."""
    from driftfit.modalities import serving_parts
    from driftfit.serving.champion import load, modality_of, resolve
    from driftfit.training.device import pick_device

    cfg = params.predict
    root = Path(params.paths.registry)
    name, record = resolve(root, version)
    parts = serving_parts(modality_of(root / name, record))
    image = parts.ITEMS_ARE_FILES
    column = column or getattr(cfg, parts.INPUT_COLUMN)
    out = Path(out) if out else default_output(input_path)
    if inside_roots:
        check_inside(Path(input_path), params.data.roots, "input_path")
        check_inside(out, params.data.roots, "output_path")
    source = open_source(input_path, column, image)
    if inside_roots:
        source.roots = params.data.roots
    if (backend or cfg.backend) == "torch":
        pick_device(cfg.device, "predict.device")  # its own key in the error, before anything loads
    champion = load(root, name, backend=backend or cfg.backend, device=cfg.device, batch_size=cfg.batch_size,
                    exports=params.absolute(params.export.dir), trust_remote_code=params.model.trust_remote_code)
    return predict_file(champion, source, out, cfg.chunk_rows,
                        cfg.all_probabilities if all_probabilities is None else all_probabilities, progress)



def summary_md(result: dict) -> str:
    """A scoring run for people (the score flow's artifact): what was scored, by which version, what came out."""
    rows = result["rows"]
    lines = [f"## Scored {rows:,} rows with {result['version']} ({result['backend']})", "",
             f"- input: `{result['input']}`", f"- output: `{result['output']}`",
             f"- {result['seconds']:.1f} s, {result['rows_per_s']:,.0f} rows/s",
             f"- mean probability of the predicted label: {result['mean_probability']:.3f}; "
             f"below 0.5: {result['below_half']:,} rows ({result['below_half'] / rows:.1%})", "",
             "| predicted label | rows | share |", "|---|---|---|"]
    for label, count in sorted(result["labels"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {label} | {count:,} | {count / rows:.1%} |")
    return "\n".join(lines) + "\n"
