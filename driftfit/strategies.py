"""Every way driftfit can adapt the model: one entry per strategy, everything about it in that entry.

The `Strategy` type of params.yaml (`strategy.force`, `strategy.probe_candidates`), the CLI's
`--strategy` choices and help, the Prefect flow's drop-down and the README's list all derive from
STRATEGIES. Adding a strategy is one entry here (plus its test); training, the optimizer, saving and
evaluation read the entry and never match a strategy's name.

An entry says:
  trains         whether Trainer runs at all (skip and zero_shot train nothing)
  makes_model    whether a candidate model is written (skip keeps the champion)
  prepare        makes the right parts of the classifier trainable or adds new modules
  peft           the peft config wrapped around the encoder (its trainable parts), if any
  learning_rate  which `train.*` learning rate the encoder-side parameters use (the head always uses
                 head_learning_rate)
  layer_decay    whether `train.layer_lr_decay` scales lower layers down
  fresh_weights  the encoder starts from fresh He/Xavier weights (and may get a new tokenizer)
  merges         peft weights are merged into plain weights before saving (no peft needed to serve)
  is_baseline    the model is the pretrained baseline itself (the label names' embeddings as its head):
                 nothing trains, and the gate's "beats the baseline" check cannot apply
  averages_with_champion  the trained weights are averaged with the champion's (driftfit.averaging)
  fit_on_features  the encoder stays frozen, so no Trainer: the head is fitted to convergence on the
                 encoder's cached features (L-BFGS logistic regression, C chosen on validation;
                 driftfit.head_fit). Trainer strategies instead stop early on validation.
  modalities     the kinds of data it applies to (task.modality); any other is a ConfigError
  image_prepare  images only: freezes layer groups or wraps the image classifier (EfficientNet-Lite0 or a
                 Hugging Face folder) with peft; returns the model to train (driftfit.image_train)
  stand_in       what the selector's choice becomes for a modality the strategy does not support: the
                 strategy of the same kind that does (IA3 -> LoRA: both small updates of a frozen network)

Order: roughly from cheapest to most expensive; ties in probe mode go to the earlier one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from driftfit.errors import ConfigError

LAYER = re.compile(r"\blayers?\.(\d+)\.")  # "layer.3." in a parameter name: its layer index


@dataclass(frozen=True)
class StrategySpec:
    name: str
    summary: str                                   # one line: what trains (help texts, docs)
    trains: bool = True
    makes_model: bool = True
    prepare: Callable[[Any, Any], None] | None = None   # prepare(model, train_cfg): freeze / add modules
    peft: Callable[[Any, Any], Any] | None = None       # peft(train_cfg, encoder) -> a peft config
    learning_rate: str = "learning_rate"
    layer_decay: bool = False
    fresh_weights: bool = False
    merges: bool = False
    fit_on_features: bool = False
    averages_with_champion: bool = False
    is_baseline: bool = False
    modalities: tuple[str, ...] = ("text",)
    image_prepare: Callable[[Any, Any], Any] | None = None  # image_prepare(model, train_cfg) -> model to train
    stand_in: str | None = None


# ---- what each strategy makes trainable ------------------------------------------------------

def freeze_encoder(model, cfg) -> None:
    for p in model.encoder.parameters():
        p.requires_grad = False


def freeze_lower_layers(model, cfg) -> None:
    """The embeddings and the lowest `partial_frozen_layers` layers stay as they are."""
    for name, p in model.encoder.named_parameters():
        layer = LAYER.search(name)
        if "embeddings" in name or (layer and int(layer.group(1)) < cfg.partial_frozen_layers):
            p.requires_grad = False


def add_adapters(model, cfg) -> None:
    from driftfit.adapters import add_adapters as add

    freeze_encoder(model, cfg)
    add(model, cfg.adapter_size)


# ---- the peft configs ------------------------------------------------------------------------

def _lora_targets(encoder) -> list[str] | str:
    names = {n.rsplit(".", 1)[-1] for n, _ in encoder.named_modules()}
    for pair in (["query", "value"], ["q_proj", "v_proj"], ["q_lin", "v_lin"]):
        if set(pair) <= names:
            return pair
    return "all-linear"


def lora(cfg, encoder):
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=_lora_targets(encoder))


def ia3(cfg, encoder):  # keys, values and the FFN output, as peft knows them per architecture
    from peft import IA3Config, TaskType

    return IA3Config(task_type=TaskType.FEATURE_EXTRACTION)


def prefix(cfg, encoder):
    from peft import PrefixTuningConfig, TaskType

    return PrefixTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=cfg.virtual_tokens)


def prompt(cfg, encoder):  # start from real word embeddings: random N(0, 1) vectors swamp the text
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    return PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=cfg.virtual_tokens,
                              prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB)


def ptuning(cfg, encoder):
    from peft import PromptEncoderConfig, TaskType

    return PromptEncoderConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=cfg.virtual_tokens,
                               encoder_hidden_size=encoder.config.hidden_size)


# ---- images: what each strategy makes trainable in the image classifier -------------------------

def image_freeze_all_but_head(model, cfg):
    from driftfit.image_model import freeze

    freeze(model, ("stem", "early", "late", "top"))
    return model


def image_freeze_early(model, cfg):
    """The stem and the early blocks (edges, textures) stay as they are; later blocks and the head learn. A Hugging
    Face model: its embeddings and its lowest `partial_frozen_layers` layers (at most all but one)."""
    from driftfit.image_model import freeze

    freeze(model, ("stem", "early"), early_layers=cfg.partial_frozen_layers)
    return model


def image_lora(model, cfg):
    """peft LoRA on the 1x1 convolutions (a Hugging Face model: its Linear and ungrouped Conv2d layers); the new
    head trains whole (modules_to_save)."""
    from peft import LoraConfig, get_peft_model

    from driftfit.image_model import lora_target_modules
    from driftfit.model import quiet_peft

    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=lora_target_modules(model), modules_to_save=[model.head_name])
    with quiet_peft():
        return get_peft_model(model, config)


# ---- the table -------------------------------------------------------------------------------

_ALL = [
    StrategySpec("skip", "nothing trains; the champion keeps serving", trains=False, makes_model=False,
                 modalities=("text", "image")),
    StrategySpec("zero_shot", "nothing trains: the head is the label names' embeddings (driftfit.zero_shot)",
                 trains=False, is_baseline=True, stand_in="head"),
    StrategySpec("head", "only a new head on the frozen encoder, fitted to convergence (L-BFGS logistic regression)",
                 prepare=freeze_encoder, fit_on_features=True, modalities=("text", "image"),
                 image_prepare=image_freeze_all_but_head),
    StrategySpec("partial", "the top layers; the embeddings and the lower `partial_frozen_layers` stay frozen",
                 prepare=freeze_lower_layers, layer_decay=True, modalities=("text", "image"),
                 image_prepare=image_freeze_early),
    StrategySpec("lora", "low-rank updates of the attention (images: of the 1x1 convolutions; merged into plain "
                 "weights)", peft=lora, learning_rate="lora_learning_rate", merges=True, modalities=("text", "image"),
                 image_prepare=image_lora),
    StrategySpec("ia3", "learned rescaling of keys, values and the FFN (merged into plain weights)", peft=ia3,
                 learning_rate="head_learning_rate", merges=True, stand_in="lora"),
    StrategySpec("prefix", "learned key/value prefixes in every layer (saved as a peft adapter)", peft=prefix,
                 learning_rate="head_learning_rate", stand_in="lora"),
    StrategySpec("prompt", "learned virtual input tokens (saved as a peft adapter)", peft=prompt,
                 learning_rate="head_learning_rate", stand_in="lora"),
    StrategySpec("ptuning", "virtual tokens from a small MLP, P-tuning (saved as a peft adapter)", peft=ptuning,
                 learning_rate="head_learning_rate", stand_in="lora"),
    StrategySpec("adapter", "bottleneck adapters after each layer, encoder frozen", prepare=add_adapters,
                 learning_rate="adapter_learning_rate", stand_in="lora"),
    StrategySpec("full", "every weight", layer_decay=True, modalities=("text", "image")),
    StrategySpec("ensemble", "every weight, then averaged with the champion's weights (WiSE-FT; "
                 "train.ensemble_champion_share): adapts and forgets less", layer_decay=True,
                 averages_with_champion=True, stand_in="full"),
    StrategySpec("scratch", "every weight from fresh He/Xavier initialisation, optionally a new tokenizer",
                 learning_rate="scratch_learning_rate", fresh_weights=True, modalities=("text", "image")),
]
STRATEGIES: dict[str, StrategySpec] = {s.name: s for s in _ALL}


def names() -> tuple[str, ...]:
    return tuple(STRATEGIES)


def spec(name: str) -> StrategySpec:
    """The table entry, or a clear error naming the known strategies (never a silent fallback)."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy '{name}'; known: {', '.join(STRATEGIES)}") from None


def names_for(modality: str) -> tuple[str, ...]:
    """The strategies that apply to a modality (task.modality), in table order."""
    return tuple(name for name, s in STRATEGIES.items() if modality in s.modalities)


def check_modality(name: str, modality: str, key: str) -> None:
    """A ConfigError naming the key when strategy `name` does not apply to `modality`."""
    if modality not in spec(name).modalities:
        raise ConfigError(f"{key} = '{name}': not available for task.modality '{modality}' (its strategies: "
                          f"{', '.join(names_for(modality))})")


def for_modality(name: str, modality: str) -> str:
    """The strategy itself where it applies to `modality`, else its stand-in (the selector's rules name text
    strategies; an image run gets the one of the same kind)."""
    entry = spec(name)
    if modality in entry.modalities:
        return name
    if entry.stand_in is None or modality not in spec(entry.stand_in).modalities:
        raise ConfigError(f"strategy '{name}' has no form for task.modality '{modality}' and no stand-in")
    return entry.stand_in


def help_text() -> str:
    """One line per strategy, for the CLI's help."""
    return "; ".join(f"{s.name}: {s.summary}" for s in STRATEGIES.values())
