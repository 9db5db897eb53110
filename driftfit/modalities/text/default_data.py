"""The embedded default data: chatterbot-corpus English, labelled by category (`driftfit default-data`).

Each category's conversations are halved: one half is the reference data (what the current champion was
trained on), the other the incoming batch; `data.default.incoming_only` categories appear only in the batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from driftfit.config import DefaultDataConfig, Params
from driftfit.errors import DataError
from driftfit.io import atomic_dir


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
    from driftfit.modalities.text.texts import normalise

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


def write_csvs(cfg: DefaultDataConfig, folder: Path) -> dict[str, int]:
    """reference.csv and incoming.csv in `folder` (the caller makes the write whole)."""
    reference, incoming = make_default_data(cfg)
    reference.to_csv(folder / "reference.csv", index=False)
    incoming.to_csv(folder / "incoming.csv", index=False)
    return {"reference": len(reference), "incoming": len(incoming)}


def write_default_data(cfg: DefaultDataConfig, out_dir: str | Path) -> dict[str, int]:
    """The embedded default data in `out_dir`, written whole (tests and benchmarks build it so)."""
    with atomic_dir(out_dir) as tmp:
        return write_csvs(cfg, tmp)


def write_to(params: Params, folder: Path) -> dict[str, int]:
    """The modality's default data, into the folder the default-data step is writing."""
    return write_csvs(params.data.default, folder)
