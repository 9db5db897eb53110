"""The champion in use, measured: torch against its ONNX export (fp32 and int8), int8's accuracy, and the endpoint
under load and through a promotion.

    python -m bench.serving [--work DIR] [--out bench/results/serving] [--rows 9000] [--seconds 20]

1. A champion trained by the pipeline's own steps (prepare, augment, train, evaluate, promote) on real data:
   AG News (`../shared/data/agnews/dev.tsv`, 4 topics, its near-duplicates left out; `--rows` of them, a seeded
   sample), strategy `head` on the
   packaged MiniLM, then a second version (the same features, another head) for the promotion. It is exported
   by `driftfit export` (fp32 and int8).
2. Throughput, texts/s end to end (tokenizing included), batch 1 and batch 64, for torch fp32 (the Python API),
   onnxruntime fp32 and int8 (the export's runner); every backend on the same texts (the test split) with the
   same number of threads (all cores), in interleaved rounds, median of the rounds.
3. Accuracy on the whole test split: torch fp32 against onnxruntime fp32 and int8, in points, with a paired
   bootstrap 95% interval of int8's change (bench/stats.py).
4. The endpoint (`driftfit serve`, its own process) under 1, 8 and 32 concurrent clients, each posting one text
   per request for `--seconds`: p50/p95/p99 latency, texts/s, errors; against the same backend's offline batch-64
   throughput. Then 32 clients while the pointer moves to v2 and back (what promote and rollback write):
   requests sent, answered, failed, and how soon each version answered. The clients run in this process on the
   same machine, so they take CPU from the server.
Goals (issue 26): int8 >= 2x torch fp32 texts/s at <= 0.5 points of accuracy lost; the endpoint at 32 clients
>= 70% of the offline batch throughput, 0 errors, nothing dropped during a promotion.
Writes <out>/serving.json and serving.md (the command, the machine, the load average before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from driftfit.pipeline import runner

ROOT = Path(__file__).resolve().parents[1]
AGNEWS = ROOT.parent / "shared" / "data" / "agnews" / "dev.tsv"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    import importlib.metadata as md

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return {"cpu": cpu, "cores": os.cpu_count(), "vnni": "vnni" in flags, "avx2": " avx2" in flags,
            "python": platform.python_version(),
            **{name: md.version(name) for name in ("torch", "onnxruntime", "transformers", "fastapi", "uvicorn")}}


# ---- 1. the champion --------------------------------------------------------------------------------

def build_champion(work: Path, rows: int):
    """v1: a head on AG News through the pipeline's steps; v2: another head of the same features (C = 1)."""
    from driftfit.modalities.text import augment
    from driftfit.modalities.text import evaluate
    from driftfit.data import splits as prepare
    from driftfit.steps import promote
    from driftfit.state import registry
    from driftfit.modalities.text import recipe as train
    from driftfit.config import load_params, set_dotted
    from driftfit.io import read_json, write_json

    import pandas as pd

    from driftfit.modalities.text.texts import normalise

    work.mkdir(parents=True, exist_ok=True)
    source = work / "data" / "agnews.tsv"  # AG News without its near-duplicates, which validation would refuse
    if not source.is_file():               # as leakage between splits (read from ../shared/data, kept in `work`)
        news = pd.read_csv(AGNEWS, sep="\t", header=None, quoting=3, dtype=str, keep_default_na=False)
        source.parent.mkdir(parents=True, exist_ok=True)
        news[~normalise(news[0]).duplicated()].to_csv(source, sep="\t", header=False, index=False, quoting=3)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in {"data.reference": None,
                       "data.incoming": {"path": "data/agnews.tsv", "header": False, "text": 0, "label": 1,
                                         "sample": rows, "test_path": None, "split": "train"},
                       "validate.contract": str(ROOT / "data" / "contract.yaml"), "augment.enabled": False,
                       "promote.beat_baseline": False}.items():
        set_dotted(raw, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(work / "params.yaml")
    if registry.champion_info(params.paths.registry) is not None:
        return params  # built by an earlier run in this work folder
    runner("prepare")(params)
    runner("augment")(params)
    write_json(params.paths.decision, {"strategy": "head", "reason": "the serving benchmark's champion"})
    runner("train")(params)
    runner("evaluate")(params)
    assert runner("promote")(params)["version"] == "v1"
    other = load_params(work / "params.yaml", {"train.head_c_grid": [1.0]})
    runner("train")(other)
    candidate = Path(other.paths.candidate)
    record = {"version": "v2", "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "strategy": read_json(candidate / "train_log.json")["strategy"], "reason": "the benchmark's v2",
              "previous": "v1", "model_sha256": registry.model_digest(candidate), "params": other.portable_dump()}
    registry.add_version(other.paths.registry, "v2", candidate, record, "# Model card: v2 (benchmark)\n")
    return params


# ---- 2. throughput, 3. accuracy ------------------------------------------------------------------------

def texts_per_s(proba, texts: list[str], batch: int, count: int) -> float:
    batches = [[texts[(i + j) % len(texts)] for j in range(batch)] for i in range(0, count, batch)]
    started = time.perf_counter()
    for chunk in batches:
        proba(chunk)
    return count / (time.perf_counter() - started)


def offline(params, test, rounds: int, threads: int) -> dict:
    import torch

    from driftfit.serving import load
    from driftfit.serving.onnx_runner import OnnxClassifier

    torch.set_num_threads(threads)
    champion = load(params.paths.registry, device="cpu")
    export = Path(params.absolute(params.export.dir)) / "v1"
    scorers = {"torch fp32": champion.predict_proba,
               "onnxruntime fp32": OnnxClassifier(export, threads=threads).predict_proba,
               "onnxruntime int8": OnnxClassifier(export, int8=True, threads=threads).predict_proba}
    texts = list(test["text"])
    for proba in scorers.values():  # warm up: first calls allocate
        proba(texts[:64])
        proba(texts[:1])
    speeds: dict = {name: {1: [], 64: []} for name in scorers}
    for _ in range(rounds):  # interleaved, so a busy minute of the machine hits every backend alike
        for name, proba in scorers.items():
            speeds[name][1].append(texts_per_s(proba, texts, 1, 64))
            speeds[name][64].append(texts_per_s(proba, texts, 64, 640))
    throughput = {name: {f"batch_{b}": {"texts_per_s": round(statistics.median(v), 1),
                                        "rounds": [round(x, 1) for x in v]} for b, v in by_batch.items()}
                  for name, by_batch in speeds.items()}

    from sklearn.metrics import f1_score

    from bench.stats import paired_bootstrap

    truth = test["label"].to_numpy()
    accuracy, right = {}, {}
    for name, proba in scorers.items():
        probs = np.concatenate([proba(texts[i:i + 64]) for i in range(0, len(texts), 64)])
        predicted = np.array(champion.labels)[probs.argmax(1)]
        right[name] = (predicted == truth).astype(float)
        accuracy[name] = {"accuracy": round(float(right[name].mean()), 4),
                          "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
                          "predicted": predicted}
    for name in ("onnxruntime fp32", "onnxruntime int8"):
        diff, low, high = paired_bootstrap(right[name], right["torch fp32"])
        accuracy[name].update(change_points=round(100 * diff, 2), interval_points=[round(100 * low, 2),
                                                                                   round(100 * high, 2)],
                              rows_changed=int((accuracy[name]["predicted"] != accuracy["torch fp32"]["predicted"]).sum()))
    for entry in accuracy.values():
        entry.pop("predicted")
    return {"throughput": throughput, "accuracy": accuracy, "test_rows": len(texts), "threads": threads}


# ---- 4. the endpoint ------------------------------------------------------------------------------

def start_server(params_file: Path, backend: str, port: int, threads: int, log: Path) -> subprocess.Popen:
    import httpx

    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "driftfit.cli", "serve", "--params", str(params_file), "--port",
                             str(port), "--backend", backend, "-S", f"serve.threads={threads}",
                             "-S", "serve.reload_poll_s=0.5"], stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    deadline = time.monotonic() + 600  # onnx backends export first when the version has no export yet
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"driftfit serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("driftfit serve did not come up")


