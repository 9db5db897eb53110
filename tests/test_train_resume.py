"""Resumable training: an interrupted run continues from its last checkpoint and ends where an
uninterrupted run ends (CPU, fixed seed)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from driftfit.training import checkpoint_dir
from driftfit.pipeline import runner
from driftfit.modalities.text import augment
from driftfit.data import splits as prepare
from driftfit.modalities.text import recipe as train
from driftfit.io import read_json, write_json
from tests.conftest import write_params

RESUMABLE = {"train.max_steps": 4, "train.checkpoint_steps": 2, "train.device": "cpu"}


def _weights(model_dir) -> dict[str, torch.Tensor]:
    model_dir = Path(model_dir)
    return {**load_file(str(model_dir / "encoder" / "model.safetensors")),
            **{f"head.{k}": v for k, v in load_file(str(model_dir / "head.safetensors")).items()}}


def _same_weights(a, b) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class Interrupted(Exception):
    pass


# partial: dropout and many weights; prompt: a peft model whose checkpoints hold a shared tensor
@pytest.mark.parametrize("strategy", ["partial", "prompt"])
def test_crashed_run_resumes_from_its_checkpoint(prepared_params, make_params, strategy):
    whole = make_params({**RESUMABLE, "paths.candidate": "models/whole"})
    runner("augment")(whole)
    write_json(whole.paths.decision, {"strategy": strategy, "reason": "test"})
    reference = runner("train")(whole)
    assert reference["resumed_from"] is None and not checkpoint_dir(whole.paths.candidate).exists()

    params = make_params({**RESUMABLE, "paths.candidate": "models/candidate"})

    def crash_at_step_3(step, total, logs):
        if step == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        runner("train")(params, progress=crash_at_step_3)
    ckpt = checkpoint_dir(params.paths.candidate)
    assert (ckpt / "checkpoint-2").is_dir() and not Path(params.paths.candidate).exists()
    # weights as safetensors; optimizer/scheduler/RNG state are Trainer's .pt files (read with weights_only)
    assert {"model.safetensors", "optimizer.pt", "trainer_state.json"} <= {f.name for f in (ckpt / "checkpoint-2").iterdir()}

    log = runner("train")(params)
    assert log["resumed_from"] == "checkpoint-2" and log["steps"] == 4
    assert log["val_accuracy"] == reference["val_accuracy"]
    assert _same_weights(params.paths.candidate, whole.paths.candidate)
    if strategy == "prompt":  # the learned virtual tokens too
        adapter = "adapter/adapter_model.safetensors"
        assert torch.equal(load_file(f"{params.paths.candidate}/{adapter}")["prompt_embeddings"],
                           load_file(f"{whole.paths.candidate}/{adapter}")["prompt_embeddings"])
    assert not ckpt.exists()  # a finished run leaves no checkpoints behind


def test_checkpoints_of_another_configuration_are_not_resumed(prepared_params, make_params):
    params = make_params(RESUMABLE)
    runner("augment")(params)
    write_json(params.paths.decision, {"strategy": "ia3", "reason": "test"})
    stale = checkpoint_dir(params.paths.candidate) / "checkpoint-4"
    stale.mkdir(parents=True)
    (stale.parent / "fingerprint.txt").write_text("another run\n")
    log = runner("train")(params)
    assert log["resumed_from"] is None and log["steps"] == 4


def test_half_written_checkpoints_are_ignored(tmp_path):
    folder = tmp_path / "candidate.checkpoints"
    for step, state in ((2, '{"global_step": 2}'), (4, None), (6, '{"global_st')):  # 4, 6: killed mid-save
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if state:
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert train._last_checkpoint(folder, "run") is None  # no fingerprint yet: nothing is trusted
    (folder / "checkpoint-2").mkdir(parents=True)
    (folder / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (folder / "checkpoint-4").mkdir()
    assert train._last_checkpoint(folder, "run") == str(folder / "checkpoint-2")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-2", "fingerprint.txt"]


def _driftfit_train(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "driftfit.cli", "train"], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})


# `driftfit train` in a child that SIGKILLs itself while Trainer saves checkpoint N: its weights and optimizer state
# are written, its trainer_state.json (written last, what marks a checkpoint complete) is about to be.
KILLED_WHILE_SAVING = """
import os, signal, sys
from pathlib import Path

from transformers.trainer_callback import TrainerState

save, at = TrainerState.save_to_json, f"checkpoint-{sys.argv[1]}"

def save_to_json(self, path):
    if Path(path).parent.name == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, path)

TrainerState.save_to_json = save_to_json
from driftfit import cli

sys.exit(cli.main(["train"]))
"""


@pytest.mark.slow
def test_killed_cli_run_resumes_and_matches_an_uninterrupted_run(tmp_path, default_data_dir):
    """`driftfit train` killed with SIGKILL while it saves its second checkpoint (checkpoint-4, half-written): the
    re-run ignores the half-written one, resumes from checkpoint-2 and ends identically to an uninterrupted run."""
    from driftfit.config import load_params

    projects = {}
    for name in ("whole", "killed"):
        root = tmp_path / name
        (root / "data").mkdir(parents=True)
        os.symlink(default_data_dir, root / "data" / "default")
        params = load_params(write_params(root, {**RESUMABLE, "train.max_steps": 8}))
        runner("prepare")(params)
        runner("augment")(params)
        write_json(params.paths.decision, {"strategy": "partial", "reason": "test"})
        projects[name] = (root, params)

    root, whole = projects["whole"]
    done = _driftfit_train(root)
    assert done.returncode == 0, done.stderr[-2000:]

    root, params = projects["killed"]
    ckpt = checkpoint_dir(params.paths.candidate)
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_SAVING, "4"], cwd=root, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]  # it reached checkpoint-4's save
    assert not Path(params.paths.candidate).exists()
    assert (ckpt / "checkpoint-2" / "trainer_state.json").is_file()  # complete
    half = {f.name for f in (ckpt / "checkpoint-4").iterdir()}
    assert "model.safetensors" in half and "trainer_state.json" not in half  # half-written

    again = _driftfit_train(root)
    assert again.returncode == 0, again.stderr[-2000:]
    log, reference = read_json(Path(params.paths.candidate) / "train_log.json"), read_json(
        Path(whole.paths.candidate) / "train_log.json")
    assert log["resumed_from"] == "checkpoint-2" and reference["resumed_from"] is None
    assert log["steps"] == reference["steps"] == 8
    assert log["val_accuracy"] == reference["val_accuracy"]
    assert _same_weights(params.paths.candidate, whole.paths.candidate)
