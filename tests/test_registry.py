"""The registry: versions with their records, an atomic champion switch, rollback, killed runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from driftfit.pipeline import runner
from driftfit import cli
from driftfit.state import candidate
from driftfit.steps import promote
from driftfit.state import registry
from driftfit.errors import DriftfitError
from driftfit.io import read_json, write_json


def stage_candidate(p, f1: float, champion_f1: float | None = None) -> None:
    """The files promote reads, as train/evaluate would leave them (no model needed): the decision and the
    prepared manifest, a candidate bound to them (driftfit.candidate) and metrics that scored it."""
    write_json(p.paths.decision, {"strategy": "head", "reason": "a head is enough"})
    write_json(Path(p.paths.prepared) / "manifest.json",
               {"sources": {"incoming": {"path": "in.csv", "sha256": "ab" * 32}},
                "splits": {"test": {"rows": 4, "sha256": "cd" * 32}}})
    cand = Path(p.paths.candidate)
    cand.mkdir(parents=True, exist_ok=True)
    (cand / "head.safetensors").write_bytes(os.urandom(64))
    write_json(cand / "train_log.json", {"strategy": "head", "trained": True, "labels": ["a", "b"], "steps": 3,
                                         "seconds": 1.0, "device": "cpu", "trainable_params": 10,
                                         "total_params": 100, "for_run": candidate.binding(p)})
    info = registry.champion_info(p.paths.registry)  # evaluate scores the champion serving now
    m = {"strategy": "head", "champion_version": info["version"] if info else None, "candidate": {"test": {"accuracy": f1, "macro_f1": f1},
                                           "reference_test": {"accuracy": 0.5, "macro_f1": 0.5}},
         "baseline": {"test": {"accuracy": 0.1, "macro_f1": 0.1}}, "candidate_sha256": registry.model_digest(cand)}
    if champion_f1 is not None:
        m["champion"] = {"test": {"accuracy": champion_f1, "macro_f1": champion_f1},
                         "reference_test": {"accuracy": 0.5, "macro_f1": 0.5}}
    write_json(p.paths.metrics, m)


def promote_three(p) -> None:
    for f1, champ in ((0.5, None), (0.6, 0.5), (0.7, 0.6)):
        stage_candidate(p, f1, champ)
        assert runner("promote")(p)["promoted"]


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
    runner("promote")(p)
    stage_candidate(p, 0.9, 0.5)

    def broken_copy(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(registry.shutil, "copytree", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        runner("promote")(p)
    reg = Path(p.paths.registry)
    assert registry.champion_info(reg)["version"] == "v1" and registry.versions(reg) == ["v1"]
    assert not [q for q in reg.iterdir() if q.name.startswith(".incoming")]


KILL_DURING_SWITCH = """
import os, signal, sys
from driftfit import cli
from driftfit.state import candidate
from driftfit.pipeline import runner
from driftfit.state import registry
from driftfit.config import load_params

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the version folder is in place, the pointer not yet switched