async def load_run(url: str, texts: list[str], clients: int, seconds: float, during=None) -> dict:
    """`clients` workers posting one text per request for `seconds`; `during(elapsed)` is called by a watcher."""
    import httpx

    latencies, errors, answered, sent, versions = [], [], 0, 0, []
    stop = time.monotonic() + seconds
    started = time.monotonic()

    async def worker(i: int, client: httpx.AsyncClient) -> None:
        nonlocal answered, sent
        k = i
        while time.monotonic() < stop:
            k += clients
            sent += 1
            t0 = time.perf_counter()
            try:
                response = await client.post(f"{url}/predict", json={"texts": [texts[k % len(texts)]]})
            except httpx.HTTPError as err:
                errors.append(repr(err)[:200])
                continue
            if response.status_code != 200:
                errors.append(f"{response.status_code} {response.text[:200]}")
                continue
            latencies.append(time.perf_counter() - t0)
            answered += 1
            versions.append((time.monotonic() - started, response.json()["version"]))

    async def watcher() -> None:
        while time.monotonic() < stop:
            await asyncio.sleep(0.25)
            if during is not None:
                await asyncio.to_thread(during, time.monotonic() - started)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(worker(i, client) for i in range(clients)), watcher())
    elapsed = time.monotonic() - started
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"clients": clients, "seconds": round(elapsed, 1), "sent": sent, "answered": answered,
            "errors": len(errors), "error_examples": errors[:3], "texts_per_s": round(answered / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "versions": versions}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def endpoint_runs(params, params_file: Path, backend: str, texts: list[str], seconds: float, threads: int,
                  work: Path) -> dict:
    import httpx

    from driftfit.state import registry
    from driftfit.config import load_params

    port = _free_port()
    proc = start_server(params_file, backend, port, threads, work / f"serve-{backend}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(load_run(url, texts, 8, 3))  # warm-up, not recorded
        runs = []
        for clients in (1, 8, 32):
            before = httpx.get(f"{url}/health").json()
            result = asyncio.run(load_run(url, texts, clients, seconds))
            after = httpx.get(f"{url}/health").json()
            result["texts_per_pass"] = round((after["scored"] - before["scored"]) /
                                             max(1, after["passes"] - before["passes"]), 1)
            result.pop("versions")
            result["load_average"] = load_average()
            runs.append(result)
        root = params.paths.registry
        moments: dict = {}

        def promote_then_roll_back(elapsed: float) -> None:
            if "promoted" not in moments and elapsed >= seconds / 3:
                moments["promoted"] = round(elapsed, 2)
                registry.set_champion(root, "v2", action="promote", reason="the serving benchmark's promotion")
            elif "rolled_back" not in moments and elapsed >= 2 * seconds / 3:
                moments["rolled_back"] = round(elapsed, 2)
                registry.rollback(load_params(params_file))

        swap = asyncio.run(load_run(url, texts, 32, seconds, promote_then_roll_back))
        versions = swap.pop("versions")
        first_v2 = next((t for t, v in versions if v == "v2"), None)
        back_v1 = next((t for t, v in versions if v == "v1" and t > moments.get("rolled_back", 1e9)), None)
        swap.update(moments, dropped=swap["sent"] - swap["answered"] - swap["errors"],
                    v2_answered_after_s=round(first_v2 - moments["promoted"], 2) if first_v2 else None,
                    v1_answered_again_after_s=round(back_v1 - moments["rolled_back"], 2) if back_v1 else None,
                    by_version={v: sum(1 for _, x in versions if x == v) for v in ("v1", "v2")})
        return {"backend": backend, "runs": runs, "promotion": swap}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if registry.champion_info(params.paths.registry)["version"] != "v1":
            registry.set_champion(params.paths.registry, "v1", action="rollback", reason="benchmark reset")


# ---- report ------------------------------------------------------------------------------------------

def markdown(result: dict) -> str:
    off, m = result["offline"], result["machine"]
    t = off["throughput"]
    torch64, int8_64 = t["torch fp32"]["batch_64"]["texts_per_s"], t["onnxruntime int8"]["batch_64"]["texts_per_s"]
    torch1, int8_1 = t["torch fp32"]["batch_1"]["texts_per_s"], t["onnxruntime int8"]["batch_1"]["texts_per_s"]
    acc = off["accuracy"]
    lines = [
        "# Serving benchmark: torch vs onnxruntime, the endpoint under load", "",
        f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
        f"Machine: {m['cpu']}, {m['cores']} cores (AVX2 {'yes' if m['avx2'] else 'no'}, VNNI "
        f"{'yes' if m['vnni'] else 'no'}), no GPU; Python {m['python']}, torch {m['torch']}, onnxruntime "
        f"{m['onnxruntime']}, transformers {m['transformers']}, uvicorn {m['uvicorn']}  ",
        f"Load average (1, 5, 15 min) before: {result['load_before']}, after the offline part: "
        f"{result['load_offline']}, at the end: {result['load_after']} (the machine is shared)  ",
        f"Champion: {result['champion']}; test split {off['test_rows']} rows; {off['threads']} threads everywhere.",
        "", "## Throughput (texts/s end to end: tokenizing + model + softmax; median of interleaved rounds)", "",
        "| backend | batch 1 | batch 64 | rounds (batch 64) |", "|---|---|---|---|"]
    for name, row in t.items():
        lines.append(f"| {name} | {row['batch_1']['texts_per_s']} | {row['batch_64']['texts_per_s']} | "
                     f"{row['batch_64']['rounds']} |")
    lines += ["", f"int8 against torch fp32: **{int8_64 / torch64:.2f}x** at batch 64, {int8_1 / torch1:.2f}x at "
              "batch 1 (goal: at least 2x).", "",
              "## Accuracy on the test split", "",
              "| backend | accuracy | macro-F1 | change vs torch (points, 95% interval) | rows whose label changed |",
              "|---|---|---|---|---|"]
    for name, row in acc.items():
        change = (f"{row['change_points']:+.2f} [{row['interval_points'][0]:+.2f}, {row['interval_points'][1]:+.2f}]"
                  if "change_points" in row else "-")
        lines.append(f"| {name} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | {change} | "
                     f"{row.get('rows_changed', '-')} |")
    lines += ["", f"Goal: int8 loses at most 0.5 points: change {acc['onnxruntime int8']['change_points']:+.2f} "
              "points.", ""]
    for ep in result["endpoint"]:
        offline64 = t[{"torch": "torch fp32", "onnx": "onnxruntime fp32",
                       "onnx_int8": "onnxruntime int8"}[ep["backend"]]]["batch_64"]["texts_per_s"]
        lines += [f"## The endpoint, backend `{ep['backend']}` (one text per request)", "",
                  "| clients | texts/s | % of offline batch 64 | texts per pass | p50 ms | p95 ms | p99 ms | sent | errors "
                  "| load avg |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in ep["runs"]:
            lines.append(f"| {r['clients']} | {r['texts_per_s']} | {100 * r['texts_per_s'] / offline64:.0f}% | "
                         f"{r.get('texts_per_pass', '-')} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['sent']} | {r['errors']} | "
                         f"{r['load_average']} |")
        s = ep["promotion"]
        lines += ["", f"Promotion during load (32 clients, {s['seconds']} s): v2 made champion at {s['promoted']} s, "
                  f"rolled back at {s['rolled_back']} s; {s['sent']} requests sent, {s['answered']} answered, "
                  f"{s['errors']} errors, {s['dropped']} dropped; v2 answered {s['v2_answered_after_s']} s after "
                  f"its promotion, v1 {s['v1_answered_again_after_s']} s after the rollback; answers by version "
                  f"{s['by_version']}; p99 {s['p99_ms']} ms.", ""]
    lines += ["## Goals", "", *[f"- {g}" for g in result["goals"]], ""]
    return "\n".join(lines)


def goals(result: dict) -> list[str]:
    t, acc = result["offline"]["throughput"], result["offline"]["accuracy"]
    speed = t["onnxruntime int8"]["batch_64"]["texts_per_s"] / t["torch fp32"]["batch_64"]["texts_per_s"]
    change = acc["onnxruntime int8"]["change_points"]
    out = [f"int8 >= 2x torch fp32 (batch 64): {speed:.2f}x, {'met' if speed >= 2 else 'NOT met'}",
           f"int8 loses <= 0.5 points: {change:+.2f}, {'met' if change >= -0.5 else 'NOT met'}"]
    names = {"torch": "torch fp32", "onnx": "onnxruntime fp32", "onnx_int8": "onnxruntime int8"}
    for ep in result["endpoint"]:
        at32 = next(r for r in ep["runs"] if r["clients"] == 32)
        share = at32["texts_per_s"] / t[names[ep["backend"]]]["batch_64"]["texts_per_s"]
        errors = sum(r["errors"] for r in ep["runs"])
        swap = ep["promotion"]
        out += [f"`{ep['backend']}` endpoint at 32 clients >= 70% of offline batch 64: {share:.0%}, "
                f"{'met' if share >= 0.7 else 'NOT met'}; errors {errors}, {'met' if errors == 0 else 'NOT met'}",
                f"`{ep['backend']}` promotion under load: {swap['errors']} errors, {swap['dropped']} dropped, "
                f"{'met' if swap['errors'] == 0 and swap['dropped'] == 0 else 'NOT met'}"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="folder for the benchmark's project (default: a temp folder)")
    parser.add_argument("--out", default="bench/results/serving")
    parser.add_argument("--rows", type=int, default=9000, help="AG News rows the champion is trained and tested on")
    parser.add_argument("--seconds", type=float, default=20, help="seconds per endpoint load level")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of every backend")
    parser.add_argument("--backends", default="torch,onnx_int8", help="endpoint backends to load-test")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not AGNEWS.is_file():
        sys.exit(f"{AGNEWS} not found: this benchmark reads AG News from ../shared/data (see its README)")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="driftfit-bench-serving-"))
    result: dict = {"command": "python -m bench.serving " + " ".join(sys.argv[1:]),
                    "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                    "load_before": load_average()}
    params = build_champion(work, args.rows)
    from driftfit.data.splits import read_split
    from driftfit.serving.export import run as export_version
    from driftfit.serving.onnx_runner import find_export

    for version in ("v1", "v2"):  # both exported first: the promotion under load measures the swap, not an export
        if find_export(params.paths.registry, version, params.absolute(params.export.dir), None) is None:
            export_version(params, version)
    test = read_split(params.paths.prepared, "test", required=True)
    result["champion"] = (f"head on MiniLM, AG News ({args.rows} rows sampled from agnews/dev.tsv; 4 topics), through "
                          "prepare, train, evaluate, promote")
    result["offline"] = offline(params, test, args.rounds, args.threads)
    result["load_offline"] = load_average()
    result["endpoint"] = [endpoint_runs(params, work / "params.yaml", backend, list(test["text"]), args.seconds,
                                        args.threads, work) for backend in args.backends.split(",")]
    result["load_after"] = load_average()
    result["goals"] = goals(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "serving.md").write_text(markdown(result))
    print(markdown(result))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
