"""Every way driftfit can adapt a model: one entry per strategy, what it means whatever the modality.

The `Strategy` type of params.yaml (`strategy.force`, `strategy.probe_candidates`), the CLI's `--strategy`
choices and help, the Prefect flow's drop-down and the README's table all derive from STRATEGIES. How a strategy
builds its model is each modality's business: `strategies` in its package maps the strategy names it runs to
how it builds them (driftfit/modalities/text/strategies.py, .../image/strategies.py), and that mapping is what
says which modalities a strategy applies to. A new strategy is one `register_strategy(...)` call plus an entry in
the build table of each modality that runs it.

An entry says:
  trains         whether a training loop runs at all (skip and zero_shot train nothing)
  makes_model    whether a candidate model is written (skip keeps the champion)
  learning_rate  which `train.*` learning rate the encoder-side parameters use (the head always uses
                 head_learning_rate)
  layer_decay    whether `train.layer_lr_decay` scales lower layers down
  fresh_weights  the encoder starts from fresh He/Xavier weights (and may get a new tokenizer)
  merges         peft weights are merged into plain weights before saving (no peft needed to serve)
  is_baseline    the model is the pretrained baseline itself (the label names' embeddings as its head):
                 nothing trains, and the gate's "beats the baseline" check cannot apply
  averages_with_champion  the trained weights are averaged with the champion's
  fit_on_features  the encoder stays frozen, so no training loop: the head is fitted to convergence on the
                 encoder's cached features (driftfit.training.head_fit)
  stand_in       what the selector's choice becomes for a modality that does not run the strategy: the
                 strategy of the same kind that it does (IA3 -> LoRA: both small updates of a frozen network)

Order: roughly from cheapest to most expensive; ties in probe mode go to the earlier one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from driftfit import modalities
from driftfit.errors import ConfigError

LAYER = re.compile(r"\blayers?\.(\d+)\.")  # "layer.3." in a parameter name: its layer index


@dataclass(frozen=True)
class StrategySpec:
    name: str
    summary: str                                   # one line: what trains (help texts, docs)
    trains: bool = True
    makes_model: bool = True
    learning_rate: str = "learning_rate"
    layer_decay: bool = False
    fresh_weights: bool = False
    merges: bool = False
    fit_on_features: bool = False
    averages_with_champion: bool = False
    is_baseline: bool = False
    stand_in: str | None = None


_ALL = [
    StrategySpec("skip", "nothing trains; the champion keeps serving", trains=False, makes_model=False),
    StrategySpec("zero_shot", "nothing trains: the head is the label names' embeddings",
                 trains=False, is_baseline=True, stand_in="head"),
    StrategySpec("head", "only a new head on the frozen encoder, fitted to convergence (L-BFGS logistic regression)",
                 fit_on_features=True),
    StrategySpec("contrastive", "the encoder tuned on pairs of same- and different-label rows (SetFit), then a "
                 "converged head", learning_rate="contrastive_learning_rate", stand_in="head"),
    StrategySpec("partial", "the top layers; the embeddings and the lower `partial_frozen_layers` stay frozen",
                 layer_decay=True),
    StrategySpec("lora", "low-rank updates of the attention (images: of the 1x1 convolutions; merged into plain "
                 "weights)", learning_rate="lora_learning_rate", merges=True),
    StrategySpec("ia3", "learned rescaling of keys, values and the FFN (merged into plain weights)",
                 learning_rate="head_learning_rate", merges=True, stand_in="lora"),
    StrategySpec("prefix", "learned key/value prefixes in every layer (saved as a peft adapter)",
                 learning_rate="head_learning_rate", stand_in="lora"),
    StrategySpec("prompt", "learned virtual input tokens (saved as a peft adapter)",
                 learning_rate="head_learning_rate", stand_in="lora"),
    StrategySpec("ptuning", "virtual tokens from a small MLP, P-tuning (saved as a peft adapter)",
                 learning_rate="head_learning_rate", stand_in="lora"),
    StrategySpec("adapter", "bottleneck adapters after each layer, encoder frozen",
                 learning_rate="adapter_learning_rate", stand_in="lora"),
    StrategySpec("full", "every weight", layer_decay=True),
    StrategySpec("ensemble", "every weight, then averaged with the champion's weights (WiSE-FT; "
                 "train.ensemble_champion_share): adapts and forgets less", layer_decay=True,
                 averages_with_champion=True, stand_in="full"),
    StrategySpec("scratch", "every weight from fresh He/Xavier initialisation, optionally a new tokenizer",
                 learning_rate="scratch_learning_rate", fresh_weights=True),
]
STRATEGIES: dict[str, StrategySpec] = {s.name: s for s in _ALL}


def register_strategy(strategy: StrategySpec) -> StrategySpec:
    """Add a strategy to the table (before params are read: the config's type derives from the table)."""
    STRATEGIES[strategy.name] = strategy
    return strategy


def names() -> tuple[str, ...]:
    return tuple(STRATEGIES)


def spec(name: str) -> StrategySpec:
    """The table entry, or a clear error naming the known strategies (never a silent fallback)."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy '{name}'; known: {', '.join(STRATEGIES)}") from None


def names_for(modality: str) -> tuple[str, ...]:
    """The strategies a modality runs (task.modality), in table order."""
    runs = modalities.get(modality).strategies
    return tuple(name for name in STRATEGIES if name in runs)


def check_modality(name: str, modality: str, key: str) -> None:
    """A ConfigError naming the key when strategy `name` does not apply to `modality`."""
    spec(name)
    if name not in modalities.get(modality).strategies:
        raise ConfigError(f"{key} = '{name}': not available for task.modality '{modality}' (its strategies: "
                          f"{', '.join(names_for(modality))})")


def for_modality(name: str, modality: str) -> str:
    """The strategy itself where the modality runs it, else its stand-in (the selector's rules name text
    strategies; an image run gets the one of the same kind)."""
    runs = modalities.get(modality).strategies
    current, seen = name, []
    while current not in runs:  # IA3 -> LoRA -> ... until the modality runs one
        seen.append(current)
        current = spec(current).stand_in
        if current is None or current in seen:
            raise ConfigError(f"strategy '{name}' has no form for task.modality '{modality}' and no stand-in it runs "
                              f"(tried {', '.join(seen)})")
    return current


def help_text() -> str:
    """One line per strategy, for the CLI's help."""
    return "; ".join(f"{s.name}: {s.summary}" for s in STRATEGIES.values())
