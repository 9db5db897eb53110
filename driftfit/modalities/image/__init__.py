"""The image modality: labelled images (a folder per class, or a CSV/Parquet manifest path,label) and
EfficientNet-Lite0 (packaged ImageNet weights) or a local Hugging Face image model.

Its parts: data.py (reading and decoding images, the embedded animal silhouettes), sources.py (a source as rows;
paths kept relative), phash.py (perceptual hashes), checks.py (the GX image rules: unreadable files, sizes,
duplicates and leakage by hash), augment.py (kornia), measures.py (shift on pretrained features), model.py (the
network, its layer groups, save/load), strategies.py (what each strategy builds), recipe.py (a torch loop and the
converged head), evaluate.py (scorers, the test-image grid).
"""

from __future__ import annotations

from driftfit.config import LOCAL
from driftfit.errors import ConfigError
from driftfit.modalities import Modality, lazy, register_modality
from driftfit.modalities.image.packaged import PACKAGED_MODEL
from driftfit.modalities.image.strategies import BUILD

PACKAGE = __name__


def check_params(params) -> None:
    """The image model named, and nothing only texts have: learned rules, probe mode, the search."""
    if params.model.pretrained != PACKAGED_MODEL and not params.model.pretrained.startswith(LOCAL):
        raise ConfigError(f"model.pretrained = '{params.model.pretrained}': task.modality 'image' needs "
                          f"'{PACKAGED_MODEL}' (the packaged EfficientNet-Lite0) or a local Hugging Face image "
                          "classification folder (a path starting with ./, ../, / or ~)")
    if params.strategy.learned_rules is not None:
        raise ConfigError(f"strategy.learned_rules = '{params.strategy.learned_rules}': the learned rules were fit "
                          "on text scenarios (their measures include tokenizer fit); task.modality 'image' needs "
                          "strategy.learned_rules: null")
    if params.strategy.mode != "rules":
        raise ConfigError(f"strategy.mode = '{params.strategy.mode}': task.modality 'image' supports 'rules' only "
                          "(probe mode trains text models)")
    if params.search.enabled:
        raise ConfigError("search.enabled = true: the hyperparameter search trains text models; task.modality "
                          "'image' needs search.enabled: false")


def check_sources(params) -> None:
    """A bad contract fails before any image is read."""
    from driftfit.data.contract import contract_for

    contract_for(params.validate_)


def describe_input(params, train_log: dict) -> tuple[str, str]:
    size = train_log.get("image_size", params.image.size)  # as trained: a Hugging Face model's own size
    return (f"image size {size} x {size}",
            f"Images are resized whole to {size} x {size} pixels (RGB); fine detail below that resolution is lost")


register_modality(Modality(
    name="image",
    summary="labelled images (a folder per class, or a CSV/Parquet manifest path,label); EfficientNet-Lite0 or a "
            "local Hugging Face image model",
    default_data="animal-mnist silhouettes (10 animals), a new label set far from ImageNet's photographs",
    shift_measures=("embedding", "label_shift", "probe", "data_size", "champion"),
    strategies=BUILD,
    stores_files=True,
    check_params=check_params,
    write_default_data=lazy(f"{PACKAGE}.data", "write_default_data"),
    check_sources=check_sources,
    load=lazy(f"{PACKAGE}.sources", "load"),
    source_digest=lazy("driftfit.data.hashing", "folder_hash"),
    stored=lazy(f"{PACKAGE}.sources", "stored"),
    restored=lazy(f"{PACKAGE}.sources", "restored"),
    validate=lazy(f"{PACKAGE}.checks", "validate"),
    augment=lazy(f"{PACKAGE}.augment", "augment"),
    measure=lazy(f"{PACKAGE}.measures", "measure"),
    train=lazy(f"{PACKAGE}.recipe", "train"),
    classifier=lazy(f"{PACKAGE}.evaluate", "classifier"),
    baseline=lazy(f"{PACKAGE}.evaluate", "baseline"),
    describe_input=describe_input,
    evaluation_extras=lazy(f"{PACKAGE}.evaluate", "evaluation_extras"),
    notes=("no tokenizer fit and no zero-shot (no label-name embeddings)", "strategy.mode rules only",
           "no hyperparameter search"),
    serving=f"{PACKAGE}.serving",
))
