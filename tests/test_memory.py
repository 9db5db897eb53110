"""The data memory: append, window, reservoir, the same batch twice, a crash mid-append, a rejected batch,
and the lineage a champion records."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from driftfit.pipeline import runner
from driftfit.state import memory
from driftfit.config import MemoryConfig
from driftfit.errors import DataError
from driftfit.io import read_json


def batch(tag: str, labels=("a", "b"), rows: int = 6) -> dict[str, pd.DataFrame]:
    """Distinct rows per batch and split."""
    return {split: pd.DataFrame({"text": [f"{tag} {split} text {i} {lab}" for lab in labels for i in range(rows)],
                                 "label": [lab for lab in labels for _ in range(rows)]})
            for split in memory.BATCH_SPLITS}


def test_append_and_the_same_batch_twice(tmp_path):
    root = tmp_path / "memory"
    assert memory.state(root) == {"version": 0, "batches": [], "history": []}
    first = memory.add_batch(root, batch("w1"), {"path": "data/w1.csv"}, MemoryConfig())
    assert first["added"] and first["version"] == 1
    again = memory.add_batch(root, batch("w1"), {"path": "data/w1-copy.csv"}, MemoryConfig())
    assert not again["added"] and again["batch"] == first["batch"] and "not added twice" in again["reason"]
    second = memory.add_batch(root, batch("w2"), {"path": "data/w2.csv"}, MemoryConfig())
    assert second["batches"] == [first["batch"], second["batch"]] and memory.state(root)["version"] == 2
    assert memory.batch_split(root, first["batch"], "test").equals(batch("w1")["test"])
    record = read_json(root / "batches" / first["batch"] / "batch.json")
    assert record["source"] == {"path": "data/w1.csv"} and record["rows"] == {"train": 12, "val": 12, "test": 12}
    lineage = memory.lineage(root)
    assert lineage["version"] == 2 and lineage["batches"] == second["batches"] and len(lineage["memory_sha256"]) == 64


def test_window_keeps_the_last_batches(tmp_path):
    root = tmp_path / "memory"
    ids = [memory.add_batch(root, batch(f"w{i}"), {}, MemoryConfig(keep="window", window=2))["batch"]
           for i in range(4)]
    state = memory.state(root)
    assert state["batches"] == ids[2:] and state["history"][-1]["dropped"] == [ids[1]]
    assert sorted(p.name for p in (root / "batches").iterdir()) == sorted(ids[2:])  # dropped folders are gone


def test_reservoir_bounds_training_rows_per_label(tmp_path):
    root = tmp_path / "memory"
    cfg = MemoryConfig(keep="reservoir", reservoir_per_class=8, seed=3)
    for i in range(4):
        memory.add_batch(root, batch(f"w{i}", rows=6), {}, cfg)
    state = memory.state(root)
    assert len(state["batches"]) == 4  # every period stays represented
    trains = pd.concat([memory.batch_split(root, b, "train", state) for b in state["batches"]])
    assert trains.groupby("label").size().to_dict() == {"a": 8, "b": 8}
    tests = pd.concat([memory.batch_split(root, b, "test", state) for b in state["batches"]])
    assert len(tests) == 4 * 12  # val/test are kept whole
    assert sorted(p.name for p in (root / "batches").iterdir()) == sorted(state["folders"].values())


CRASH = """
import os, signal, sys
import pandas as pd
from driftfit import io
from driftfit.state import memory
from driftfit.config import MemoryConfig
from driftfit.errors import DataError
from tests.test_memory import batch

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the batch folder is in place, the pointer not yet switched

