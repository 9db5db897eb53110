"""Texts compared the way people read them: normalised-text ids, duplicates inside a split, leakage between splits.

Normalised: lowercase, ASCII punctuation and all whitespace ignored ('Hello, World!' == 'hello world').
The work is Arrow and numpy over the string buffers, outside GX: GX has no expectation for it.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from driftfit.data.values import EXAMPLES, is_string_dtype, plain  # noqa: F401 - also imported from here

def _kept_bytes(data: np.ndarray) -> np.ndarray:
    """Bytes that count for near-duplicates: a-z, 0-9 and every non-ASCII byte (letters of other scripts).

    One slot longer than `data`, always False: reduceat needs every row start < len.
    """
    keep = np.zeros(len(data) + 1, bool)
    np.less_equal(data - np.uint8(97), 25, out=keep[:-1])
    keep[:-1] |= (data - np.uint8(48)) <= 9
    keep[:-1] |= data >= 128
    return keep


def _arrow_strings(texts: pd.Series):
    """The texts as one Arrow large_string array ('' for null/non-text)."""
    import pyarrow as pa

    values = texts if is_string_dtype(texts) else texts.where(texts.map(type) == str, None)
    arr = pa.array(values, from_pandas=True, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.fill_null("")


def _buffers(arr) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of a large_string array, the offsets rebased to index the bytes."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2] or b"", dtype=np.uint8)[offsets[0]:offsets[-1]]
    return offsets - offsets[0], data


def _normalised_array(texts: pd.Series):
    """Lowercase, drop ASCII punctuation and all whitespace, as an Arrow array ('' for null/non-text).

    Works on the Arrow buffers: a regex replace over the strings was about 4x slower at 1M rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _arrow_strings(texts)
    ascii_only = not (np.frombuffer(arr.buffers()[2] or b"", dtype=np.uint8) >= 128).any()
    arr = pc.ascii_lower(arr) if ascii_only else pc.utf8_lower(arr)  # same result on ASCII; ~9x faster
    offsets, data = _buffers(arr)
    keep = _kept_bytes(data)
    counts = np.add.reduceat(keep.view(np.uint8), offsets[:-1], dtype=np.int32) if len(arr) else offsets[:0]
    counts[offsets[:-1] == offsets[1:]] = 0  # reduceat gives an empty row the next byte, not 0
    new_offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    return pa.LargeStringArray.from_buffers(len(arr), pa.py_buffer(new_offsets),
                                            pa.py_buffer(np.compress(keep[:-1], data)))


# A text that is only a number ('12345', '-3.5', '1,200', '50%'): most likely a column read by the wrong index.
NUMERIC = r"^\s*[-+]?(\d+([.,']\d+)*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*%?\s*$"


