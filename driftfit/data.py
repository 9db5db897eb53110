"""Data in: the embedded default, file/hub loaders, and the stratified split (`prepare`).

Every dataset leaves here as a DataFrame with two string columns, `text` and `label`.
Loader errors name the file, the row or column, and what was expected.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import DefaultDataConfig, Params, SourceConfig, SplitConfig
from driftfit.errors import DataError
from driftfit.io import atomic_dir, write_json

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
SPLITS = ("train", "val", "test", "reference_train", "reference_test")


# ---- the embedded default: chatterbot-corpus English ----------------------------------------

def chatterbot_conversations(language: str) -> dict[str, tuple[str, list[list[str]]]]:
    """chatterbot-corpus, one language: file stem -> (its category, its conversations of stripped,
    non-empty utterances)."""
    import chatterbot_corpus
    import yaml

    folder = Path(chatterbot_corpus.__file__).parent / "data" / language
    if not folder.is_dir():
        raise DataError(f"chatterbot-corpus has no language '{language}' (folder {folder})")
    out = {}
    for path in sorted(folder.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        convs = [[str(u).strip() for u in c if str(u).strip()] for c in doc.get("conversations") or [] if c]
        out[path.stem] = (str((doc.get("categories") or [path.stem])[0]), convs)
    return out


def make_default_data(cfg: DefaultDataConfig, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, incoming) from chatterbot-corpus English, labelled by category (the file name).

    Each category's conversations are shuffled and halved: one half is the data the current model
    saw, the other the new batch. Categories in `cfg.incoming_only` appear only in the new batch,
    so the default run sees a real label-set change as well as new utterances.
    """
    from driftfit.texts import normalise

    rng = np.random.default_rng(seed)
    convs_by_label = {stem: convs for stem, (_, convs) in chatterbot_conversations("english").items()}
    # Texts are compared as the validation step compares them (case, punctuation and spaces ignored),
    # so "What is Baseball" and "what is baseball?" are one text and cannot leak across splits.
    every = sorted({u for convs in convs_by_label.values() for c in convs for u in c})
    key = dict(zip(every, normalise(pd.Series(every, dtype=object)).tolist()))
    halves: dict[str, tuple[list[str], list[str]]] = {}
    for label, convs in convs_by_label.items():
        order = rng.permutation(len(convs))
        sides = []
        for side in (0, 1):
            seen: dict[str, str] = {}
            for i in order[side::2]:
                for u in convs[i]:
                    seen.setdefault(key[u], u)
            sides.append(list(seen.values()))
        halves[label] = (sides[0], [u for u in sides[1] if key[u] not in {key[r] for r in sides[0]}])
    # An utterance filed under two categories has no single true label: leave it out. An utterance
    # the reference already has is not new: keep it only on the reference side.
    owners: dict[str, set[str]] = {}
    for label, (ref, inc) in halves.items():
        for u in ref + inc:
            owners.setdefault(key[u], set()).add(label)
    in_reference = {key[u] for label, (ref, _) in halves.items() if label not in cfg.incoming_only for u in ref}
    ref_rows, inc_rows = [], []
    for label, (ref, inc) in halves.items():
        ref = [u for u in ref if len(owners[key[u]]) == 1]
        inc = [u for u in inc if len(owners[key[u]]) == 1 and key[u] not in in_reference]
        if min(len(ref), len(inc)) < cfg.min_per_class:
            continue
        take = lambda xs: [xs[i] for i in sorted(rng.permutation(len(xs))[: cfg.max_per_class])]  # noqa: E731
        if label not in cfg.incoming_only:
            ref_rows += [(t, label) for t in take(ref)]
        inc_rows += [(t, label) for t in take(inc)]
    cols = ["text", "label"]
    return pd.DataFrame(ref_rows, columns=cols), pd.DataFrame(inc_rows, columns=cols)


def write_default_data(cfg: DefaultDataConfig, out_dir: str | Path) -> dict[str, int]:
    reference, incoming = make_default_data(cfg)
    with atomic_dir(out_dir) as tmp:
        reference.to_csv(tmp / "reference.csv", index=False)
        incoming.to_csv(tmp / "incoming.csv", index=False)
    return {"reference": len(reference), "incoming": len(incoming)}