memory.write_json = die
memory.add_batch(sys.argv[1], batch("w2"), {}, MemoryConfig())
"""


def test_a_crash_mid_append_leaves_the_memory_as_it_was(tmp_path):
    root = tmp_path / "memory"
    memory.add_batch(root, batch("w1"), {}, MemoryConfig())
    before = (root / "memory.json").read_bytes()
    out = subprocess.run([sys.executable, "-c", CRASH, str(root)], cwd=Path(__file__).parents[1],
                         capture_output=True, text=True)
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert (root / "memory.json").read_bytes() == before  # still the old memory
    assert len(memory.state(root)["batches"]) == 1
    after = memory.add_batch(root, batch("w2"), {}, MemoryConfig())  # the next change adds it cleanly
    assert after["added"] and len(after["batches"]) == 2
    assert sorted(p.name for p in (root / "batches").iterdir()) == sorted(after["batches"])


def image_batch(folder: Path, tag: int, shared: Path | None = None) -> dict[str, pd.DataFrame]:
    """Real PNG files (a different grey per image) in `folder`, as prepare lists them: path, label, sha256.
    `shared`: an image file that every split of this batch also lists (the same bytes as in another batch)."""
    from PIL import Image

    from driftfit.data.hashing import file_hash

    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for k, split in enumerate(memory.BATCH_SPLITS):
        rows = []
        for i, label in enumerate(("cat", "dog")):
            path = folder / f"{split}-{label}.png"
            Image.new("L", (8, 8), color=tag * 40 + k * 10 + i).save(path)
            rows.append((str(path), label))
        if shared is not None:
            rows.append((str(shared), "cat"))
        splits[split] = pd.DataFrame({"path": [p for p, _ in rows], "label": [lab for _, lab in rows],
                                      "sha256": [file_hash(p) for p, _ in rows]})
    return splits


def test_image_batches_are_kept_in_the_memory_by_content(tmp_path):
    """The memory holds copies of its images, so the batch's own folder may go; an image changed since prepare
    hashed it stops the change; images no kept batch lists are removed."""
    root, project = tmp_path / "memory", tmp_path
    portable = lambda p: os.path.relpath(p, project)  # noqa: E731  (as params.portable keeps project paths)
    readable = lambda p: str(project / p)  # noqa: E731
    first = image_batch(tmp_path / "week1", 1)
    stored = memory.store_files(root, first, str, portable)
    w1 = memory.add_batch(root, stored, {}, MemoryConfig(keep="window", window=1))
    assert w1["batch"] == memory.batch_id(first)  # the id is the content's, wherever the files are
    files = sorted(p.relative_to(root).as_posix() for p in (root / "images").rglob("*") if p.is_file())
    assert len(files) == 6 and all(f.split("/")[2].startswith(f.split("/")[1]) for f in files)
    for split in memory.BATCH_SPLITS:
        kept = memory.batch_split(root, w1["batch"], split)
        assert all(p.startswith("memory/images/") for p in kept["path"])
        assert list(kept["sha256"]) == list(first[split]["sha256"])
    shutil.rmtree(tmp_path / "week1")  # the source folder is gone: the memory still reads every image
    from driftfit.data.hashing import file_hash
    train = memory.remembered(root, [w1["batch"]], "train")
    assert [file_hash(readable(p)) for p in train["path"]] == list(train["sha256"])

    changed = image_batch(tmp_path / "week2", 2)
    victim = changed["val"]["path"][1]
    Path(victim).write_bytes(Path(victim).read_bytes() + b"changed")
    before = sorted((root / "images").rglob("*"))
    with pytest.raises(DataError, match=rf"^'{re.escape(victim)}' \(val split\): its bytes changed since prepare"):
        memory.store_files(root, changed, str, portable)
    assert memory.state(root)["batches"] == [w1["batch"]]
    assert not [p for p in (root / "images").rglob(".*")]  # no temp copy left behind

    third = image_batch(tmp_path / "week3", 3, shared=Path(readable(train["path"][0])))
    w3 = memory.add_batch(root, memory.store_files(root, third, str, portable), {},
                          MemoryConfig(keep="window", window=1))
    assert w3["dropped"] == [w1["batch"]]  # week 1 left the window: its images went, except the one week 3 shares
    names = {p.name for p in (root / "images").rglob("*") if p.is_file()}
    assert names == {Path(p).name for split in memory.BATCH_SPLITS
                     for p in memory.batch_split(root, w3["batch"], split)["path"]}
    assert len(names) == 7 and any(p.name.startswith(first["train"]["sha256"][0]) for p in (root / "images").rglob("*"))


def test_a_broken_pointer_is_a_clear_error(tmp_path):
    root = tmp_path / "memory"
    memory.add_batch(root, batch("w1"), {}, MemoryConfig())
    (root / "memory.json").write_text("{")
    with pytest.raises(Exception, match="memory.json is not valid JSON.*dvc checkout"):
        memory.add_batch(root, batch("w2"), {}, MemoryConfig())


def test_the_pipeline_remembers_validated_batches_only(prepared_params, tmp_path):
    from driftfit.modalities.text import checks as validate
    from driftfit.errors import ValidationFailed

    p = prepared_params
    runner("validate")(p)
    first = runner("remember")(p)
    assert first["added"] and runner("remember")(p)["added"] is False  # the same batch again: recognised
    record = read_json(Path(p.paths.memory) / "batches" / first["batch"] / "batch.json")
    assert record["source"]["path"] == "data/default/incoming.csv" and len(record["source"]["sha256"]) == 64
    # a bad batch stops at prepare, before any step could remember it
    bad = tmp_path / "data" / "bad.csv"
    bad.write_text("text,label\n,a\n" + "".join(f"t{i},b\n" for i in range(9)))
    from driftfit.data import splits as prepare
    from tests.conftest import write_params
    from driftfit.config import load_params

    with pytest.raises(ValidationFailed):
        runner("prepare")(load_params(write_params(tmp_path, {"data.incoming.path": str(bad)})))
    assert memory.state(p.paths.memory)["batches"] == [first["batch"]]
    assert os.path.isdir(Path(p.paths.memory) / "batches" / first["batch"])


# Shrunk, and every candidate promotable: these tests look at what the memory feeds the next week.
FAST = {"promote.beat_baseline": False, "evaluate.latency_examples": 0, "promote.max_forgetting": 100.0}


def promote_week1(tmp_path):
    """Week 1 (the default incoming batch, prepared by the fixture) remembered, trained as a head and
    promoted to v1: (params, its batch id)."""
    from driftfit.modalities.text import augment
    from driftfit.modalities.text import evaluate
    from driftfit.steps import promote
    from driftfit.modalities.text import recipe as train
    from driftfit.modalities.text import checks as validate
    from driftfit.config import load_params
    from driftfit.io import write_json
    from tests.conftest import write_params

    p = load_params(write_params(tmp_path, FAST))
    runner("validate")(p)
    week1 = runner("remember")(p)["batch"]
    runner("augment")(p)
    write_json(p.paths.decision, {"strategy": "head", "reason": "test"})
    runner("train")(p)
    runner("evaluate")(p)
    assert runner("promote")(p)["champion"] == "v1"
    return p, week1


def test_next_week_measures_against_what_the_champion_learnt(prepared_params, tmp_path):
    """Week 1 (the default incoming batch) is remembered and promoted; week 2's reference, replay and forgetting
    come from the champion's memory batches, and the gate names the past batch it judged."""
    from driftfit.modalities.text import augment
    from driftfit.modalities.text import evaluate
    from driftfit.data import splits as prepare
    from driftfit.steps import promote
    from driftfit.modalities.text import recipe as train
    from driftfit.modalities.text import checks as validate
    from driftfit.config import load_params
    from tests.conftest import write_params

    p, week1 = promote_week1(tmp_path)

    week2 = load_params(write_params(tmp_path, {**FAST, "data.incoming.path": "data/default/reference.csv"}))
    manifest = runner("prepare")(week2)
    assert manifest["reference"] == {"from": "memory", "champion": "v1", "memory_version": 1, "batches": [week1],
                                     "champion_batches": [week1]}
    assert manifest["splits"]["reference_test"]["rows"] == len(memory.batch_split(p.paths.memory, week1, "test"))
    runner("validate")(week2)
    assert runner("remember")(week2)["batches"] == [week1, memory.state(p.paths.memory)["batches"][1]]
    runner("augment")(week2)
    runner("train")(week2)
    metrics = runner("evaluate")(week2)
    assert set(metrics["reference_batches"]["candidate"]) == {week1} == set(metrics["reference_batches"]["champion"])
    assert metrics["forgetting"]["worst_batch"] == week1 and set(metrics["forgetting"]["per_batch"]) == {week1}
    assert metrics["forgetting"]["worst"] == metrics["forgetting"]["mean"]  # one past batch
    verdict = runner("promote")(week2)
    forgetting = next(c for c in verdict["checks"] if c["name"] == "forgetting")
    assert forgetting["batch"] == week1 and f"on past batch {week1}, the worst of 1" in forgetting["text"]


