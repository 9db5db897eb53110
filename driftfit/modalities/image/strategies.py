"""How each strategy builds the image classifier: BUILD maps each strategy the image modality runs to what it
makes trainable in EfficientNet-Lite0 or a Hugging Face image model (None: nothing to build, or the recipe's own
way, as scratch's fresh weights). driftfit.modalities.image.recipe trains what this returns.
"""

from __future__ import annotations

from typing import Any, Callable

from driftfit.training import quiet_peft


def image_freeze_all_but_head(model, cfg):
    from driftfit.modalities.image.model import freeze

    freeze(model, ("stem", "early", "late", "top"))
    return model


def image_freeze_early(model, cfg):
    """The stem and the early blocks (edges, textures) stay as they are; later blocks and the head learn. A Hugging
    Face model: its embeddings and its lowest `partial_frozen_layers` layers (at most all but one)."""
    from driftfit.modalities.image.model import freeze

    freeze(model, ("stem", "early"), early_layers=cfg.partial_frozen_layers)
    return model


def image_lora(model, cfg):
    """peft LoRA on the 1x1 convolutions (a Hugging Face model: its Linear and ungrouped Conv2d layers); the new
    head trains whole (modules_to_save)."""
    from peft import LoraConfig, get_peft_model

    from driftfit.modalities.image.model import lora_target_modules

    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=lora_target_modules(model), modules_to_save=[model.head_name])
    with quiet_peft():
        return get_peft_model(model, config)


BUILD: dict[str, Callable[[Any, Any], Any] | None] = {
    "skip": None, "head": image_freeze_all_but_head, "partial": image_freeze_early, "lora": image_lora,
    "full": None, "scratch": None,
}
