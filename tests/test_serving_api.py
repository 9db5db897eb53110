"""`driftfit serve` as a real server process (uvicorn on a free loopback port) over a registry of real heads:
answers like the Python API, refuses bad requests with a 4xx and a message, batches concurrent requests, and
takes over a promotion, a rollback and a damaged version while requests stream in, without failing one.

v1 and v2 are heads of the same features with strong and weak regularisation, so their probabilities differ
by far more than float noise: a response's probabilities show which model really scored it, not only the
version it names.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from driftfit.state import registry
from driftfit.config import load_params
from driftfit.data.splits import read_split
from driftfit.serving import load
from driftfit.serving.app import Server
from tests.conftest import free_port
from tests.serving_registry import clear_margin, offline, shared_text_project

ATOL = 1e-4  # a response against the Python API: other batch compositions, the same model


@pytest.fixture(scope="module")
def project(tmp_path_factory, default_data_dir):
    return shared_text_project(tmp_path_factory, default_data_dir, "serving-api")


@pytest.fixture(scope="module")
def params_file(project) -> Path:
    return Path(project.paths.registry).parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def texts(project) -> list[str]:
    return list(read_split(project.paths.prepared, "test", required=True)["text"])[:12]


@pytest.fixture(scope="module")
def expected(project, texts) -> dict[str, np.ndarray]:
    probs = {v: offline(project, v, texts) for v in ("v1", "v2")}
    assert np.abs(probs["v1"] - probs["v2"]).max() > 0.1  # the two versions are told apart by their outputs
    return probs


@pytest.fixture(scope="module")
def server(params_file, tmp_path_factory):
    """`driftfit serve` in its own process; its log is shown if it does not come up."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "driftfit.cli", "serve", "--params", str(params_file),
                                 "--port", str(port), "-S", "serve.reload_poll_s=0.2", "-S", "serve.max_text_chars=1000"],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        assert proc.poll() is None, f"driftfit serve exited: {log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"driftfit serve did not come up: {log.read_text()[-3000:]}"
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def check(response: httpx.Response, probs: np.ndarray, labels: list[str], version: str) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == version
    got = body["predictions"]
    assert len(got) == len(probs)
    assert np.allclose([p["probability"] for p in got], probs.max(1), atol=ATOL)
    sure = clear_margin(probs)
    assert [p["label"] for p, s in zip(got, sure) if s] == [labels[k] for k, s in zip(probs.argmax(1), sure) if s]


# ---- requests ---------------------------------------------------------------------------------------

def test_predict_answers_like_the_python_api(server, project, texts, expected):
    labels = load(project.paths.registry, device="cpu").labels
    check(httpx.post(f"{server}/predict", json={"texts": texts}, timeout=60), expected["v1"], labels, "v1")
    full = httpx.post(f"{server}/predict", json={"texts": texts[:2], "all_probabilities": True}, timeout=60).json()
    for row, probs in zip(full["predictions"], expected["v1"][:2]):
        assert list(row["probabilities"]) == labels
        assert np.allclose(list(row["probabilities"].values()), probs, atol=ATOL)
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["version"] == "v1" and health["problem"] is None
    version = httpx.get(f"{server}/version").json()
    assert version["version"] == "v1" and version["labels"] == labels and version["strategy"] == "head"
    assert version["backend"] == "torch" and version["modality"] == "text"


TEN_MB = b'{"texts": ["' + b"a" * 10_000_000 + b'"]}'
BAD = [
    (b'{"texts": []}', 422, '"texts" is empty; expected 1 to 256 texts'),
    (b'{"texts": "hello"}', 422, '"texts" is a string; expected a list of strings'),
    (b'{"texts": [1, 2]}', 422, "texts[0] is a number; expected a string"),
    (b'{"texts": ["ok", null]}', 422, "texts[1] is null; expected a string"),
    (b'{"texts": ["ok", ["nested"]]}', 422, "texts[1] is a list; expected a string"),
    (b'{"texts": ["   "]}', 422, "texts[0] is empty"),
    (b'{"texts": ["' + b"a" * 5000 + b'"]}', 422, "texts[0] has 5,000 characters; at most 1,000"),
    (json.dumps({"texts": ["hi"] * 257}).encode(), 422, '"texts" has 257 items; at most 256 per request'),
    (b'{"text": ["hi"]}', 422, "unknown key(s) ['text']"),
    (b'{"images": ["aGk="]}', 422, "this champion reads texts, not images"),
    (b'{"texts": ["hi"], "all_probabilities": "yes"}', 422, '"all_probabilities" is a string; expected true or false'),
    (b'["hi"]', 422, "the body is a list; expected a JSON object"),
    (b"", 400, "the body is not JSON"),
    (b"texts=hi", 400, "the body is not JSON"),
    (b'{"texts": ["\xff\xfe"]}', 400, "the body is not JSON"),
    (TEN_MB, 413, f"the body is {len(TEN_MB):,} bytes; at most 2,000,000"),
]