def run_default_data(params: Params) -> dict[str, int]:
    return write_default_data(params.data.default, params.paths.default_data)


# ---- loaders --------------------------------------------------------------------------------

def _line_of(raw: bytes, offset: int) -> int:
    return raw[:offset].count(b"\n") + 1


def _read_file(path: Path, src: SourceConfig) -> pd.DataFrame:
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
        try:
            return pd.read_parquet(io.BytesIO(raw))
        except Exception as err:  # pyarrow raises several types
            raise DataError(f"data file '{path}': not a readable Parquet file ({err})") from None
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is allowed and dropped
    except UnicodeDecodeError as err:
        raise DataError(f"data file '{path}', line {_line_of(raw, err.start)}: bytes that are not UTF-8 "
                        f"({raw[err.start:err.start + 4]!r}); expected UTF-8 text") from None
    if fmt == "jsonl":
        try:
            return pd.read_json(io.StringIO(text), lines=True, dtype=False)
        except ValueError as err:
            raise DataError(f"data file '{path}': not valid JSON Lines ({err}); expected one object per line") from None
    sep = "\t" if fmt == "tsv" else ","
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, header=0 if src.header else None, dtype=str,
                           keep_default_na=False, quoting=3 if fmt == "tsv" else 0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"data file '{path}': cannot parse as {fmt.upper()} ({err})") from None


def _read_hub(dataset_id: str, src: SourceConfig) -> pd.DataFrame:
    import datasets

    try:
        return datasets.load_dataset(dataset_id, split=src.split).to_pandas()
    except Exception as err:  # offline, unknown id, unknown split
        raise DataError(f"dataset 'hf:{dataset_id}' (split {src.split}) could not be loaded: {err}") from None


def load_table(src: SourceConfig, path: str | None = None, seed: int = 0, lines: bool = False) -> pd.DataFrame:
    """Load one source into a text/label frame (both str), with clear errors.

    With `lines`, a third column `line` holds each row's line in the file (its row number for
    Parquet and hub data), so later messages can point into the file.
    """
    where = path or src.path
    df = _read_hub(where[3:], src) if where.startswith("hf:") else _read_file(Path(where), src)
    fmt = "hub" if where.startswith("hf:") else FORMATS.get(Path(where).suffix.lower())
    # the file line of row 0 (a header takes line 1); Parquet and hub rows are 0-based row numbers
    first_line = {"csv": 1 + src.header, "tsv": 1 + src.header, "jsonl": 1}.get(fmt, 0)
    if len(df) == 0:
        raise DataError(f"data file '{where}' has a header but no data rows")
    for role, col in (("text", src.text), ("label", src.label)):
        if col not in df.columns:
            found = [str(c) for c in df.columns]
            hint = ""
            if len(found) == 1 and any(s in found[0] for s in ("\t", ",", ";", "|")):
                hint = " (one column only: is the delimiter right for the file's extension?)"
            raise DataError(f"data file '{where}': no {role} column {col!r}; columns found: {found}{hint}")
    out = pd.DataFrame({"text": df[src.text], "label": df[src.label]})
    if lines:
        out["line"] = np.arange(len(out)) + first_line
    labels = out["label"]
    missing = labels.isna() | (labels.astype(str).str.strip() == "")
    if missing.any():
        rows = [int(i) + first_line for i in np.flatnonzero(missing.to_numpy())[:5]]
        raise DataError(f"data file '{where}', column {src.label!r}: {int(missing.sum())} row(s) without a label "
                        f"(first at line/row {rows}); expected a label in every row")
    kinds = labels.map(lambda v: type(v).__name__)
    if kinds.nunique() > 1:
        minority = kinds.value_counts().index[-1]
        pos = int(np.flatnonzero((kinds == minority).to_numpy())[0])
        line = pos + first_line
        raise DataError(f"data file '{where}', column {src.label!r}: labels of mixed types {sorted(set(kinds))} "
                        f"(e.g. line/row {line}: {labels.iloc[pos]!r}); "
                        "expected one type (all strings or all integers)")
    out["label"] = labels.astype(str).str.strip()
    out["text"] = out["text"].map(lambda t: t if t is None or (isinstance(t, float) and np.isnan(t)) else str(t))
    if src.sample is not None and src.sample < len(out):
        out = out.sample(n=src.sample, random_state=seed).sort_index()
    return out.reset_index(drop=True)


