"""A hostile user against a project with two versions and two remembered batches: each case breaks a guarantee on
purpose (a deleted or forged file, an overlapping output, a stale candidate, a widening flow parameter, a link out
of the data roots, a booby-trapped file) and checks the run stops with one line naming what is wrong and how to
repair it, and that nothing is lost: the registry and the memory are byte for byte what they were.

The project is built once per module by two real shrunk `driftfit run`s (week 1: the default reference texts;
week 2: the default incoming texts, which bring labels v1 lacks); each test works on its own copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from contextlib import chdir, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from driftfit import cli
from driftfit.state import memory
from driftfit.state import registry
from driftfit.config import SourceConfig, load_params
from driftfit.errors import ConfigError, DataError
from driftfit.io import read_json, write_json
from tests.conftest import dvc, write_params

# A champion for sure each week: a head, judged on point estimates with forgetting allowed (what is under test
# here is what surrounds the gate, not the gate).
RUN = {"strategy.force": "head", "promote.beat_baseline": False, "promote.test": "point",
       "promote.max_forgetting": 100.0, "evaluate.latency_examples": 0, "shift.permutations": 10,
       "shift.sample_size": 32, "data.reference": None}
WEEK1 = {**RUN, "data.incoming.path": "data/default/reference.csv"}
WEEK2 = {**RUN, "data.incoming.path": "data/default/incoming.csv"}
KEPT = ("data/memory", "models/registry")  # what a failed run must never change


def digests(root: Path, folders=KEPT) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted((root / folder).rglob("*")) if p.is_file() and p.name != ".lock"}


def run(root: Path, capsys, *args: str) -> tuple[int, str]:
    """`driftfit <args> --params <root>/params.yaml` in this process: its exit status and its error line(s)."""
    capsys.readouterr()
    code = cli.main([*args, "--params", str(root / "params.yaml")])
    err = capsys.readouterr().err
    return code, "\n".join(line for line in err.splitlines() if ": error: " in line)


@pytest.fixture(scope="module")
def project(tmp_path_factory, default_data_dir) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "project"
    shutil.copytree(default_data_dir, root / "data" / "default")
    for week in (WEEK1, WEEK2):
        write_params(root, week)
        assert cli.main(["run", "--params", str(root / "params.yaml")]) == 0
    assert registry.versions(root / "models" / "registry") == ["v1", "v2"]
    assert registry.champion_info(root / "models" / "registry")["version"] == "v2"
    assert len(memory.state(root / "data" / "memory")["batches"]) == 2
    return root


@pytest.fixture
def copy(project, tmp_path) -> Path:
    """A copy of the project for one test to break."""
    return Path(shutil.copytree(project, tmp_path / "project", symlinks=True))


def one_line(error: str, *fragments: str) -> None:
    assert error.count("\n") == 0 and "Traceback" not in error, error
    for fragment in fragments:
        assert fragment in error, error


# ---- the memory verifies itself ---------------------------------------------------------------------

def test_a_missing_memory_pointer_is_refused_then_rebuilt_never_wiped(copy, capsys):
    kept = digests(copy, ["data/memory/batches"])
    (copy / "data" / "memory" / "memory.json").unlink()
    code, error = run(copy, capsys, "run")
    assert code == 2
    one_line(error, "memory.json is missing but 2 remembered batch folder(s) exist", "driftfit memory repair",
             "dvc checkout")
    assert digests(copy, ["data/memory/batches"]) == kept and not (copy / "models" / "registry" / "v3").exists()

    code, _ = run(copy, capsys, "memory", "repair")
    assert code == 0
    rebuilt = memory.state(copy / "data" / "memory")
    recorded = registry.version_record(copy / "models" / "registry", "v2")["memory"]
    assert rebuilt["batches"] == recorded["batches"] and rebuilt["version"] > recorded["version"]
    assert run(copy, capsys, "prepare")[0] == 0  # the week goes on against what the champion learnt
    assert read_json(copy / "data" / "prepared" / "manifest.json")["reference"]["from"] == "memory"
    assert run(copy, capsys, "memory", "repair")[0] == 2  # a sound pointer is left alone


@pytest.mark.parametrize("pointer, fragment", [
    ("{}", "has version = None"),
    ("[]", "holds list, not a memory record"),
    ('{"version": 2, "batches": "oops"}', "has no 'batches' list"),
    ('{"version": 2, "batches": ["x"], "folders": {"x": "../../.."}}', "not a mapping of batch ids to folder"),
])
def test_a_memory_pointer_that_is_no_record_is_a_one_line_error(copy, capsys, pointer, fragment):
    (copy / "data" / "memory" / "memory.json").write_text(pointer)
    kept = digests(copy)
    code, error = run(copy, capsys, "prepare")
    assert code == 2
    one_line(error, fragment, "driftfit memory repair")
    assert digests(copy) == kept


def _batch_folder(root: Path, which: int = 0) -> Path:
    current = memory.state(root / "data" / "memory")
    return root / "data" / "memory" / "batches" / memory.folder(current, current["batches"][which])


def test_a_deleted_batch_folder_a_changed_text_and_a_damaged_file_are_refused(copy, capsys):
    folder = _batch_folder(copy)
    train = folder / "train.parquet"
    original = train.read_bytes()

    df = pd.read_parquet(train)
    df.loc[0, "text"] = df.loc[0, "text"] + "!"  # one flipped text: a valid file with other rows
    df.to_parquet(train, index=False)
    code, error = run(copy, capsys, "prepare")
    assert code == 2
    one_line(error, f"{train} does not match the digest recorded", "dvc checkout")

    damaged = bytearray(original)
    damaged[-7] ^= 0xFF  # the Parquet footer: its length field
    train.write_bytes(bytes(damaged))
    code, error = run(copy, capsys, "prepare")
    assert code == 2
    one_line(error, f"{train} is not a readable Parquet file")

    train.write_bytes(original)
    shutil.rmtree(folder)
    code, error = run(copy, capsys, "prepare")
    assert code == 2
    one_line(error, f"remembered batch {folder.name.split('.v')[0]}", "is missing")


def test_an_emptied_memory_is_not_taken_for_a_first_week(copy, capsys):
    kept = digests(copy, ["models/registry"])
    shutil.rmtree(copy / "data" / "memory")
    code, error = run(copy, capsys, "run")
    assert code == 2
    one_line(error, "is at version 0 (0 batches), older than the version", "serving champion v2", "dvc checkout")
    assert digests(copy, ["models/registry"]) == kept and not (copy / "data" / "memory").exists()


def test_a_foreign_folder_in_the_memory_is_left_alone(copy, capsys):
    foreign = copy / "data" / "memory" / "batches" / "not-ours"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("a person's folder")
    write_params(copy, {**RUN, "data.incoming.path": "data/default/week3.csv"})
    texts = pd.read_csv(copy / "data" / "default" / "incoming.csv")
    texts.assign(text=texts["text"] + " please").to_csv(copy / "data" / "default" / "week3.csv", index=False)
    assert run(copy, capsys, "prepare")[0] == 0 and run(copy, capsys, "validate")[0] == 0
    assert run(copy, capsys, "remember")[0] == 0
    assert (foreign / "notes.txt").read_text() == "a person's folder"


# ---- outputs cannot clobber -------------------------------------------------------------------------

@pytest.mark.parametrize("step, overrides, fragment", [
    ("default-data", ["paths.default_data=."], "paths.default_data = '.' would replace the project folder"),
    ("default-data", ["paths.default_data=data"], "would replace data.roots entry 'data'"),
    ("train", ["paths.candidate=models/registry"], "paths.candidate = 'models/registry' is the same place as "
                                                   "paths.registry"),
    ("prepare", ["paths.prepared=data/memory"], "paths.memory = 'data/memory' is the same place as paths.prepared"),
    ("prepare", ["paths.prepared=.git/x"], "would replace the project's .git"),
    ("prepare", ["data.incoming.path=data/batches/week.csv", "paths.rejected=data/batches"],
     "paths.rejected = 'data/batches' holds data.incoming.path"),
])
def test_an_output_path_may_not_overlap_what_the_project_keeps(copy, capsys, step, overrides, fragment):
    (copy / ".git").mkdir()
    before = digests(copy, ["."])
    code, error = run(copy, capsys, step, *(arg for o in overrides for arg in ("-S", o)))
    assert code == 2
    one_line(error, fragment)
    assert digests(copy, ["."]) == before


# ---- nothing damaged serves ---------------------------------------------------------------------------

def test_a_damaged_version_is_never_served(copy, capsys):
    reg = copy / "models" / "registry"
    kept = digests(copy)
    (reg / "v1" / "head.safetensors").write_bytes(os.urandom(256))  # random bytes
    code, error = run(copy, capsys, "rollback", "--to", "v1")
    assert code == 2
    one_line(error, "v1's model files do not match the digest recorded", "dvc checkout")
    assert registry.champion_info(reg)["version"] == "v2"

    # valid weights, other values: a file that loads, with the champion's head negated
    from safetensors.torch import load_file, save_file

    head = reg / "v2" / "head.safetensors"
    save_file({k: -v for k, v in load_file(str(head)).items()}, str(head))
    code, error = run(copy, capsys, "run")  # the week stops at prepare, before the batch is remembered
    assert code == 2
    one_line(error, "v2's model files do not match the digest recorded")
    assert digests(copy, ["data/memory"]) == {k: v for k, v in kept.items() if k.startswith("data/memory")}

    (reg / "champion.json").unlink()  # a repair picks the newest sound version, and there is none
    assert run(copy, capsys, "registry", "repair")[0] == 2


def test_a_champion_pointer_with_a_broken_history_is_a_one_line_error(copy, capsys):
    pointer = copy / "models" / "registry" / "champion.json"
    write_json(pointer, {**read_json(pointer), "history": "oops"})
    code, error = run(copy, capsys, "prepare")
    assert code == 2
    one_line(error, "has a 'history' that is not a list", "driftfit registry repair")


def test_a_candidate_from_another_run_is_neither_scored_nor_promoted(copy, capsys):
    """`train` killed with SIGKILL leaves last week's candidate beside this week's decision: evaluate and promote
    refuse it. The same for a new batch prepared since, and for metrics that scored another candidate."""
    decision = copy / "reports" / "decision.json"
    kept = digests(copy)
    write_json(decision, {**read_json(decision), "strategy": "full", "reason": "this week's decision"})
    for step in ("evaluate", "promote"):
        code, error = run(copy, capsys, step)
        assert code == 2
        one_line(error, "models/candidate was trained for another run: the decision", "run 'driftfit train' again")
    assert digests(copy) == kept

    write_params(copy, WEEK1)  # another batch prepared since
    assert run(copy, capsys, "prepare")[0] == 0
    assert run(copy, capsys, "select-strategy")[0] == 0
    code, error = run(copy, capsys, "promote")
    assert code == 2 and "the prepared data (data/prepared) changed" in error

    assert run(copy, capsys, "train")[0] == 0  # trained for this run: scored, then changed behind the metrics
    assert run(copy, capsys, "evaluate")[0] == 0
    log = copy / "models" / "candidate" / "train_log.json"
    write_json(log, {**read_json(log), "note": "retrained after evaluate"})
    code, error = run(copy, capsys, "promote")
    assert code == 2
    one_line(error, "reports/metrics.json scored another candidate", "run 'driftfit evaluate' again")
    assert digests(copy, ["models/registry"]) == {k: v for k, v in kept.items() if k.startswith("models/registry")}


# ---- a flow run's parameters cannot widen what it may touch -------------------------------------------

@pytest.mark.parametrize("overrides, fragment", [
    ({"data.roots": ["/"]}, "may not change data.roots"),
    ({"data": {"roots": ["/"]}}, "may not change data.roots"),
    ({"model.trust_remote_code": True}, "may not change model.trust_remote_code"),
    ({"paths.default_data": "data/elsewhere"}, "may not change paths.default_data"),
    ({"paths": {"memory": "data/elsewhere"}}, "may not change paths.memory"),
    ({"data.incoming.path": "/etc/passwd"}, "data.incoming.path = '/etc/passwd': outside the data roots"),
    ({"data.incoming": {"path": "/etc/passwd", "text": "text"}}, "outside the data roots"),
    ({"flow.allow_overrides": ["paths"]}, "may not change flow.allow_overrides"),
])
def test_flow_overrides_may_not_change_what_a_run_may_touch(copy, overrides, fragment):
    from tasks.guard import flow_params

    with chdir(copy), pytest.raises(ConfigError, match=".*") as caught:
        flow_params("params.yaml", overrides)
    assert fragment in str(caught.value) and "root:" not in str(caught.value)


def test_a_flow_run_does_not_run_a_models_code_it_was_pointed_at(prefect_api, copy, tmp_path):
    """model.pretrained at a folder outside the project, trust_remote_code on: refused before anything loads."""
    from flows.retrain import retrain

    outside = tmp_path / "evil-model"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {"AutoModel": "m.M"}}))
    marker = tmp_path / "ran"
    (outside / "m.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    (outside / "model.safetensors").write_bytes(b"")
    kept = digests(copy)
    with chdir(copy):
        state = retrain(params_path="params.yaml", overrides={"model.pretrained": str(outside),
                                                              "model.trust_remote_code": True}, return_state=True)
    assert state.is_failed() and "may not change model.pretrained, model.trust_remote_code" in state.message
    assert not marker.exists() and digests(copy) == kept


def test_the_params_file_must_be_the_projects_and_allowed_keys_may_change(copy, tmp_path):
    from tasks.guard import flow_params

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(copy / "params.yaml", elsewhere / "params.yaml")
    with chdir(copy):
        with pytest.raises(ConfigError, match="outside the flow's working directory"):
            flow_params(str(elsewhere / "params.yaml"))
        shutil.copy(copy / "params.yaml", copy / "data" / "uploaded.yaml")
        with pytest.raises(ConfigError, match="inside the data roots"):
            flow_params("data/uploaded.yaml")
        write_params(copy, {**WEEK2, "flow.allow_overrides": ["paths.rejected"]})
        params = flow_params("params.yaml", {"paths.rejected": "reports/turned-away"})
        assert params.paths.rejected == str(copy / "reports" / "turned-away")
        with pytest.raises(ConfigError, match="may not change paths.registry"):
            flow_params("params.yaml", {"paths": {"rejected": "reports/x", "registry": "models/x"}})


# ---- links out of the data roots -----------------------------------------------------------------------

def _png(path: Path, value: int = 128, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def test_links_out_of_the_data_roots_are_refused_and_never_read(tmp_path):
    from driftfit.modalities.image.sources import load_images

    roots = tmp_path / "data"
    for label in ("cat", "dog"):
        for i in range(3):
            _png(roots / "animals" / label / f"{i}.png", 40 * i)
    outside = tmp_path / "outside" / "bird"
    for i in range(3):
        _png(outside / f"{i}.png", 200)
    (roots / "animals" / "bird").symlink_to(outside, target_is_directory=True)  # a class folder linked out
    source = SourceConfig(path=str(roots / "animals"))
    with pytest.raises(DataError, match="leads outside the data roots") as caught:
        load_images(source, within=[str(roots)])
    assert "bird" in str(caught.value)

    (roots / "animals" / "bird").unlink()
    (roots / "animals" / "cat" / "x.png").symlink_to("/etc/passwd")
    with pytest.raises(DataError, match="leads outside the data roots") as caught:
        load_images(source, within=[str(roots)])
    assert "root:" not in str(caught.value)

    (roots / "animals" / "cat" / "x.png").unlink()
    manifest = roots / "manifest.csv"
    manifest.write_text(f"path,label\nanimals/cat/0.png,cat\n{outside / '0.png'},bird\n")
    with pytest.raises(DataError, match="leads outside the data roots"):
        load_images(SourceConfig(path=str(manifest)), within=[str(roots)])
    assert len(load_images(source, within=[str(roots)])) == 6  # links inside the roots are fine


def test_a_file_that_is_not_an_image_is_never_quoted(tmp_path):
    from driftfit.modalities.image.data import open_image

    (tmp_path / "x.png").symlink_to("/etc/passwd")
    with pytest.raises(DataError) as caught:
        open_image(tmp_path / "x.png")
    assert "not an image" in str(caught.value) and "root:" not in str(caught.value)


# ---- booby-trapped files ----------------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def test_images_with_oversized_metadata_are_one_line_errors(tmp_path):
    from driftfit.modalities.image.data import open_image

    small = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(small, format="PNG")
    png = small.getvalue()
    head, rest = png[:33], png[33:]  # the signature and IHDR, then the image data
    bomb = _chunk(b"zTXt", b"note\0\0" + zlib.compress(b"\0" * (200 << 20), 9))  # inflates to 200 MB
    (tmp_path / "bomb.png").write_bytes(head + bomb + rest)
    with pytest.raises(DataError, match="refused while reading its header"):
        open_image(tmp_path / "bomb.png")

    exif = _chunk(b"eXIf", b"MM\0*" + os.urandom(30 << 20))  # 30 MB of metadata beside 64 pixels
    (tmp_path / "exif.png").write_bytes(head + exif + rest)
    with pytest.raises(DataError, match="more than its pixels take uncompressed"):
        open_image(tmp_path / "exif.png")


@pytest.mark.parametrize("labels, fragment", [
    (["caf\u00e9", "cafe\u0301"], "differ only in Unicode normalisation"),
    (["spam", "sp\u200bam"], "invisible character U+200B"),
    (["ham", "\u202eham"], "invisible character U+202E"),
])
def test_labels_that_look_the_same_are_refused(tmp_path, labels, fragment):
    from driftfit.modalities.image.sources import load_images
    from driftfit.modalities.text.loaders import load_table

    csv = tmp_path / "batch.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(6)], "label": labels * 3}).to_csv(csv, index=False)
    with pytest.raises(DataError, match=re.escape(fragment)):
        load_table(SourceConfig(path=str(csv)))
    for label in labels:
        _png(tmp_path / "images" / label / "a.png")
    with pytest.raises(DataError, match="invisible|differ only"):
        load_images(SourceConfig(path=str(tmp_path / "images")))


def test_config_files_that_expand_or_run_long_are_refused(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
                                                     for p, c in zip("abcdefgh", "bcdefghi")]
    path = write_params(tmp_path)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(raw) + "\n".join(bomb).replace("a: &a", "x_a: &a") + "\nshift:\n  seed: *i\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    assert time.perf_counter() - start < 5 and len(str(caught.value)) < 600
    assert "an alias (*" in str(caught.value) and "aliases are not accepted" in str(caught.value)

    path.write_text("# padding\n" * (1 << 20))
    with pytest.raises(ConfigError, match="expected a params file of at most 1,048,576 bytes"):
        load_params(path)


def test_absurd_values_and_pickled_models_fail_when_params_load(tmp_path, capsys):
    path = write_params(tmp_path)
    with pytest.raises(ConfigError, match="train.learning_rate' = 1000000000.0: Input should be less than or equal "
                                          "to 1"):
        load_params(path, {"train.learning_rate": 1e9})
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "pytorch_model.bin").write_bytes(b"pickled")
    with pytest.raises(ConfigError, match="has only pickled weights"):
        load_params(path, {"model.pretrained": str(model)})


# ---- read-only state, and one run at a time ---------------------------------------------------------------

@contextmanager
def read_only(folder: Path):
    """The folder may not be changed, even by root (chattr +i); skipped where neither works."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available on this file system")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)


