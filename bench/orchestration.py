"""What orchestration costs: the retrain flow against a running Prefect server, and no-op `dvc repro`.

    python -m bench.orchestration [--out bench/results]

In a fresh copy of the project (default params.yaml, default data):
1. starts `prefect server start` on loopback (or uses PREFECT_API_URL if set);
2. runs the flow once: overhead = (flow wall time - time inside the step functions) / flow wall time,
   where the step functions are the library calls the tasks wrap (`driftfit.<step>.run`), timed here;
   target at most 5%;
3. runs it again with unchanged inputs (every task cached): target at most 10% of the first run;
4. `dvc repro` (full), then a no-op `dvc repro`, median of 3: target at most 1.5 s.
Writes <out>/orchestration.json and orchestration.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import contextlib
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

from tests.conftest import free_port, project_copy  # the tests' project copy, one definition
from driftfit.pipeline import STEPS as PIPELINE  # noqa: E402

STEPS = [(s.module, "run") for s in PIPELINE]


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=open(home / "server.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"prefect server did not start; see {home / 'server.log'}")


class StepTimer:
    """Wraps each library step function; `seconds` sums the time spent inside them."""

    def __init__(self) -> None:
        import importlib

        self.seconds: dict[str, float] = {}
        for module, name in STEPS:
            mod = importlib.import_module(module)
            setattr(mod, name, self._wrap(f"{module}.{name}", getattr(mod, name)))

    def _wrap(self, label: str, fn):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t
        return timed

    def reset(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out


def run_flow(retrain, params: Path, timer: StepTimer) -> dict:
    t = time.perf_counter()
    with contextlib.chdir(params.parent):  # a flow run reads its project's params file
        state = retrain(params_path=str(params), return_state=True)
    wall = time.perf_counter() - t
    if not state.is_completed():
        raise RuntimeError(f"flow run failed: {state.message}")
    steps = timer.reset()
    inside = sum(steps.values())
    return {"wall_seconds": round(wall, 2), "inside_steps_seconds": round(inside, 2),
            "overhead_seconds": round(wall - inside, 2), "overhead_fraction": round((wall - inside) / wall, 4),
            "steps_seconds": {k: round(v, 2) for k, v in steps.items()},
            "promotion": state.result()["promotion"]["reason"]}


def dvc_noop(root: Path) -> dict:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    t = time.perf_counter()
    full = subprocess.run([str(BIN / "dvc"), "repro"], cwd=root, env=env, capture_output=True, text=True)
    full_seconds = time.perf_counter() - t
    if full.returncode:
        raise RuntimeError(full.stdout[-2000:] + full.stderr[-2000:])
    noop = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run([str(BIN / "dvc"), "repro"], cwd=root, env=env, capture_output=True, text=True)
        noop.append(time.perf_counter() - t)
        if out.returncode or "Running stage" in out.stdout:
            raise RuntimeError(f"second dvc repro was not a no-op:\n{out.stdout[-2000:]}")
    return {"full_repro_seconds": round(full_seconds, 2), "noop_repro_seconds": [round(s, 2) for s in noop],
            "noop_repro_median_seconds": round(statistics.median(noop), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="driftfit-bench-"))
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        (work / "prefect-home").mkdir()
        server, url = start_server(work / "prefect-home")
        os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=str(work / "prefect-home"))
    load_before = os.getloadavg()
    try:
        from flows.retrain import retrain  # imported after PREFECT_API_URL is set: the flow reports there

        timer = StepTimer()
        root = project_copy(work / "project")
        first = run_flow(retrain, root / "params.yaml", timer)
        second = run_flow(retrain, root / "params.yaml", timer)
        dvc = dvc_noop(root)
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
    import prefect
    import torch

    result = {
        "command": "python -m bench.orchestration",
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, "
                   + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"),
        "load_average_at_start": [round(x, 2) for x in load_before],
        "prefect": prefect.__version__,
        "first_run": first,
        "rerun_unchanged": {**second, "fraction_of_first": round(second["wall_seconds"] / first["wall_seconds"], 4)},
        "dvc": dvc,
        "targets": {"overhead_fraction": 0.05, "rerun_fraction_of_first": 0.10, "noop_repro_seconds": 1.5},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "orchestration.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "orchestration.md").write_text(markdown(result))
    print(markdown(result))
    shutil.rmtree(work, ignore_errors=True)


def markdown(r: dict) -> str:
    f, s, d = r["first_run"], r["rerun_unchanged"], r["dvc"]

    def row(measure: str, value: str, target: str = "", met: bool | None = None) -> str:
        return f"| {measure} | {value} | {target} | {'' if met is None else 'yes' if met else '**no**'} |"

    noop = ", ".join(map(str, d["noop_repro_seconds"]))
    rows = [
        row("first run: flow wall time", f"{f['wall_seconds']} s"),
        row("first run: inside the step functions", f"{f['inside_steps_seconds']} s"),
        row("orchestration overhead", f"{f['overhead_seconds']} s = {100 * f['overhead_fraction']:.1f}%",
            "at most 5%", f["overhead_fraction"] <= 0.05),
        row("re-run, unchanged inputs (all tasks cached)",
            f"{s['wall_seconds']} s = {100 * s['fraction_of_first']:.1f}% of the first", "at most 10%",
            s["fraction_of_first"] <= 0.10),
        row("no-op `dvc repro` (median of 3)", f"{d['noop_repro_median_seconds']} s ({noop})", "at most 1.5 s",
            d["noop_repro_median_seconds"] <= 1.5),
    ]
    steps = "\n".join(f"| {k} | {v} |" for k, v in f["steps_seconds"].items())
    return f"""# Orchestration overhead

Command: `{r['command']}` ({r['date']}; Prefect {r['prefect']}; {r['machine']};
load average {r['load_average_at_start']} (1, 5, 15 min) at the start)

Default params and data, the flow in this process reporting to `prefect server start` on loopback.

| measure | value | target | met |
|---|---|---|---|
{chr(10).join(rows)}

First run: {f['promotion']}

| step function (first run) | seconds |
|---|---|
{steps}
"""


if __name__ == "__main__":
    main()
