"""Where torch runs: train.device / predict.device / serve.device (auto: CUDA when one is visible)."""

from __future__ import annotations

from driftfit.errors import ConfigError


def pick_device(wanted: str = "auto"):
    """torch.device for `wanted` (auto | cpu | cuda); 'cuda' without a visible CUDA device is a ConfigError."""
    import torch

    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA device is visible (use 'auto' or 'cpu')")
    if wanted == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")