registry.set_champion = die
runner("promote")(load_params(sys.argv[1]))
"""


def test_killed_promotion_never_leaves_a_half_promoted_champion(make_params, tmp_path):
    p = make_params()
    stage_candidate(p, 0.5)
    runner("promote")(p)
    stage_candidate(p, 0.9, 0.5)
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_SWITCH, str(tmp_path / "params.yaml")],
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    reg = Path(p.paths.registry)
    assert registry.versions(reg) == ["v1", "v2"]  # v2 landed whole, but never became champion
    assert registry.champion_info(reg)["version"] == "v1" and registry.champion_dir(reg) == reg / "v1"
    verdict = runner("promote")(p)  # the next run clears the leftover and promotes cleanly
    assert verdict["champion"] == "v2" and registry.versions(reg) == ["v1", "v2"]
    assert json.loads((reg / "champion.json").read_text())["previous"] == "v1"
    assert read_json(reg / "v2" / "version.json")["previous"] == "v1"


def test_clean_leftovers_removes_temp_files_never_a_version(tmp_path):
    reg = tmp_path / "reg"
    model = tmp_path / "m"
    model.mkdir()
    for v in ("v1", "v2"):
        registry.add_version(reg, v, model, {"version": v}, "card")
        registry.set_champion(reg, v, action="promote", reason="test")
    registry.set_champion(reg, "v1", action="rollback", reason="test")
    registry.add_version(reg, "v3", model, {"version": "v3"}, "card")  # as a run killed before the switch leaves it
    (reg / ".incoming-x").mkdir()
    (reg / ".champion-y.json").write_text("{")
    assert registry.clean_leftovers(reg) == [".champion-y.json", ".incoming-x"]
    assert registry.versions(reg) == ["v1", "v2", "v3"]
    assert [r["stage"] for r in registry.list_versions(reg)] == ["champion", "retired", "never served"]


# ---- a registry without its pointer, or with a broken one --------------------------------------

def eighteen_versions(p) -> Path:
    for n in range(18):
        stage_candidate(p, 0.2 + 0.04 * n, None if n == 0 else 0.2 + 0.04 * (n - 1))
        assert runner("promote")(p)["champion"] == f"v{n + 1}"
    return Path(p.paths.registry)


def record_files(reg: Path) -> dict[str, bytes]:
    """Every file of every version (a real model's folders included), by path under the registry."""
    return {str(q.relative_to(reg)): q.read_bytes() for q in sorted(reg.glob("v*/**/*")) if q.is_file()}


def test_a_missing_pointer_loses_no_version_and_repair_rebuilds_it(make_params, capsys):
    p = make_params()
    reg = eighteen_versions(p)
    before = record_files(reg)
    stage_candidate(p, 0.95, 0.88)
    (reg / "champion.json").unlink()
    with pytest.raises(registry.RegistryError, match=r"champion.json is missing but versions v1..v18 \(18\) exist; "
                                                     r"run 'driftfit registry repair --registry "):
        runner("promote")(p)
    assert registry.versions(reg) == [f"v{n}" for n in range(1, 19)] and record_files(reg) == before
    # the same through the CLI: one line, status 2, then the repair it names
    assert cli.main(["promote", "--params", str(Path(p.paths.registry).parents[1] / "params.yaml")]) == 2
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(err) == 1 and err[0].startswith("driftfit promote: error: registry ") and "Traceback" not in stderr
    assert cli.main(["registry", "repair", "--registry", str(reg)]) == 0
    repaired = json.loads(capsys.readouterr().out)
    assert repaired["champion"] == "v18" and repaired["versions"][-1] == "v18"
    info = registry.champion_info(reg)
    assert info["version"] == "v18" and info["action"] == "repair" and len(info["history"]) == 19
    assert runner("promote")(p)["champion"] == "v19"  # and the registry works again
    assert record_files(reg).items() >= before.items()


@pytest.mark.parametrize("content", ["", '{"version": "v2", "hist', "[1, 2]", '{"version": "v9"}', "\xff\xfe"])
def test_a_broken_pointer_is_one_clear_line_for_promote_evaluate_and_rollback(make_params, capsys, content):
    p = make_params()
    promote_three(p)
    reg = Path(p.paths.registry)
    (reg / "champion.json").write_bytes(content.encode("latin-1"))
    before = record_files(reg)
    params_file = str(reg.parents[1] / "params.yaml")
    for step in (["promote"], ["evaluate"], ["rollback"], ["rollback", "--to", "v1"]):
        capsys.readouterr()
        assert cli.main([*step, "--params", params_file]) == 2
        stderr = capsys.readouterr().err
        err = [line for line in stderr.splitlines() if ": error: " in line]
        assert len(err) == 1 and "Traceback" not in stderr, stderr
        assert err[0].startswith(f"driftfit {step[0]}: error: registry {reg}: ") and str(reg / "champion.json") in err[0]
        assert "driftfit registry repair" in err[0] and "Traceback" not in err[0]
    assert record_files(reg) == before and (reg / "champion.json").read_bytes() == content.encode("latin-1")
    assert registry.repair(reg, "v2")["champion"] == "v2"
    assert registry.champion_info(reg)["version"] == "v2"
    assert [q.name for q in reg.glob("champion.json.broken-*")]  # the broken file is kept, not deleted
    with pytest.raises(DriftfitError, match="nothing to repair"):
        registry.repair(reg)


# ---- a rollback sticks ------------------------------------------------------------------------

def test_re_running_promote_after_a_rollback_keeps_the_rollback(make_params):
    p = make_params()
    stage_candidate(p, 0.5)
    runner("promote")(p)
    stage_candidate(p, 0.7, 0.5)
    assert runner("promote")(p)["champion"] == "v2"
    registry.rollback(p)  # v1 serves again; the candidate on disk is still v2's
    again = runner("promote")(p)  # what `dvc repro` does when it sees the registry changed
    assert not again["promoted"] and again["champion"] == "v1" and again["version"] == "v2"
    assert "the candidate is v2, which served before and was replaced" in again["reason"]
    assert registry.versions(p.paths.registry) == ["v1", "v2"]
    assert registry.champion_info(p.paths.registry)["version"] == "v1"
