"""Labels as a reader sees them: two labels that look the same must be one label."""

from __future__ import annotations

import unicodedata


def invisible(label: str) -> str | None:
    """The first invisible character of a label (a control or format character: zero-width space, bidi
    override, ...) as U+XXXX, or None. Two labels that differ only by one would look the same."""
    bad = next((c for c in label if unicodedata.category(c) in ("Cc", "Cf")), None)
    return None if bad is None else f"U+{ord(bad):04X} ({unicodedata.name(bad, 'unnamed')})"


def label_key(label: str) -> str:
    """What a label means to a reader: Unicode-normalised (NFKC: 'café' typed either way is one label),
    stripped, case-folded."""
    return unicodedata.normalize("NFKC", label).strip().casefold()
