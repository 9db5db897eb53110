"""Bottleneck adapters between the encoder's layers (Houlsby et al. 2019), a small module of our own.

Every transformer layer's output h becomes h + up(gelu(down(h))): a narrow detour with a residual.
The up-projection starts at zero, so before training the adapted encoder computes exactly what the
pretrained one did, and training starts from the pretrained model rather than from noise.

The adapters are attached with forward hooks and live on the classifier (`model.adapters`), not
inside the encoder: the encoder's weights and parameter names stay untouched, so it still saves
and loads as a plain transformers model, and the adapters are saved beside it
(`adapters.safetensors`). `driftfit.modalities.text.model.load_classifier` re-attaches them.
"""

from __future__ import annotations

import torch
from torch import nn


class BottleneckAdapter(nn.Module):
    """h + up(gelu(down(h))), with the up-projection zero-initialised (an identity at first)."""

    def __init__(self, hidden_size: int, size: int):
        super().__init__()
        self.down = nn.Linear(hidden_size, size)
        self.act = nn.GELU()
        self.up = nn.Linear(size, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers: its longest ModuleList (BERT: encoder.layer)."""
    stacks = [m for m in encoder.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise ValueError(f"{type(encoder).__name__} has no list of layers to put adapters between")
    return max(stacks, key=len)


def _after(adapter: BottleneckAdapter):
    """A forward hook that passes a layer's hidden states (a tensor, or a tuple's first item) through `adapter`."""
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (adapter(output[0]), *output[1:])
        return adapter(output)
    return hook


def add_adapters(model: nn.Module, size: int) -> nn.ModuleList:
    """Attach one adapter after each layer of `model.encoder`; they become `model.adapters`."""
    layers = encoder_layers(model.encoder)
    hidden = model.encoder.config.hidden_size
    model.adapters = nn.ModuleList(BottleneckAdapter(hidden, size) for _ in layers)
    for layer, adapter in zip(layers, model.adapters):
        layer.register_forward_hook(_after(adapter))
    return model.adapters
