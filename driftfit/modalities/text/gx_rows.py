"""The per-text profile the contract's row rules are checked on, and those rules as GX expectations."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from driftfit.data.contract import REQUIRED_SPLITS, Contract
from driftfit.data.gx_suite import rule
from driftfit.data.values import is_string_dtype
from driftfit.modalities.text.texts import text_flags

# Profile columns about the text (messages name the column 'text'): its type, length and flags.
TEXT_COLUMNS = ("text_type", "chars", "numeric", "nul", "control", "zero_width")



def _type_names(values: pd.Series, missing: str | None = None) -> pd.Categorical:
    """The Python type of each value ('str', 'int', ...; `missing` where null), cheaply for string columns."""
    null = values.isna().to_numpy()
    if is_string_dtype(values):  # every value is a str: no need to look at each
        if missing is None:
            return pd.Categorical.from_codes(np.where(null, -1, 0), categories=["str"])
        return pd.Categorical.from_codes(null.astype(np.int8), categories=["str", missing])
    return pd.Categorical([missing if m else type(v).__name__ for v, m in zip(values.to_numpy(dtype=object), null)])


def _stripped_chars(text: pd.Series, text_type: pd.Categorical) -> np.ndarray:
    """Characters once surrounding whitespace is stripped: 0 for a missing text, NaN for a value that is no str."""
    missing = text.isna().to_numpy()
    if not is_string_dtype(text):
        text = text.where(np.asarray(text_type == "str")).astype("str")  # length only of real strings
    return np.where(missing, 0.0, text.str.strip().str.len().astype("float64").to_numpy())


def _checked_labels(split: str, labels: pd.Series) -> pd.Series:
    """The labels as strings in train/val/test; null in the reference splits (see row_profile)."""
    if split not in REQUIRED_SPLITS:
        return pd.Series(None, index=labels.index, dtype="str")
    if is_string_dtype(labels):
        return labels
    return labels.map(lambda v: v if pd.isna(v) else str(v)).astype("str")  # 1 -> '1'; label_type says int


def row_profile(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per text of every split: split, row, [line], text_type, chars, numeric, nul, control,
    zero_width, label, label_type.

    `label` is null in the reference splits: they may hold labels retired since, and only train, val
    and test must use the allowed ones. Columns are built whole (categoricals, numpy), not per split
    and concatenated: concatenating categoricals with different categories falls back to objects.
    """
    names, frames = list(splits), list(splits.values())
    sizes = [len(df) for df in frames]
    text_types = [_type_names(df["text"]) for df in frames]
    labels = [_checked_labels(name, df["label"]) for name, df in splits.items()]
    flags = [text_flags(df["text"]) for df in frames]
    out = pd.DataFrame({
        "split": pd.Categorical.from_codes(np.repeat(np.arange(len(names), dtype=np.int8), sizes), categories=names),
        "row": np.concatenate([np.arange(n) for n in sizes]),
        "text_type": union_categoricals(text_types),
        "chars": np.concatenate([_stripped_chars(df["text"], t) for df, t in zip(frames, text_types)]),
        **{flag: np.concatenate([f[flag] for f in flags]) for flag in ("numeric", "nul", "control", "zero_width")},
        "label": pd.concat(labels, ignore_index=True).astype("category"),
        "label_type": union_categoricals([_type_names(df["label"], missing="null") for df in frames]),
    })
    if any("line" in df.columns for df in frames):
        out["line"] = np.concatenate([df["line"].to_numpy(dtype="float64") if "line" in df.columns
                                      else np.full(len(df), np.nan) for df in frames])
    return out


def row_expectations(contract: Contract, allowed: list[str], allowed_from: str, present: list[str]) -> list:
    """The contract's row-level rules, one expectation each."""
    import great_expectations as gx

    E, c = gx.expectations, contract
    new_batch = [s for s in REQUIRED_SPLITS if s in present]  # the profile's label is null in the reference
    out = [
        rule(E.ExpectColumnDistinctValuesToContainSet, "splits", column="split", value_set=new_batch,
              description="at least one row in each of train, val and test"),
        rule(E.ExpectColumnValuesToBeInSet, "columns.text", column="text_type", value_set=["str"],
              description="texts that are strings"),
        rule(E.ExpectColumnValuesToBeBetween, "text.min_chars/max_chars", column="chars",
              min_value=c.text.min_chars, max_value=c.text.max_chars,
              description=f"between {c.text.min_chars} and {c.text.max_chars} characters once surrounding "
                          "whitespace is stripped (a missing text has 0)"),
        rule(E.ExpectColumnValuesToBeInSet, "text.numeric", c.text.numeric, column="numeric", value_set=[False],
              description="texts that are words, not only a number"),
        rule(E.ExpectColumnValuesToBeInSet, "text.nul", c.text.nul, column="nul", value_set=[False],
              description="texts without NUL characters"),
        rule(E.ExpectColumnValuesToBeInSet, "text.control", c.text.control, column="control", value_set=[False],
              description="texts without control characters other than tab, line feed and carriage return"),
        rule(E.ExpectColumnValuesToBeInSet, "text.zero_width", c.text.zero_width, column="zero_width",
              value_set=[False], description="texts without zero-width characters (U+200B..U+200D, U+2060, "
                                             "U+FEFF)"),
        rule(E.ExpectColumnValuesToBeInSet, "columns.label", column="label_type", value_set=["str"],
              description="a label in every row, a string"),
    ]
    if allowed and new_batch:
        shown = ", ".join(allowed[:20]) + (", ..." if len(allowed) > 20 else "")
        out.append(rule(E.ExpectColumnValuesToBeInSet, "labels.allowed", column="label", value_set=allowed,
                         description=f"a label in {{{shown}}} ({allowed_from})"))
    return out