# ---- prepare: split and record hashes -------------------------------------------------------

def stratified_split(df: pd.DataFrame, fractions: dict[str, float], seed: int) -> dict[str, pd.DataFrame]:
    """Split per label so every part keeps the label mix. The remainder goes to 'train'."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {name: [] for name in ["train", *fractions]}
    for _, idx in sorted(df.groupby("label").indices.items()):
        idx = rng.permutation(idx)
        start = 0
        for name, frac in fractions.items():
            # Each held-out part gets at least one row once a class has enough rows for all parts.
            n = int(round(frac * len(idx)))
            if n == 0 and len(idx) > len(fractions):
                n = 1
            parts[name] += idx[start:start + n].tolist()
            start += n
        parts["train"] += idx[start:].tolist()
    return {name: df.loc[sorted(ix)].reset_index(drop=True) for name, ix in parts.items()}


def content_hash(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for text, label in zip(df["text"], df["label"]):
        h.update(f"{text}\t{label}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def file_hash(path: str) -> str | None:
    p = Path(path)
    if not p.is_file():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()


def prepare_splits(reference: pd.DataFrame | None, incoming: pd.DataFrame, incoming_test: pd.DataFrame | None,
                   cfg: SplitConfig) -> dict[str, pd.DataFrame]:
    if incoming_test is None:
        splits = stratified_split(incoming, {"val": cfg.val_fraction, "test": cfg.test_fraction}, cfg.seed)
    else:
        splits = stratified_split(incoming, {"val": cfg.val_fraction}, cfg.seed)
        splits["test"] = incoming_test
    if reference is not None:
        ref = stratified_split(reference, {"test": cfg.test_fraction}, cfg.seed)
        splits["reference_train"], splits["reference_test"] = ref["train"], ref["test"]
    return splits


def read_split(prepared: str | Path, name: str) -> pd.DataFrame | None:
    path = Path(prepared) / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def run(params: Params) -> dict:
    """Load the sources named in params, split them, check them against the data contract, then write
    data/prepared/ (+ manifest.json). A contract error stops here, naming file lines, before anything
    is written to data/prepared/ (the validation report goes to paths.validation).
    """
    from driftfit import validate
    from driftfit.contract import contract_for

    src = params.data
    contract_for(params.validate_)  # a bad contract fails before any data is read
    incoming = load_table(src.incoming, seed=params.split.seed, lines=True)
    incoming_test = (load_table(src.incoming, path=src.incoming.test_path, lines=True)
                     if src.incoming.test_path else None)
    reference = load_table(src.reference, seed=params.split.seed, lines=True) if src.reference else None
    splits = prepare_splits(reference, incoming, incoming_test, params.split)
    sources = {"train": src.incoming.path, "val": src.incoming.path,
               "test": src.incoming.test_path or src.incoming.path}
    if src.reference:
        sources.update(reference_train=src.reference.path, reference_test=src.reference.path)
    validate.check_before_writing(splits, params, sources)
    splits = {name: df.drop(columns="line") for name, df in splits.items()}
    manifest = {
        "sources": {
            role: {"path": s.path, "sha256": file_hash(s.path), "test_path": s.test_path,
                   "test_sha256": file_hash(s.test_path) if s.test_path else None}
            for role, s in (("incoming", src.incoming), ("reference", src.reference)) if s is not None
        },
        "splits": {
            name: {"rows": len(df), "sha256": content_hash(df),
                   "labels": {str(k): int(v) for k, v in df["label"].value_counts().sort_index().items()}}
            for name, df in splits.items()
        },
    }
    with atomic_dir(params.paths.prepared) as tmp:
        for name, df in splits.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        write_json(tmp / "manifest.json", manifest)
    return manifest
