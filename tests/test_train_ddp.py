"""Distributed data-parallel training: two processes on CPU with the gloo backend, launched by torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from driftfit.pipeline import runner

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_two_process_ddp_training_writes_one_candidate(prepared_params, tmp_path):
    from driftfit.modalities.text import augment
    from driftfit.io import write_json

    params = prepared_params
    runner("augment")(params)
    write_json(params.paths.decision, {"strategy": "partial"})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                           "--master_port", str(free_port()), "-m", "driftfit.cli", "train",
                           "--params", str(tmp_path / "params.yaml"), "-S", "train.max_steps=2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = json.loads((Path(params.paths.candidate) / "train_log.json").read_text())
    assert log["world_size"] == 2 and log["steps"] == 2 and log["trained"]
    # One candidate, written once: no leftover temporary folders from the other rank.
    siblings = [p.name for p in Path(params.paths.candidate).parent.iterdir()]
    assert siblings == [Path(params.paths.candidate).name], siblings
    from driftfit.modalities.text.model import load_classifier

    model, tokenizer, labels = load_classifier(params.paths.candidate)
    assert len(labels) == model.head.out_features
