"""Reading a benchmark's data sources: a file in any format driftfit reads, or `chatterbot:<language>`."""

from __future__ import annotations

import pandas as pd

from driftfit.config import SourceConfig


def chatterbot_frame(language: str) -> pd.DataFrame:
    """Every utterance of one chatterbot-corpus language, labelled by category; ambiguous ones dropped."""
    from driftfit.modalities.text.default_data import chatterbot_conversations

    rows = [(u, label) for label, convs in chatterbot_conversations(language).values() for c in convs for u in c]
    df = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates()
    owners = df.groupby("text")["label"].nunique()
    return df[df["text"].map(owners) == 1].reset_index(drop=True)


def read_source(src: SourceConfig, seed: int) -> pd.DataFrame:
    """text/label rows of a source (a seeded sample of `src.sample` rows when set), blank texts dropped."""
    from driftfit.modalities.text.loaders import load_table

    if src.path.startswith("chatterbot:"):
        df = chatterbot_frame(src.path.split(":", 1)[1])
        if src.sample is not None and src.sample < len(df):
            df = df.sample(n=src.sample, random_state=seed).reset_index(drop=True)
        return df
    df = load_table(src, seed=seed)
    return df[df["text"].notna() & (df["text"].astype(str).str.strip() != "")].reset_index(drop=True)
