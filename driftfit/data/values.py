"""Cell values as messages and summaries show them: short, JSON-able, never the whole of a long text."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

EXAMPLES = 5          # offending rows kept per check (detail vs summary size)
SHOWN_CHARS = 60      # texts are cut to this many characters in messages and the summary


def is_string_dtype(values: pd.Series) -> bool:
    """A pandas/Arrow string column: every non-null value is a str, without looking at each."""
    return isinstance(values.dtype, pd.StringDtype) or str(values.dtype).startswith(("string", "large_string"))


def plain(value: Any) -> Any:
    """A JSON-able, short version of a cell value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return value[:SHOWN_CHARS] + "..."
    return value if isinstance(value, (bool, int, float, str)) else str(value)