def test_a_read_only_memory_is_a_one_line_error(copy, capsys):
    write_params(copy, {**RUN, "data.incoming.path": "data/default/week3.csv"})
    texts = pd.read_csv(copy / "data" / "default" / "incoming.csv")
    texts.assign(text=texts["text"] + " today").to_csv(copy / "data" / "default" / "week3.csv", index=False)
    assert run(copy, capsys, "prepare")[0] == 0 and run(copy, capsys, "validate")[0] == 0
    kept = digests(copy)
    with read_only(copy / "data" / "memory"):
        code, error = run(copy, capsys, "remember")
    assert code == 2
    one_line(error, "step 'remember': permission denied on", "data/memory")
    assert digests(copy) == kept


HOLD = """
import sys, time
from driftfit.lock import project_lock
with project_lock(sys.argv[1], "a test's long run"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_one_run_at_a_time_in_a_project(copy, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(copy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, error = run(copy, capsys, "prepare")
        assert code == 2
        one_line(error, "is busy: a test's long run (pid", "wait for it to finish")
    finally:
        holder.kill()
        holder.wait()
    assert run(copy, capsys, "prepare")[0] == 0  # the lock went with its process


def test_a_torchrun_group_shares_rank_0s_lock(tmp_path, monkeypatch):
    """Under torchrun every rank runs the step: rank 0 holds the project lock, the other ranks run under it; a
    single process (or rank 0 of a group) is refused while another run holds the project."""
    from driftfit.lock import Busy, project_lock

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")
        with project_lock(tmp_path, "rank 1 of a torchrun group"):
            pass
        for rank in ("0", None):
            if rank is None:
                monkeypatch.delenv("WORLD_SIZE")
                monkeypatch.delenv("RANK")
            else:
                monkeypatch.setenv("RANK", rank)
            with pytest.raises(Busy, match="a test's long run"):
                with project_lock(tmp_path, "another run"):
                    pass
    finally:
        holder.kill()
        holder.wait()


def test_a_flow_run_holds_dvcs_lock_and_waits_for_none(copy):
    """While a flow run holds the project, `dvc repro` cannot start; while DVC's lock is held, a flow run cannot."""
    from driftfit.lock import Busy
    from tasks.stage import hold_project

    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    shutil.copy(Path(__file__).parents[1] / "dvc.yaml", copy / "dvc.yaml")
    init = dvc(copy, "init", "-q")
    assert init.returncode == 0, init.stderr
    params = load_params(copy / "params.yaml")
    with hold_project(params, str(copy / "params.yaml"), "the retrain flow"):
        repro = dvc(copy, "repro", timeout=120)
        assert repro.returncode != 0 and "Unable to acquire lock" in repro.stderr, repro.stderr
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from dvc.repo import Repo; "
                               "r = Repo(sys.argv[1]); r.lock.lock(); print('held', flush=True); time.sleep(60)",
                               str(copy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy, match="DVC's lock is held"):
            with hold_project(params, str(copy / "params.yaml"), "the retrain flow"):
                pass
    finally:
        holder.kill()
        holder.wait()
