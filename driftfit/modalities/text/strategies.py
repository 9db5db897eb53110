"""What each strategy makes trainable in the text classifier: BUILD maps each strategy the text modality runs to
`prepare` (freeze parts, add modules) and the peft config it wraps around the encoder, if any. Whether the weights
start fresh and which learning rate the encoder uses come from the strategy's entry in driftfit.strategies;
modalities/text/build.py builds the model and its optimizer from both. Light: nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from driftfit.strategies import LAYER


@dataclass(frozen=True)
class TextBuild:
    prepare: Callable[[Any, Any], None] | None = None   # prepare(model, train_cfg): freeze / add modules
    peft: Callable[[Any, Any], Any] | None = None       # peft(train_cfg, encoder) -> a peft config
    fit: Callable | None = None  # its own training in place of Trainer's loop: fit(model, tokenizer, train, val,
    #                              label_ids, params, device, progress) -> (model, training log)


def contrastive_fit(*args, **kwargs):
    from driftfit.modalities.text.contrastive import fit

    return fit(*args, **kwargs)


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
    from driftfit.modalities.text.adapters import add_adapters as add

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



# ---- the table: what the text modality runs ------------------------------------------------------

BUILD: dict[str, TextBuild] = {
    "skip": TextBuild(), "zero_shot": TextBuild(),
    "head": TextBuild(prepare=freeze_encoder), "contrastive": TextBuild(fit=contrastive_fit),
    "partial": TextBuild(prepare=freeze_lower_layers),
    "lora": TextBuild(peft=lora), "ia3": TextBuild(peft=ia3), "prefix": TextBuild(peft=prefix),
    "prompt": TextBuild(peft=prompt), "ptuning": TextBuild(peft=ptuning), "adapter": TextBuild(prepare=add_adapters),
    "full": TextBuild(), "ensemble": TextBuild(), "scratch": TextBuild(),
}