@pytest.mark.parametrize("body,status,message", BAD, ids=[f"{s}-{m[:30]}" for _, s, m in BAD])
def test_bad_requests_get_a_4xx_and_a_message(server, body, status, message):
    response = httpx.post(f"{server}/predict", content=body, headers={"content-type": "application/json"},
                          timeout=60)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_a_streamed_body_is_cut_off_without_being_read_whole(server):
    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        yield b'{"texts": ["'
        for _ in range(100):
            yield b"a" * 100_000
        yield b'"]}'

    response = httpx.post(f"{server}/predict", content=chunks(), timeout=60)
    assert response.status_code == 413 and "over 2,000,000 bytes" in response.json()["error"]
    assert httpx.get(f"{server}/predict").status_code == 405
    assert httpx.get(f"{server}/health").json()["status"] == "ok"  # none of the above hurt it


# ---- batching: a pass takes every request that waits -------------------------------------------------

@pytest.mark.parametrize("max_batch,passes", [(64, 1), (4, 3)])
def test_concurrent_requests_share_passes(project, texts, expected, max_batch, passes):
    root = Path(project.paths.registry)
    server = Server(root, lambda version: load(root, version, device="cpu"), max_batch=max_batch, max_wait_s=0.05,
                    poll_s=60)

    async def twelve_clients():
        await server.start()
        try:
            return await asyncio.gather(*(server.score([text], False) for text in texts))
        finally:
            await server.stop()

    answers = asyncio.run(twelve_clients())
    assert server.passes == passes and server.served == len(texts)
    labels = server.champion.labels
    for (version, rows), probs in zip(answers, expected["v1"]):
        assert version == "v1" and abs(rows[0]["probability"] - probs.max()) <= ATOL
        if clear_margin(probs[None])[0]:
            assert rows[0]["label"] == labels[int(probs.argmax())]


# ---- hot reload under load ---------------------------------------------------------------------------

class Clients:
    """Threads that post requests until stopped, keeping every answer (or failure) in order."""

    def __init__(self, url: str, texts: list[str], n: int = 6):
        self.url, self.texts, self.stop = url, texts, threading.Event()
        self.answers: list[list[tuple]] = [[] for _ in range(n)]
        self.failures: list[str] = []
        self.sent = 0
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def _run(self, i: int) -> None:
        with httpx.Client(timeout=60) as client:
            k = i
            while not self.stop.is_set():
                picked = [k % len(self.texts), (k + 5) % len(self.texts)]
                k += 1
                self.sent += 1
                try:
                    response = client.post(f"{self.url}/predict", json={"texts": [self.texts[j] for j in picked]})
                except httpx.HTTPError as err:
                    self.failures.append(f"client {i}: {err!r}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"client {i}: {response.status_code} {response.text[:200]}")
                    continue
                body = response.json()
                self.answers[i].append((body["version"], picked, [p["probability"] for p in body["predictions"]]))

    def count(self, version: str | None = None) -> int:
        return sum(1 for answers in self.answers for a in answers if version is None or a[0] == version)

    def wait_for(self, what: str, condition, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; failures: {self.failures[:3]}"
            time.sleep(0.1)


def test_promotion_and_rollback_while_requests_run(server, project, params_file, texts, expected):
    clients = Clients(server, texts)
    for t in clients.threads:
        t.start()
    try:
        clients.wait_for("first answers", lambda: clients.count() >= 20)
        registry.set_champion(project.paths.registry, "v2", action="promote", reason="a test promotion")
        clients.wait_for("v2 to serve", lambda: clients.count("v2") >= 20)
        registry.rollback(load_params(params_file))  # back to v1: the pointer decides
        seen_v1 = clients.count("v1")
        clients.wait_for("v1 to serve again", lambda: clients.count("v1") >= seen_v1 + 20)
    finally:
        clients.stop.set()
        for t in clients.threads:
            t.join(timeout=60)
    assert clients.failures == []
    assert clients.count() == clients.sent  # nothing dropped: every request got its answer
    for answers in clients.answers:
        order = "".join("1" if version == "v1" else "2" for version, _, _ in answers)
        assert re.fullmatch(r"1*2*1*", order), order  # each client saw v1, then v2, then v1 again
        for version, picked, probs in answers:  # and each answer came from the model it names
            assert np.allclose(probs, expected[version][picked].max(1), atol=ATOL), version
    assert httpx.get(f"{server}/health").json()["version"] == "v1"


def test_a_damaged_version_is_not_served(server, project, texts, expected):
    """The pointer names v3, whose files do not match its digest: v1 keeps serving, /health says why; when the
    pointer moves back, the problem is gone."""
    root = Path(project.paths.registry)
    shutil.copytree(root / "v2", root / "v3")
    record = json.loads((root / "v3" / "version.json").read_text())
    (root / "v3" / "version.json").write_text(json.dumps({**record, "version": "v3"}))
    head = root / "v3" / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    clients = Clients(server, texts, n=3)
    for t in clients.threads:
        t.start()
    try:
        registry.set_champion(root, "v3", action="promote", reason="a damaged version")
        clients.wait_for("the refusal", lambda: "v3 could not be loaded" in
                         (httpx.get(f"{server}/health").json()["problem"] or ""), timeout=60)
        seen = clients.count()
        clients.wait_for("more answers", lambda: clients.count() >= seen + 10)
        registry.set_champion(root, "v1", action="rollback", reason="back from the damaged version")
        clients.wait_for("the problem to clear", lambda: httpx.get(f"{server}/health").json()["problem"] is None)
    finally:
        clients.stop.set()
        for t in clients.threads:
            t.join(timeout=60)
    assert clients.failures == [] and clients.count() == clients.sent
    assert {version for answers in clients.answers for version, _, _ in answers} == {"v1"}
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["version"] == "v1"
