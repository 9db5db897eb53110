"""Fault injection: processes killed mid-step, a removed or corrupted pointer, two promotions at once,
and a rollback followed by `dvc repro`.

After each fault: no registry version is lost, the serving champion is the expected one, no step's output
is half-written, and the next run cleans up what the killed one left (temp folders named by their pid).
Kill moments are seeded: every file operation of a promotion in turn, and seeded random delays for the
real train and evaluate steps (shrunk config).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from driftfit import promote, registry
from driftfit.errors import DriftfitError
from driftfit.io import read_json, write_json
from tests.test_registry import record_files, stage_candidate

# Runs promote in a child that SIGKILLs itself on the K-th file operation that changes the disk.
KILL_AT_OPERATION = """
import os, shutil, signal, sys
from driftfit import promote
from driftfit.config import load_params

limit, count = int(sys.argv[2]), [0]

def counted(fn):
    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapper

for name in ("rename", "replace", "fsync", "mkdir", "unlink"):
    setattr(os, name, counted(getattr(os, name)))
shutil.copy2 = counted(shutil.copy2)
promote.run(load_params(sys.argv[1]))
print("finished after", count[0], "operations")
"""


def promote_in_child(params_file: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KILL_AT_OPERATION, str(params_file), str(kill_at)],
                          capture_output=True, text=True, timeout=120)


def test_promote_killed_at_every_file_operation_loses_nothing(make_params, tmp_path):
    p = make_params()
    stage_candidate(p, 0.5)
    assert promote.run(p)["champion"] == "v1"
    reg = Path(p.paths.registry)
    stage_candidate(p, 0.9, 0.5)
    full = promote_in_child(tmp_path / "params.yaml", 10**9)  # how many operations a whole promotion makes
    assert full.returncode == 0, full.stderr
    operations = int(full.stdout.split()[-2])
    assert registry.champion_info(reg)["version"] == "v2"
    registry.rollback(p)  # back to v1; the next candidate is new
    kept = record_files(reg)
    for k in range(1, operations + 1):
        stage_candidate(p, 0.95, 0.5)  # a new model each time (random head bytes)
        killed = promote_in_child(tmp_path / "params.yaml", k)
        assert killed.returncode in (-signal.SIGKILL, 0), killed.stderr
        info = registry.champion_info(reg)  # the pointer is always whole and points at a whole version
        assert record_files(reg).items() >= kept.items(), f"a version changed or vanished (kill at op {k})"
        assert info["version"] in registry.versions(reg)
        finished = promote.run(p)  # the next run completes or redoes the promotion
        assert finished["champion"] == registry.champion_info(reg)["version"]
        assert registry.champion_info(reg)["version"] == registry.versions(reg)[-1]
        assert not [q for q in reg.iterdir() if q.name.startswith(registry.TEMP_PREFIXES)]
        kept = record_files(reg)
        registry.rollback(p, "v1")
    assert len(registry.versions(reg)) >= 3


@pytest.mark.parametrize("damage", ["remove", "truncate", "garbage"])
def test_a_removed_or_corrupted_pointer_stops_promote_and_repair_restores_it(make_params, damage):
    p = make_params()
    for f1, champ in ((0.5, None), (0.6, 0.5)):
        stage_candidate(p, f1, champ)
        promote.run(p)
    reg = Path(p.paths.registry)
    stage_candidate(p, 0.7, 0.6)
    before = record_files(reg)
    pointer = reg / "champion.json"
    if damage == "remove":
        pointer.unlink()
    elif damage == "truncate":
        pointer.write_text(pointer.read_text()[:40])
    else:
        pointer.write_bytes(os.urandom(64))
    with pytest.raises(registry.RegistryError, match="driftfit registry repair"):
        promote.run(p)
    assert record_files(reg) == before
    assert registry.repair(reg)["champion"] == "v2"
    assert promote.run(p)["champion"] == "v3" and registry.versions(reg) == ["v1", "v2", "v3"]


CONCURRENT_PROMOTE = """
import json, sys
from driftfit import promote
from driftfit.config import load_params
print(json.dumps(promote.run(load_params(sys.argv[1]))))
"""


def test_two_promotions_at_once_add_one_version(make_params, tmp_path):
    p = make_params()
    stage_candidate(p, 0.5)
    promote.run(p)
    stage_candidate(p, 0.9, 0.5)
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_PROMOTE, str(tmp_path / "params.yaml")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    verdicts = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        verdicts.append(json.loads(out))
    reg = Path(p.paths.registry)
    assert registry.versions(reg) == ["v1", "v2"] and registry.champion_info(reg)["version"] == "v2"
    assert sorted(v["promoted"] for v in verdicts) == [False, True]
    loser = next(v for v in verdicts if not v["promoted"])
    assert loser["reason"] == "kept the champion: the candidate is v2, which serves already"


# ---- the real train and evaluate steps, killed at seeded random moments ------------------------------

def kill_after(args: list[str], cwd: Path, seconds: float) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "driftfit.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.pid


def dead_trainer_folders(pids: list[int]) -> list[str]:
    return [p.name for p in Path(tempfile.gettempdir()).glob("driftfit-trainer-*")
            if any(p.name.startswith(f"driftfit-trainer-{pid}-") for pid in pids)]


def test_train_and_evaluate_killed_at_random_moments(prepared_params, tmp_path):
    from driftfit import augment, evaluate, train

    p = prepared_params
    augment.run(p)
    write_json(p.paths.decision, {"strategy": "head", "reason": "test"})
    train.run(p)
    evaluate.run(p)
    assert promote.run(p)["promoted"]                 # a champion serves while the next runs are killed
    reg = Path(p.paths.registry)
    versions, serving = record_files(reg), registry.champion_info(reg)
    candidate = Path(p.paths.candidate)
    good_log = read_json(candidate / "train_log.json")
    good_metrics = read_json(p.paths.metrics)
    rng = random.Random(10)
    pids = []
    for step in ("train", "evaluate", "train", "evaluate"):
        pids.append(kill_after([step], tmp_path, rng.uniform(3.0, 12.0)))
        # whatever the moment, the outputs are the old ones or whole new ones, never a mix
        log = read_json(candidate / "train_log.json")
        assert set(log) == set(good_log) and log["strategy"] == "head"
        assert set(read_json(p.paths.metrics)) == set(good_metrics)
        assert record_files(reg) == versions and registry.champion_info(reg) == serving   # no version lost
    time.sleep(0.2)
    train.run(p)  # the next run removes what the killed ones left
    evaluate.run(p)
    leftovers = [q.name for folder in (candidate.parent, Path(p.paths.evaluation).parent) for q in folder.iterdir()
                 if ".tmp-" in q.name or ".old-" in q.name]
    assert leftovers == [] and dead_trainer_folders(pids) == []
    assert read_json(candidate / "train_log.json")["trained"] is True
    assert record_files(reg) == versions and registry.champion_info(reg) == serving


def test_a_swap_killed_between_its_two_renames_gets_the_old_folder_back(tmp_path):
    """atomic_dir moves the target aside, then the new folder in: killed in between, the next run restores
    the old folder instead of deleting it."""
    from driftfit.io import atomic_dir

    target = tmp_path / "candidate"
    target.mkdir()
    (target / "model.bin").write_bytes(b"the old model")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    os.replace(target, tmp_path / f".candidate.old-{dead}")      # as a kill after the first rename leaves it
    with pytest.raises(RuntimeError):
        with atomic_dir(target):
            raise RuntimeError("this run fails too")
    assert (target / "model.bin").read_bytes() == b"the old model"
    assert [q.name for q in tmp_path.iterdir()] == ["candidate"]


def test_rollback_needs_a_sound_pointer(make_params):
    p = make_params()
    for f1, champ in ((0.5, None), (0.6, 0.5)):
        stage_candidate(p, f1, champ)
        promote.run(p)
    reg = Path(p.paths.registry)
    (reg / "champion.json").write_text("{")
    with pytest.raises(DriftfitError, match="is not valid JSON"):
        registry.rollback(p)
    assert record_files(reg)  # nothing removed


@pytest.mark.slow
def test_a_rollback_survives_the_next_dvc_repro(tmp_path):
    """v1 from `dvc repro`, a later v2, a rollback to v1: the next `dvc repro` re-runs promote (the registry
    changed), which must keep v1 and add no version (it once promoted the candidate again as v3)."""
    import shutil

    from tests.conftest import project_copy, write_params
    from tests.test_end_to_end import E2E, dvc

    root = project_copy(tmp_path)
    write_params(root, E2E)
    assert dvc(root, "repro").returncode == 0
    reg = root / "models" / "registry"
    v2 = tmp_path / "v2"
    shutil.copytree(reg / "v1", v2)
    (v2 / "version.json").unlink()
    (v2 / "train_log.json").write_text('{"note": "a later model"}')
    registry.add_version(reg, "v2", v2, {"version": "v2", "previous": "v1"}, "card")
    registry.set_champion(reg, "v2", action="promote", reason="a later run")
    out = subprocess.run([str(Path(sys.executable).parent / "driftfit"), "rollback"], cwd=root,
                         capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["champion"] == "v1", out.stderr
    again = dvc(root, "repro")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert registry.champion_info(reg)["version"] == "v1" and registry.versions(reg) == ["v1", "v2"]
    verdict = json.loads((root / "reports" / "promotion.json").read_text())
    assert not verdict["promoted"] and "the candidate is v1, which serves already" in verdict["reason"]
    assert "up to date" in dvc(root, "status").stdout.lower()
