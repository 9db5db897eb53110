"""Fault injection: processes killed mid-step, a removed or corrupted pointer, two promotions at once (a rollback
followed by `dvc repro` is in test_end_to_end, on its dvc-built project).

After each fault: no registry version is lost, the serving champion is the expected one, no step's output
is half-written, and the next run cleans up what the killed one left (temp folders named by their pid).
Kill moments are counted, never timed: every file operation of a promotion in turn; for the real train and
evaluate steps (shrunk config), named moments (a training step, the write of the last file into the output's
temp folder, the rename that puts the new folder in place), each checked to have left the mess it should.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from driftfit.pipeline import runner
from driftfit.state import registry
from driftfit.errors import DriftfitError
from driftfit.io import read_json, write_json
from tests.test_registry import record_files, stage_candidate

# Runs promote in a child that SIGKILLs itself on the K-th file operation that changes the disk.
KILL_AT_OPERATION = """
import os, shutil, signal, sys
from driftfit.pipeline import runner
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
runner("promote")(load_params(sys.argv[1]))
print("finished after", count[0], "operations")
"""


def promote_in_child(params_file: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KILL_AT_OPERATION, str(params_file), str(kill_at)],
                          capture_output=True, text=True, timeout=120)


def test_promote_killed_at_every_file_operation_loses_nothing(make_params, tmp_path):
    p = make_params()
    stage_candidate(p, 0.5)
    assert runner("promote")(p)["champion"] == "v1"
    reg = Path(p.paths.registry)
    stage_candidate(p, 0.9, 0.5)
    full = promote_in_child(tmp_path / "params.yaml", 10**9)  # how many operations a whole promotion makes
    assert full.returncode == 0, full.stderr
    operations = int(full.stdout.split()[-2])
    assert registry.champion_info(reg)["version"] == "v2"
    registry.rollback(p)  # back to v1; the next candidate is new
    kept = record_files(reg)
    staged = []  # per kill: did it leave something staged (a version or pointer half-way to its place)?
    for k in range(1, operations + 1):
        stage_candidate(p, 0.95, 0.5)  # a new model each time (random head bytes)
        killed = promote_in_child(tmp_path / "params.yaml", k)
        assert killed.returncode == -signal.SIGKILL, (k, killed.stdout, killed.stderr)  # the kill landed at op k
        staged.append(bool([q for q in reg.iterdir() if q.name.startswith(registry.TEMP_PREFIXES)]))
        info = registry.champion_info(reg)  # the pointer is always whole and points at a whole version
        assert record_files(reg).items() >= kept.items(), f"a version changed or vanished (kill at op {k})"
        assert info["version"] in registry.versions(reg)
        finished = runner("promote")(p)  # the next run completes or redoes the promotion
        assert finished["champion"] == registry.champion_info(reg)["version"]
        assert registry.champion_info(reg)["version"] == registry.versions(reg)[-1]
        assert not [q for q in reg.iterdir() if q.name.startswith(registry.TEMP_PREFIXES)]
        kept = record_files(reg)
        registry.rollback(p, "v1")
    assert len(registry.versions(reg)) >= 3
    assert any(staged) and not all(staged)  # some kills landed mid-write, some between whole steps


@pytest.mark.parametrize("damage", ["remove", "truncate", "garbage"])
def test_a_removed_or_corrupted_pointer_stops_promote_and_repair_restores_it(make_params, damage):
    p = make_params()
    for f1, champ in ((0.5, None), (0.6, 0.5)):
        stage_candidate(p, f1, champ)
        runner("promote")(p)
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
        runner("promote")(p)
    assert record_files(reg) == before
    assert registry.repair(reg)["champion"] == "v2"
    assert runner("promote")(p)["champion"] == "v3" and registry.versions(reg) == ["v1", "v2", "v3"]


CONCURRENT_PROMOTE = """
import json, sys
from driftfit.pipeline import runner
from driftfit.config import load_params
print(json.dumps(runner("promote")(load_params(sys.argv[1]))))
"""


def test_two_promotions_at_once_add_one_version(make_params, tmp_path):
    p = make_params()
    stage_candidate(p, 0.5)
    runner("promote")(p)
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


# ---- the real train and evaluate steps, killed at named moments -------------------------------------

def _arm(output: Path, moment: str) -> None:
    """In this process, from now on: SIGKILL itself at `moment`, one of
      train-step:N  when Trainer starts its N-th training step;
      write:NAME    when a file named NAME (or its temp file, ".NAME.*") is about to be written inside OUTPUT's
                    temp folder (".<output>.tmp-<pid>-*");
      swap-in       at the rename that moves OUTPUT's temp folder into place (the old OUTPUT was moved aside)."""
    import builtins

    tmp_prefix = f".{output.name}.tmp-{os.getpid()}-"

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def writing(path) -> None:
        try:
            rel = Path(os.path.abspath(os.fsdecode(path))).relative_to(output.parent)
        except (TypeError, ValueError):
            return
        if moment.startswith("write:") and len(rel.parts) > 1 and rel.parts[0].startswith(tmp_prefix):
            wanted = moment[len("write:"):]
            if rel.name == wanted or rel.name.startswith(f".{wanted}."):
                die()

    real_open, real_os_open = builtins.open, os.open

    def open_(file, mode="r", *args, **kwargs):
        if not isinstance(file, int) and any(c in mode for c in "wax+"):
            writing(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writing(path)
        return real_os_open(path, flags, *args, **kwargs)

    def moving(real):
        def move(src, dst, *args, **kwargs):
            if moment == "swap-in" and os.path.abspath(os.fsdecode(dst)) == str(output) \
                    and Path(os.fsdecode(src)).name.startswith(tmp_prefix):
                die()
            writing(dst)
            return real(src, dst, *args, **kwargs)
        return move

    builtins.open, os.open, os.replace, os.rename = open_, os_open, moving(os.replace), moving(os.rename)
    if moment.startswith("train-step:"):
        from transformers import Trainer

        real_step, steps, last = Trainer.training_step, [0], int(moment.split(":")[1])

        def training_step(self, *args, **kwargs):
            steps[0] += 1
            if steps[0] == last:
                die()
            return real_step(self, *args, **kwargs)

        Trainer.training_step = training_step


def kill_at(run_step, params, output: Path, moment: str) -> int:
    """Run the step (`run_step(params)`, e.g. runner("train")) in a forked child (this process's imports, none paid
    again) that SIGKILLs itself at `moment` (see _arm); return its pid. A child that reaches no such moment exits
    0 or 1, which fails the test: every kill must land where it says."""
    import torch

    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            torch.set_num_threads(1)  # the parent's thread pool does not survive a fork
            _arm(output, moment)
            run_step(params)
            os._exit(0)
        except BaseException:
            import traceback

            traceback.print_exc()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
        f"{run_step.__module__} not killed at {moment}: wait status {status}"
    return pid


def folder_files(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under folder."""
    import hashlib

    return {q.relative_to(folder).as_posix(): hashlib.sha256(q.read_bytes()).hexdigest()
            for q in sorted(folder.rglob("*")) if q.is_file()}


def leftovers(output: Path, kind: str, pid: int) -> list[Path]:
    """A killed run's `.<output>.<kind>-<pid>*` entries beside output."""
    return sorted(output.parent.glob(f".{output.name}.{kind}-{pid}*"))


def dead_trainer_folders(pids: list[int]) -> list[str]:
    return [p.name for p in Path(tempfile.gettempdir()).glob("driftfit-trainer-*")
            if any(p.name.startswith(f"driftfit-trainer-{pid}-") for pid in pids)]


def test_train_and_evaluate_killed_at_named_moments(prepared_params, make_params, tmp_path):
    """Each kill lands at its moment and leaves what that moment leaves (a temp folder mid-write, the old folder
    moved aside, a trainer folder); the outputs stay the old ones byte for byte, or the next run puts them back;
    the run after the kills removes every leftover and completes."""

    # two steps of ia3 are promoted for sure (what is under test is what surrounds the gate, not the gate)
    p = make_params({"promote.beat_baseline": False, "promote.test": "point", "promote.max_forgetting": 100.0,
                     "evaluate.latency_examples": 0})
    runner("augment")(p)
    write_json(p.paths.decision, {"strategy": "ia3", "reason": "test"})  # a Trainer strategy: real steps
    runner("train")(p)
    runner("evaluate")(p)
    assert runner("promote")(p)["promoted"]                 # a champion serves while the next runs are killed
    reg = Path(p.paths.registry)
    versions, serving = record_files(reg), registry.champion_info(reg)
    candidate, evaluation = Path(p.paths.candidate).resolve(), Path(p.paths.evaluation).resolve()
    good_candidate, good_evaluation = folder_files(candidate), folder_files(evaluation)
    good_metrics = Path(p.paths.metrics).read_bytes()
    assert "train_log.json" in good_candidate and "latency.json" in good_evaluation

    def unchanged():
        assert folder_files(candidate) == good_candidate and folder_files(evaluation) == good_evaluation
        assert Path(p.paths.metrics).read_bytes() == good_metrics
        assert record_files(reg) == versions and registry.champion_info(reg) == serving   # no version lost

    pids = []
    # Between the two renames: the old candidate is aside, none in place; the next run of the step puts it back.
    pids.append(kill_at(runner("train"), p, candidate, "swap-in"))
    assert not candidate.exists()
    [aside] = leftovers(candidate, "old", pids[-1])
    assert folder_files(aside) == good_candidate
    # Mid-training: the killed run's temp candidate and Trainer folder are left, empty of a train log; the old
    # candidate is back in place (the killed run restored it before starting).
    pids.append(kill_at(runner("train"), p, candidate, "train-step:2"))
    [partial] = leftovers(candidate, "tmp", pids[-1])
    assert not (partial / "train_log.json").exists() and dead_trainer_folders(pids[-1:])
    unchanged()
    # Mid-write: the model files are in the temp folder, the train log (written last) is not.
    pids.append(kill_at(runner("train"), p, candidate, "write:train_log.json"))
    [partial] = leftovers(candidate, "tmp", pids[-1])
    written = folder_files(partial)
    assert "head.safetensors" in written and "train_log.json" not in written
    unchanged()
    # evaluate, mid-write: all but its last file, latency.json (the new champion is scored now too)
    pids.append(kill_at(runner("evaluate"), p, evaluation, "write:latency.json"))
    [partial] = leftovers(evaluation, "tmp", pids[-1])
    written = folder_files(partial)
    assert "champion_test.json" in written and "latency.json" not in written
    unchanged()

    runner("train")(p)  # the next runs remove what the killed ones left, and complete
    runner("evaluate")(p)
    left = [q.name for folder in (candidate.parent, evaluation.parent) for q in folder.iterdir()
            if ".tmp-" in q.name or ".old-" in q.name]
    assert left == [] and dead_trainer_folders(pids) == []
    assert read_json(candidate / "train_log.json")["trained"] is True
    assert set(folder_files(evaluation)) == set(written) | {"latency.json"}  # what the killed run had not finished
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
        runner("promote")(p)
    reg = Path(p.paths.registry)
    (reg / "champion.json").write_text("{")
    with pytest.raises(DriftfitError, match="is not valid JSON"):
        registry.rollback(p)
    assert record_files(reg)  # nothing removed