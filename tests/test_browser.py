"""The deployment under a real `prefect server start`, looked at in a real browser.

On loopback: start the server, `prefect deploy` prefect.yaml (weekly schedule + batch-landed
trigger), run the deployment through a process worker, then open the flow run in headless Chromium
(Debian's `chromium`, driven by Playwright): the run's task runs and our artifacts must be on the
page. A `driftfit.batch.landed` event then starts a second run, whose tasks are all cached.
The screenshot lands in the test's folder; with DRIFTFIT_REFRESH_SCREENSHOT=1 it replaces docs/prefect-ui.png,
which the README shows (a test run leaves the checkout as it was).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, project_copy, write_params

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
FAST = {"train.max_steps": 2, "promote.beat_baseline": False}
TASKS = ["default data", "prepare", "validate", "remember", "augment", "measure shift", "select strategy", "tune",
         "train", "evaluate", "promote"]
ARTIFACTS = ["validation", "validation-checks", "shift-report", "decision", "training-progress", "metrics",
             "inference-cost", "promotion", "model-card"]
SCREENSHOT = ROOT / "docs" / "prefect-ui.png"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    return path


def api(url: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the process group, then SIGKILL if it has not exited after `grace` seconds: a Prefect worker
    sometimes takes longer than a minute to drain after the test's assertions have all passed."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


def finished(url: str, run_id: str) -> dict | None:
    run = api(url, f"/flow_runs/{run_id}")
    return run if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` on a free loopback port, with its own PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "HF_HUB_OFFLINE": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "2"}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for("the Prefect server", lambda: api(url, "/health") is True, timeout=180)
        yield url, env
    finally:
        stop(proc)
        log.close()


def prefect(env: dict, cwd: Path, *args: str) -> str:
    out = subprocess.run([str(BIN / "prefect"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_deployment_runs_under_a_server_and_shows_in_the_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, env = server
    browser_path = chromium()
    root = project_copy(tmp_path)
    write_params(root, FAST)

    prefect(env, root, "work-pool", "create", "driftfit", "--type", "process")
    prefect(env, root, "--no-prompt", "deploy", "--all")
    deployment = api(url, "/deployments/name/retrain/retrain")
    assert [s["schedule"].get("cron") for s in deployment["schedules"]] == ["0 3 * * 1"]
    assert set(deployment["parameter_openapi_schema"]["properties"]) >= {"params_path", "incoming_path", "strategy"}

    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "driftfit"], cwd=root, env=env,
                              stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        created = prefect(env, root, "deployment", "run", "retrain/retrain")
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", created).group(1)
        run = wait_for("the deployment's flow run", lambda: finished(url, run_id), timeout=900, every=2)
        assert run["state"]["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
        assert (root / "models" / "registry" / "v1" / "MODEL_CARD.md").is_file()

        # A new batch lands: the event trigger starts a run on it (same file here, so every task is cached).
        prefect(env, root, "event", "emit", "driftfit.batch.landed", "--resource-id", "driftfit.batch.test",
                "--payload", json.dumps({"path": "data/default/incoming.csv"}))

        def triggered():
            runs = api(url, "/flow_runs/filter", {"sort": "EXPECTED_START_TIME_DESC", "limit": 20, "offset": 0})
            return next((r["id"] for r in runs if r["parameters"].get("incoming_path")), None)

        second_id = wait_for("the trigger to start a run", triggered, timeout=60)
        second = wait_for("the triggered flow run", lambda: finished(url, second_id), timeout=300, every=2)
        assert second["state"]["type"] == "COMPLETED"
        states = {t["name"].rsplit("-", 1)[0]: t["state_name"] for t in api(url, "/task_runs/filter", {
            "flow_runs": {"id": {"any_": [second["id"]]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 50,
            "offset": 0})}
        assert set(states.values()) == {"Cached"} and set(states) == set(TASKS), states
    finally:
        stop(worker)
        worker_log.close()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url.removesuffix("/api") + f"/runs/flow-run/{run_id}", wait_until="networkidle")
        page.get_by_text("Completed").first.wait_for()
        page.get_by_text("Task Runs", exact=True).first.click()
        for name in TASKS:
            page.get_by_text(re.compile(rf"^{name}-\w+$")).first.wait_for(timeout=15000)
        page.get_by_text("Artifacts", exact=True).first.click()
        for key in ARTIFACTS:
            page.get_by_text(key, exact=True).first.wait_for(timeout=15000)
        page.wait_for_load_state("networkidle")
        shot = tmp_path / "prefect-ui.png"
        page.screenshot(path=str(shot))
        browser.close()
    assert shot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("DRIFTFIT_REFRESH_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)
