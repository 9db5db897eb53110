"""train: train the candidate with the decision's strategy (and the search's best train.* values, when the search
ran) on the batch plus a replay of the memory, through the modality's recipe; write paths.candidate whole. A
strategy that keeps the champion writes only its training log. The log records the decision and the data the
candidate was trained for (driftfit.state.candidate), which evaluate and promote check."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from driftfit import modalities
from driftfit.config import Params
from driftfit.io import atomic_dir, read_json, write_json
from driftfit.state.candidate import binding
from driftfit.state.registry import champion_dir
from driftfit.strategies import spec
from driftfit.training import Progress, checkpoint_dir, is_main_process
from driftfit.training.replay import training_inputs


def run(params: Params, progress: Progress | None = None) -> dict:
    modality = modalities.get(params.task.modality)
    for_run = binding(params)  # the decision and data this candidate is for (evaluate and promote check it)
    decision = read_json(params.paths.decision)
    strategy = decision["strategy"]
    entry = spec(strategy)
    shift = read_json(params.paths.shift) if Path(params.paths.shift).is_file() else None
    train, val = training_inputs(params, modality, strategy, replay_all=decision.get("replay") == "all")
    if entry.trains and not is_main_process():
        # Distributed (DDP) training: every process trains on its shard and the loop keeps the weights in
        # step; only the main process writes the candidate, the others save into a throwaway folder.
        with tempfile.TemporaryDirectory(prefix="driftfit-rank-") as tmp:
            return modality.train(params, train, val, strategy, Path(tmp), progress=progress, shift=shift)
    with atomic_dir(params.paths.candidate) as tmp:
        if not entry.makes_model:
            train_log = {"strategy": strategy, "reason": decision.get("reason"), "trained": False}
        else:
            train_log = {**modality.train(params, train, val, strategy, tmp, progress=progress, shift=shift,
                                          champion=champion_dir(params.paths.registry),
                                          checkpoints=checkpoint_dir(params.paths.candidate),
                                          cache=params.paths.cache),
                         "trained": True}
        train_log["for_run"] = for_run
        write_json(tmp / "train_log.json", train_log)
    if params.train.checkpoint_steps > 0:  # the candidate is in place: its checkpoints are never needed again
        shutil.rmtree(checkpoint_dir(params.paths.candidate), ignore_errors=True)
    return train_log
