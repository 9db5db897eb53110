"""What every modality's training shares: replay from the memory, class weights, the converged head, the
hyperparameter search, and peft's quirks."""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

Progress = Callable[[int, int, dict], None]  # progress(step, total_steps, logs): a progress bar or artifact


@contextmanager
def quiet_peft() -> Iterator[None]:
    """peft 0.21 reads `is_gradient_checkpointing`, which transformers 5 deprecates with a FutureWarning on
    every read; our code uses the new name, so this one warning is peft's, not ours, and is hidden."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def world_size() -> int:
    """Processes training together (torchrun / accelerate launch set WORLD_SIZE); 1 when run plainly."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def checkpoint_dir(candidate: str | Path) -> Path:
    """Where resumable checkpoints live: beside the candidate, outside its atomically replaced folder."""
    return Path(f"{candidate}.checkpoints")
