"""The classifier each training strategy starts from, and its optimizer.

What is frozen (head, adapter, partial), what peft adds (lora, ia3, prefix, prompt, ptuning), fresh
He/Xavier weights (scratch); then AdamW with one learning rate per kind of parameter: the head and
freshly made modules learn fast, the pretrained encoder slowly, lower layers slower still with
`layer_lr_decay`. driftfit.train runs the loop on what this builds.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from driftfit.config import Params, TrainConfig
from driftfit.model import TextClassifier, load_encoder

_LAYER = re.compile(r"\blayers?\.(\d+)\.")
PEFT_STRATEGIES = ("lora", "ia3", "prefix", "prompt", "ptuning")
NEW_MODULE_STRATEGIES = ("ia3", "prefix", "prompt", "ptuning", "adapter")  # fresh small modules: head lr


def _reinit(module: nn.Module, scheme: str) -> None:
    """Fresh weights: He (Kaiming) or Xavier for linear layers, N(0, 0.02) embeddings, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            if scheme == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _lora_targets(encoder: nn.Module) -> list[str] | str:
    names = {n.rsplit(".", 1)[-1] for n, _ in encoder.named_modules()}
    for pair in (["query", "value"], ["q_proj", "v_proj"], ["q_lin", "v_lin"]):
        if set(pair) <= names:
            return pair
    return "all-linear"


def _peft_config(strategy: str, cfg: TrainConfig, encoder: nn.Module):
    """The peft configuration of a peft strategy (the encoder is a feature extractor)."""
    from peft import (IA3Config, LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig,
                      PromptTuningInit, TaskType)

    task = TaskType.FEATURE_EXTRACTION
    if strategy == "lora":
        return LoraConfig(task_type=task, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=_lora_targets(encoder))
    if strategy == "ia3":  # keys, values and the FFN output, as peft knows them per architecture
        return IA3Config(task_type=task)
    if strategy == "prefix":
        return PrefixTuningConfig(task_type=task, num_virtual_tokens=cfg.virtual_tokens)
    if strategy == "prompt":  # start from real word embeddings: random N(0, 1) vectors swamp the text
        return PromptTuningConfig(task_type=task, num_virtual_tokens=cfg.virtual_tokens,
                                  prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB)
    return PromptEncoderConfig(task_type=task, num_virtual_tokens=cfg.virtual_tokens,
                               encoder_hidden_size=encoder.config.hidden_size)


def build_model(strategy: str, params: Params, num_labels: int, vocab: dict | None = None) -> TextClassifier:
    """The classifier with the right parts trainable. `vocab` (scratch only): vocab_size, pad_token_id."""
    cfg = params.train
    encoder = load_encoder(params.model, from_scratch=strategy == "scratch",
                           config_overrides=vocab if strategy == "scratch" else None)
    if strategy == "scratch":
        _reinit(encoder, cfg.scratch_init)
    if strategy in PEFT_STRATEGIES:  # peft freezes the encoder and adds its own trainable parts
        from peft import get_peft_model

        encoder = get_peft_model(encoder, _peft_config(strategy, cfg, encoder))
    model = TextClassifier(encoder, num_labels)
    if strategy in ("head", "adapter"):
        for p in model.encoder.parameters():
            p.requires_grad = False
    if strategy == "adapter":
        from driftfit.adapters import add_adapters

        add_adapters(model, cfg.adapter_size)
    elif strategy == "partial":
        for name, p in model.encoder.named_parameters():
            layer = _LAYER.search(name)
            if "embeddings" in name or (layer and int(layer.group(1)) < cfg.partial_frozen_layers):
                p.requires_grad = False
    return model


def _depth(name: str, n_layers: int) -> int:
    """How far below the top layer a parameter sits: 0 top layer (and above), n_layers embeddings."""
    if "embeddings" in name:
        return n_layers
    layer = _LAYER.search(name)
    return n_layers - 1 - int(layer.group(1)) if layer else 0


def make_optimizer(model: TextClassifier, strategy: str, cfg: TrainConfig, device: torch.device):
    """AdamW with the head (and new modules) on a larger learning rate; no decay on biases and norms.

    For full/partial with layer_lr_decay < 1, lower layers learn slower: lr * decay ** depth, where
    depth counts layers down from the top and the embeddings are the lowest.
    """
    if strategy == "scratch":
        body_lr = cfg.scratch_learning_rate
    elif strategy == "lora":
        body_lr = cfg.lora_learning_rate
    elif strategy in NEW_MODULE_STRATEGIES:
        body_lr = cfg.head_learning_rate
    else:
        body_lr = cfg.learning_rate
    decays = strategy in ("full", "partial") and cfg.layer_lr_decay < 1
    n_layers = model.encoder.config.num_hidden_layers
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.head_learning_rate if name.startswith("head.") else body_lr
        if decays and name.startswith("encoder."):
            lr *= cfg.layer_lr_decay ** _depth(name, n_layers)
        decay = 0.0 if p.ndim < 2 else cfg.weight_decay
        groups.setdefault((lr, decay), []).append(p)
    param_groups = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    return torch.optim.AdamW(param_groups, fused=device.type == "cuda")