def _rows_of(positions: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    """A per-row flag: True for the rows holding any of these byte positions."""
    flag = np.zeros(n, bool)
    flag[np.searchsorted(offsets, positions, side="right") - 1] = True
    return flag


def text_flags(texts: pd.Series) -> dict[str, np.ndarray]:
    """Per text (False for null/non-text): only a number; holds a NUL; holds another control character
    (not tab, line feed or carriage return; C1 controls U+0080..U+009F too); holds a zero-width character
    (U+200B..U+200D, U+2060, U+FEFF).

    The characters are found in the UTF-8 bytes with numpy, not a regex per text: at 100k texts one
    pyarrow regex pass took about 27 ms, a byte scan 6 ms, and almost every batch has none of them.
    """
    import pyarrow.compute as pc

    arr = _arrow_strings(texts)
    n = len(arr)
    offsets, data = _buffers(arr)
    low = np.flatnonzero(data < 32)
    low = low[(data[low] != 9) & (data[low] != 10) & (data[low] != 13)]
    control = [low[data[low] != 0], np.flatnonzero(data == 127)]
    zero_width = [low[:0]]
    if len(data) and data.max() >= 0xC2:  # multi-byte characters: C1 controls and zero-width characters
        c2 = np.flatnonzero(data[:-1] == 0xC2)  # U+0080..U+009F: C2 80..C2 9F
        control.append(c2[(data[c2 + 1] >= 0x80) & (data[c2 + 1] <= 0x9F)])
        e2 = np.flatnonzero(data[:-2] == 0xE2)  # U+200B..U+200D: E2 80 8B..8D; U+2060: E2 81 A0
        second, third = data[e2 + 1], data[e2 + 2]
        zero_width.append(e2[((second == 0x80) & (third - np.uint8(0x8B) <= 2)) | ((second == 0x81) & (third == 0xA0))])
        ef = np.flatnonzero(data[:-2] == 0xEF)  # U+FEFF: EF BB BF
        zero_width.append(ef[(data[ef + 1] == 0xBB) & (data[ef + 2] == 0xBF)])
    return {"numeric": pc.match_substring_regex(arr, NUMERIC).to_numpy(zero_copy_only=False),
            "nul": _rows_of(low[data[low] == 0], offsets, n),
            "control": _rows_of(np.concatenate(control), offsets, n),
            "zero_width": _rows_of(np.concatenate(zero_width), offsets, n)}


def normalise(texts: pd.Series) -> pd.Series:
    """'Hello, World!' and 'hello world' are one text: see _normalised_array."""
    import pyarrow as pa

    return pd.Series(_normalised_array(texts), index=texts.index, dtype=pd.ArrowDtype(pa.large_string()))


def text_ids(texts: dict[str, pd.Series]) -> dict[str, np.ndarray]:
    """Per split, an id per row shared by equal normalised texts across all splits (-1: nothing left).

    The ids come from one Arrow hash table over every split (dictionary encoding), so duplicates and
    leakage are integer lookups.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = list(texts)
    encoded = pc.dictionary_encode(pa.concat_arrays([_normalised_array(texts[n]) for n in names])
                                   if names else pa.array([], pa.large_string()))
    ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    empty = pc.index(encoded.dictionary, "").as_py()
    if empty >= 0:
        ids[ids == empty] = -1
    out, start = {}, 0
    for n in names:
        out[n], start = ids[start:start + len(texts[n])], start + len(texts[n])
    return out


def find_duplicates(texts: pd.Series, ids: np.ndarray) -> dict:
    """Rows whose normalised text repeats an earlier row's; how many of them repeat it exactly; examples."""
    repeat = pd.Series(ids).duplicated(keep="first").to_numpy()
    rows = np.flatnonzero(repeat & (ids >= 0))
    examples, exact = [], 0
    if len(rows):
        involved = np.isin(ids, ids[rows])
        exact = int(texts[involved].duplicated().sum())
        first = {i: r for r, i in zip(np.flatnonzero(involved & ~repeat), ids[involved & ~repeat])}
        examples = [{"row": int(r), "same_as_row": int(first[ids[r]]), "text": plain(texts.iloc[r])}
                    for r in rows[:EXAMPLES]]
    return {"count": int(len(rows)), "exact": exact, "rows": int(len(texts)),
            "share": round(len(rows) / max(len(texts), 1), 4), "examples": examples}


def find_leakage(source_ids: np.ndarray, other_ids: np.ndarray, other_texts: pd.Series) -> dict:
    """Rows of another split whose normalised text also occurs in the source split."""
    size = int(max(source_ids.max(initial=-1), other_ids.max(initial=-1))) + 1
    in_source = np.zeros(size + 1, bool)  # the last slot is -1's: never set
    in_source[source_ids[source_ids >= 0]] = True
    leaked = np.flatnonzero(in_source[other_ids])
    examples = []
    if len(leaked):
        wanted = set(other_ids[leaked[:EXAMPLES]].tolist())
        first = {}
        for row in np.flatnonzero(np.isin(source_ids, list(wanted))):
            first.setdefault(int(source_ids[row]), int(row))
        examples = [{"row": int(r), "source_row": first[int(other_ids[r])], "text": plain(other_texts.iloc[r])}
                    for r in leaked[:EXAMPLES]]
    return {"count": int(len(leaked)), "examples": examples}