def test_a_batch_accepted_while_the_champion_held_is_replayed_and_checked(prepared_params, tmp_path):
    """Week 1 promoted v1; week 2 was accepted but trained nothing (the champion held). Week 3's replay and
    forgetting reference holds weeks 1 and 2; its shift is measured against week 1 alone, what v1 learnt."""
    from driftfit.modalities.text import augment
    from driftfit.modalities.text import evaluate
    from driftfit.data import splits as prepare
    from driftfit.measures import shift
    from driftfit.modalities.text import recipe as train
    from driftfit.modalities.text import checks as validate
    from driftfit.config import load_params
    from driftfit.io import write_json
    from tests.conftest import write_params

    p, week1 = promote_week1(tmp_path)

    week2 = load_params(write_params(tmp_path, {**FAST, "data.incoming.path": "data/default/reference.csv"}))
    runner("prepare")(week2)
    runner("validate")(week2)
    second = runner("remember")(week2)["batch"]  # accepted; no training (a skip)

    import pandas as pd

    rows = pd.read_csv(tmp_path / "data/default/incoming.csv")  # week 1's labels, texts not seen before
    rows["text"] = rows["text"] + " (asked again in week 3)"
    rows.to_csv(tmp_path / "data/week3.csv", index=False)
    week3 = load_params(write_params(tmp_path, {**FAST, "data.incoming.path": "data/week3.csv"}))
    manifest = runner("prepare")(week3)
    assert manifest["reference"]["batches"] == [week1, second] and manifest["reference"]["champion_batches"] == [week1]
    train1 = len(memory.batch_split(p.paths.memory, week1, "train"))
    train2 = len(memory.batch_split(p.paths.memory, second, "train"))
    assert manifest["splits"]["reference_train"]["rows"] == train1 + train2
    report = runner("measure-shift")(week3)
    assert report["data_size"]["reference_rows"] == train1  # the shift: against what v1 learnt
    runner("validate")(week3)
    runner("remember")(week3)
    runner("augment")(week3)
    write_json(week3.paths.decision, {"strategy": "head", "reason": "test"})
    runner("train")(week3)
    metrics = runner("evaluate")(week3)
    assert set(metrics["forgetting"]["per_batch"]) == {week1, second}  # forgetting: on every past batch
