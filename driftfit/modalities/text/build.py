"""The classifier each strategy starts from, and its optimizer.

What is frozen, what peft adds (modalities/text/strategies.py) and whether the weights start fresh (He/Xavier,
driftfit.strategies) make the model; then AdamW with one learning rate per kind of parameter: the head and freshly
made modules learn fast, the pretrained encoder slowly, lower layers slower still with `layer_lr_decay`.
modalities/text/recipe.py runs the loop on what this builds.
"""

from __future__ import annotations

import torch
from torch import nn

from driftfit.config import Params, TrainConfig
from driftfit.modalities.text.model import TextClassifier, load_encoder
from driftfit.modalities.text.strategies import BUILD
from driftfit.strategies import LAYER, spec
from driftfit.training import quiet_peft


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


def build_model(strategy: str, params: Params, num_labels: int, vocab: dict | None = None) -> TextClassifier:
    """The classifier with the right parts trainable, as the strategy's table entry says.
    `vocab` (fresh weights only): vocab_size, pad_token_id of a newly trained tokenizer."""
    entry, build = spec(strategy), BUILD[strategy]
    cfg = params.train
    encoder = load_encoder(params.model, from_scratch=entry.fresh_weights,
                           config_overrides=vocab if entry.fresh_weights else None)
    if entry.fresh_weights:
        _reinit(encoder, cfg.scratch_init)
    if build.peft is not None:  # peft freezes the encoder and adds its own trainable parts
        from peft import get_peft_model

        with quiet_peft():
            encoder = get_peft_model(encoder, build.peft(cfg, encoder))
    model = TextClassifier(encoder, num_labels)
    if build.prepare is not None:
        build.prepare(model, cfg)
    return model


def _depth(name: str, n_layers: int) -> int:
    """How far below the top layer a parameter sits: 0 top layer (and above), n_layers embeddings."""
    if "embeddings" in name:
        return n_layers
    layer = LAYER.search(name)
    return n_layers - 1 - int(layer.group(1)) if layer else 0


def make_optimizer(model: TextClassifier, strategy: str, cfg: TrainConfig, device: torch.device):
    """AdamW with the head (and new modules) on a larger learning rate; no decay on biases and norms.

    For full/partial with layer_lr_decay < 1, lower layers learn slower: lr * decay ** depth, where
    depth counts layers down from the top and the embeddings are the lowest.
    """
    entry = spec(strategy)
    body_lr = getattr(cfg, entry.learning_rate)
    decays = entry.layer_decay and cfg.layer_lr_decay < 1
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
