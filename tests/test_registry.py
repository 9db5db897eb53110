"""The registry: versions with their records, an atomic champion switch, rollback, killed runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from driftfit import promote, registry
from driftfit.errors import DriftfitError
from driftfit.io import read_json, write_json


def stage_candidate(p, f1: float, champion_f1: float | None = None) -> None:
    """The files promote reads, as train/evaluate would leave them (no model needed)."""
    cand = Path(p.paths.candidate)
    cand.mkdir(parents=True, exist_ok=True)
    (cand / "head.safetensors").write_bytes(os.urandom(64))
    write_json(cand / "train_log.json", {"strategy": "head", "trained": True, "labels": ["a", "b"], "steps": 3,
                                         "seconds": 1.0, "device": "cpu", "trainable_params": 10,
                                         "total_params": 100})
    m = {"strategy": "head", "candidate": {"test": {"accuracy": f1, "macro_f1": f1},
                                           "reference_test": {"accuracy": 0.5, "macro_f1": 0.5}},
         "baseline": {"test": {"accuracy": 0.1, "macro_f1": 0.1}}}
    if champion_f1 is not None:
        m["champion"] = {"test": {"accuracy": champion_f1, "macro_f1": champion_f1},
                         "reference_test": {"accuracy": 0.5, "macro_f1": 0.5}}
    write_json(p.paths.metrics, m)
    write_json(p.paths.decision, {"strategy": "head", "reason": "a head is enough"})
    write_json(Path(p.paths.prepared) / "manifest.json",
               {"sources": {"incoming": {"path": "in.csv", "sha256": "ab" * 32}},
                "splits": {"test": {"rows": 4, "sha256": "cd" * 32}}})


def promote_three(p) -> None:
    for f1, champ in ((0.5, None), (0.6, 0.5), (0.7, 0.6)):
        stage_candidate(p, f1, champ)
        assert promote.run(p)["promoted"]


def test_versions_records_and_cards(make_params):
    p = make_params()
    promote_three(p)
    reg = Path(p.paths.registry)
    assert registry.versions(reg) == ["v1", "v2", "v3"]
    rows = registry.list_versions(reg)
    assert [r["stage"] for r in rows] == ["retired", "retired", "champion"]
    assert rows[1]["macro_f1_new"] == 0.6 and rows[1]["data"] == {"test": "cd" * 32}
    assert rows[1]["reason"].startswith("promoted: +10.0 macro-F1 on new data")
    card = (reg / "v2" / "MODEL_CARD.md").read_text()
    assert "# Model card: v2" in card and "replacing v1" in card and "a head is enough" in card
    info = registry.champion_info(reg)
    assert info["version"] == "v3" and [h["version"] for h in info["history"]] == ["v1", "v2", "v3"]
    assert not [q for q in reg.iterdir() if q.name.startswith((".incoming", ".champion"))]
    with pytest.raises(OSError):  # a version is never overwritten
        registry.add_version(reg, "v2", Path(p.paths.candidate), {}, "")


def test_rollback_to_previous_then_to_a_named_version(make_params):
    p = make_params()
    with pytest.raises(DriftfitError, match="no champion yet"):
        registry.rollback(p)
    promote_three(p)
    reg = Path(p.paths.registry)
    assert registry.rollback(p) == {"champion": "v2", "previous": "v3", "reason": "rolled back from v3 to v2"}
    assert registry.rollback(p)["champion"] == "v1"  # the one v2 replaced
    with pytest.raises(DriftfitError, match="first champion"):
        registry.rollback(p)
    assert registry.rollback(p, "v3")["champion"] == "v3"
    assert registry.champion_dir(reg) == reg / "v3"
    info = registry.champion_info(reg)
    assert [(h["version"], h["action"]) for h in info["history"][-3:]] == [
        ("v2", "rollback"), ("v1", "rollback"), ("v3", "rollback")]
    with pytest.raises(DriftfitError, match="no version 'v9'"):
        registry.rollback(p, "v9")
    with pytest.raises(DriftfitError, match="already the champion"):
        registry.rollback(p, "v3")


def test_failed_promotion_leaves_the_champion(make_params, monkeypatch):
    p = make_params()
    stage_candidate(p, 0.5)
    promote.run(p)
    stage_candidate(p, 0.9, 0.5)

    def broken_copy(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(registry.shutil, "copytree", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        promote.run(p)
    reg = Path(p.paths.registry)
    assert registry.champion_info(reg)["version"] == "v1" and registry.versions(reg) == ["v1"]
    assert not [q for q in reg.iterdir() if q.name.startswith(".incoming")]


KILL_DURING_SWITCH = """
import os, signal, sys
from driftfit import promote, registry
from driftfit.config import load_params

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the version folder is in place, the pointer not yet switched

registry.set_champion = die
promote.run(load_params(sys.argv[1]))
"""


def test_killed_promotion_never_leaves_a_half_promoted_champion(make_params, tmp_path):
    p = make_params()
    stage_candidate(p, 0.5)
    promote.run(p)
    stage_candidate(p, 0.9, 0.5)
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SWITCH, str(tmp_path / "params.yaml")],
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    reg = Path(p.paths.registry)
    assert registry.versions(reg) == ["v1", "v2"]  # v2 landed whole, but never became champion
    assert registry.champion_info(reg)["version"] == "v1" and registry.champion_dir(reg) == reg / "v1"
    verdict = promote.run(p)  # the next run clears the leftover and promotes cleanly
    assert verdict["champion"] == "v2" and registry.versions(reg) == ["v1", "v2"]
    assert json.loads((reg / "champion.json").read_text())["previous"] == "v1"
    assert read_json(reg / "v2" / "version.json")["previous"] == "v1"


def test_clean_leftovers_keeps_every_version_that_was_champion(tmp_path):
    reg = tmp_path / "reg"
    model = tmp_path / "m"
    model.mkdir()
    for v in ("v1", "v2"):
        registry.add_version(reg, v, model, {"version": v}, "card")
        registry.set_champion(reg, v, action="promote", reason="test")
    registry.set_champion(reg, "v1", action="rollback", reason="test")
    registry.add_version(reg, "v3", model, {"version": "v3"}, "card")  # as a killed run leaves it
    (reg / ".incoming-x").mkdir()
    assert registry.clean_leftovers(reg) == [".incoming-x", "v3"]
    assert registry.versions(reg) == ["v1", "v2"]
