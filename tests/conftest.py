"""Shared fixtures: the real params.yaml, shrunk (few rows, short sequences, a couple of steps)."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from driftfit.pipeline import runner
from driftfit.config import set_dotted

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs the suite on two pytest-xdist workers (one per core): each worker, and every process a test
# starts, does its tensor maths on one thread, so the two never fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"
# Prefect's home (local result storage, profiles) in a folder of this test session, not the user's ~/.prefect:
# nothing a test run caches leaks into a later run. The xdist workers inherit the folder from the controller and
# share it; each worker's Prefect API server (the prefect_api fixture) keeps its own database.
if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="driftfit-tests-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# The shrink: same code paths, a fraction of the work.
SHRINK = {
    "data.default.max_per_class": 12,
    "data.default.min_per_class": 8,
    "model.max_seq_len": 32,
    "shift.sample_size": 64,
    "shift.permutations": 50,
    "train.max_steps": 2,
    "train.batch_size": 16,
    "evaluate.batch_size": 32,
    "evaluate.latency_examples": 0,  # timed in test_evaluate_promote only
    "evaluate.plots": False,         # PNGs drawn in test_evaluate_promote only (the CSVs are always written)
    "strategy.contrastive_max_rows": 0,  # a first run's contrastive pairs: the rule and the strategy have own tests
}


def write_params(folder: Path, overrides: dict | None = None, shrink: bool = True) -> Path:
    """A params.yaml in `folder`: the project's own, shrunk, with overrides applied."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    if not (folder / "data" / "contract.yaml").is_file():  # a bare folder, not a project copy: the repo's contract
        raw["validate"]["contract"] = str(ROOT / "data" / "contract.yaml")
    for key, value in {**(SHRINK if shrink else {}), **(overrides or {})}.items():
        set_dotted(raw, key, value)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def make_params(tmp_path):
    """make_params(**overrides) -> Params whose paths all live under tmp_path."""
    from driftfit.config import load_params

    def _make(overrides: dict | None = None):
        return load_params(write_params(tmp_path, overrides))

    return _make


@pytest.fixture(scope="session")
def default_data_dir(tmp_path_factory) -> Path:
    """The embedded default data, shrunk, built once per session."""
    from driftfit.config import DefaultDataConfig
    from driftfit.modalities.text.default_data import write_default_data

    out = tmp_path_factory.mktemp("default") / "data" / "default"
    write_default_data(DefaultDataConfig(max_per_class=SHRINK["data.default.max_per_class"],
                                         min_per_class=SHRINK["data.default.min_per_class"]), out)
    return out


@pytest.fixture
def prepared_params(make_params, default_data_dir, tmp_path):
    """Params with the shrunk default data already prepared (split) under tmp_path."""
    from driftfit.data import splits as prepare

    shutil.copytree(default_data_dir, tmp_path / "data" / "default")
    params = make_params()
    runner("prepare")(params)
    return params


def project_copy(dest: Path) -> Path:
    """The project's files (tracked + untracked, not ignored) in a fresh git repo at dest."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for rel in files:
        # Outputs of an earlier local run (reports/, models/, data/*) are not part of the project.
        outputs = ("reports/", "models/registry/", "models/candidate/", "data/default/", "data/prepared/",
                   "data/augmented/", "data/memory/", "dvc.lock", "bench/results/", "examples/image/dvc.lock")
        if rel.startswith(outputs) or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


BIN = Path(sys.executable).parent  # the virtual environment's scripts: dvc, driftfit


def dvc(cwd: Path, *args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """The venv's `dvc ARGS` in `cwd`, its output captured; the venv first on PATH (DVC stages call `driftfit`).
    `env`: variables added to this process's environment (credentials for a remote, say)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def door_output(project: Path, rel: str) -> dict:
    """A step's JSON output under `project` as the two doors (flow, dvc repro) must agree on it. metrics.json's
    candidate_sha256 is a digest over the candidate's files, whose train_log.json records wall-clock seconds: it
    must be this project's own candidate's digest, and is left out of the comparison."""
    import json

    from driftfit.state.registry import model_digest

    out = json.loads((project / rel).read_text())
    if "candidate_sha256" in out:
        candidate = yaml.safe_load((project / "params.yaml").read_text())["paths"]["candidate"]
        assert out.pop("candidate_sha256") == model_digest(project / candidate), f"{project / rel}: another candidate"
    return out


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API server (prefect_test_harness: a server process on its own SQLite database), started once
    per test process at the first test that asks for it and kept until the session ends; every flow run in this
    process talks to it. Tests tell their runs apart by flow-run id, never by counting what the server holds."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def free_port() -> int:
    """A TCP port free on loopback right now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    """Files holding end-to-end (`slow`) tests run first, each file's tests kept together and in order: on two
    workers the long files start at once and the many short ones fill in behind them."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
