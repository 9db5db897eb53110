"""Where torch runs: train.device / predict.device / serve.device (auto: CUDA when one is visible)."""

from __future__ import annotations

from driftfit.errors import ConfigError


def pick_device(wanted: str = "auto", setting: str = "train.device"):
    """torch.device for `wanted` (auto | cpu | cuda); 'cuda' without a visible CUDA device is a ConfigError naming
    `setting`, the key (or argument) the value came from."""
    import torch

    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting} = 'cuda' but no CUDA device is visible (use 'auto' or 'cpu')")
    if wanted == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")
