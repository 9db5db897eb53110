"""`driftfit serve`: the champion behind an HTTP endpoint (FastAPI on uvicorn).

  POST /predict   {"texts": ["...", ...]}  ->  {"version": "v3", "predictions": [{"label", "probability"}, ...]}
                  ("all_probabilities": true adds every label's; an image champion reads {"images": [base64]})
  GET  /health    200 {"status": "ok", "version": ...}; 503 while no champion is loaded
  GET  /version   the serving version: labels, strategy, when it was promoted, backend

Why FastAPI + uvicorn: both are installed already (Prefect's server runs on them), they are well kept, and the
two things this endpoint needs beyond a route fit in this file: batching concurrent requests and swapping the
model in place. LitServe batches too, but runs the model in worker processes (a copy of the model each, little
gain on a 2-core machine) and has no way to swap a model on a file change; BentoML adds its own packaging and
many pinned dependencies beside Prefect's.

Micro-batching: requests wait in a queue; one task takes what is queued (up to `serve.max_batch` texts) and
scores it in one pass on a single scoring thread, so the event loop keeps accepting requests meanwhile and the
next pass takes everything that arrived. A pass waits at most `serve.max_wait_ms` for as many texts as the pass
before it had: the clients it just answered are sending again, and without the wait every other pass would
start with the first few of them (half-size passes); a lone client never waits. Hot reload: another task reads
champion.json every `serve.reload_poll_s`; when it names another version (a promotion, or a rollback: the
pointer decides), that version is loaded and verified on a separate thread while the old one keeps serving,
then swapped in between two passes. No request is dropped or fails; each response names the version that
scored it. A version that fails to load (damaged files) is not served: the old one stays, /health says why.

Bad requests get a 4xx and a one-line message, never a 500: a body over `serve.max_body_bytes` (413, read no
further), not JSON (400), the wrong shape, an empty list, too many texts, a non-string, an empty or too long
text (422).
"""

from __future__ import annotations

import asyncio
import functools
import datetime as dt
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from driftfit.state import registry
from driftfit.errors import BadRequest, ConfigError, DriftfitError
from driftfit.serving.champion import rows_of

log = logging.getLogger(__name__)


# ---- the request, checked ----------------------------------------------------------------------

_KIND = {str: "a string", int: "a number", float: "a number", bool: "true/false", type(None): "null", list: "a list",
         dict: "an object"}


def parse_request(data: Any, parts, max_items: int, max_chars: int, max_pixels: int = 40_000_000) -> tuple:
    """(the items to score, all_probabilities) from a parsed JSON body, or BadRequest saying what is wrong. `parts`:
    the champion's modality's serving parts (its REQUEST_KEY: the list the body holds, e.g. "texts"); strings are
    scored as sent, unless the modality decodes them (decode_request_item: images as base64 files)."""
    key = parts.REQUEST_KEY
    decode = getattr(parts, "decode_request_item", None)
    example = parts.REQUEST_EXAMPLE
    if not isinstance(data, dict):
        raise BadRequest(422, f"the body is {_KIND.get(type(data), 'a value')}; expected a JSON object like {example}")
    unknown = sorted(set(data) - {key, "all_probabilities"})
    if unknown:
        others = sorted(set(unknown) & set(_request_keys()) - {key})
        why = f" (this champion reads {key}, not {others[0]})" if others else ""
        raise BadRequest(422, f"unknown key(s) {unknown}{why}; expected {example}, optionally \"all_probabilities\": true")
    if key not in data:
        raise BadRequest(422, f"no \"{key}\" in the body; expected {example}")
    items, all_probs = data[key], data.get("all_probabilities", False)
    if not isinstance(all_probs, bool):
        raise BadRequest(422, f"\"all_probabilities\" is {_KIND.get(type(all_probs), 'a value')}; expected true or false")
    if not isinstance(items, list):
        raise BadRequest(422, f"\"{key}\" is {_KIND.get(type(items), 'a value')}; expected a list of strings, e.g. {example}")
    if not items:
        raise BadRequest(422, f"\"{key}\" is empty; expected 1 to {max_items} {key}")
    if len(items) > max_items:
        raise BadRequest(422, f"\"{key}\" has {len(items)} items; at most {max_items} per request (serve.max_texts): "
                              "split it into several requests")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise BadRequest(422, f"{key}[{i}] is {_KIND.get(type(item), 'a value')}; expected a string")
        if decode is None:
            if not item.strip():
                raise BadRequest(422, f"{key}[{i}] is empty; expected a text with at least one visible character")
            if len(item) > max_chars:
                raise BadRequest(422, f"{key}[{i}] has {len(item):,} characters; at most {max_chars:,} "
                                      "(serve.max_text_chars)")
    if decode is not None:
        items = [decode(x, i, max_pixels) for i, x in enumerate(items)]
    return items, all_probs


@functools.cache
def _request_keys() -> tuple[str, ...]:
    """Every modality's request key (to tell a client that sent images to a text champion what it reads)."""
    from driftfit.modalities import available, serving_parts

    keys = []
    for name in available():
        try:
            keys.append(serving_parts(name).REQUEST_KEY)
        except ConfigError:  # a modality without a serving module has no key
            continue
    return tuple(keys)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed `limit` bytes: by its Content-Length, or while it
    streams in; never read whole first."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body is {int(declared):,} bytes; at most {limit:,} (serve.max_body_bytes)")
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BadRequest(413, f"the body is over {limit:,} bytes (serve.max_body_bytes)")
        parts.append(part)
    return b"".join(parts)


# ---- the serving state: the champion, the queue, the reloader -------------------------------------

@dataclass
class _Job:
    items: list
    all_probs: bool
    future: asyncio.Future


@dataclass
class Server:
    """What the endpoint holds: the champion serving now, the queue of requests, the reload state."""
    registry_dir: Path
    loader: Callable[[str | None], Any]   # version (None: the pointer's) -> Champion, loaded and verified
    max_batch: int = 64
    max_wait_s: float = 0.01
    poll_s: float = 1.0
    champion: Any = None
    loaded_at: str | None = None
    problem: str | None = None            # why the pointer's version is not the one serving (a failed load)
    failed: str | None = None             # the version that failed to load (not retried until the pointer moves)
    served: int = 0                       # texts scored
    passes: int = 0                       # forward passes (a pass scores every request it took)
    queue: asyncio.Queue | None = None
    tasks: list = field(default_factory=list)
    scorer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="score"))
    loading: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="load"))

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        await self._reload(initial=True)
        self.tasks = [asyncio.create_task(self._batches()), asyncio.create_task(self._watch())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.scorer.shutdown(wait=True)
        self.loading.shutdown(wait=False, cancel_futures=True)

    # ---- batching ----

    async def score(self, items: list, all_probs: bool) -> tuple[str, list]:
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Job(items, all_probs, future))
        return await future

    async def _batches(self) -> None:
        loop = asyncio.get_running_loop()
        last = 1  # texts in the pass before: the clients it answered are likely to send again
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0].items)
            deadline = loop.time() + self.max_wait_s
            while size < self.max_batch:  # take what waits; wait (at most max_wait) for as many as last time
                if not self.queue.empty():
                    job = self.queue.get_nowait()
                    jobs.append(job)
                    size += len(job.items)
                elif size >= min(last, self.max_batch) or loop.time() >= deadline:
                    break
                else:
                    await asyncio.sleep(0.001)
            last = size
            champion = self.champion  # one version scores the whole pass
            items = [x for job in jobs for x in job.items]
            try:
                probs = await loop.run_in_executor(self.scorer, champion.predict_proba, items)
            except Exception as err:  # noqa: BLE001 - every waiting request learns it, none hangs
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            start = 0
            for job in jobs:
                part = probs[start:start + len(job.items)]
                start += len(job.items)
                if not job.future.done():  # a client that went away cancelled its future
                    job.future.set_result((champion.version, rows_of(part, champion.labels, job.all_probs)))
            self.served += len(items)
            self.passes += 1

    # ---- hot reload ----

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self._reload()
            except Exception as err:  # noqa: BLE001 - the watcher must outlive any one bad read
                log.warning("reload check failed: %s", err)

    async def _reload(self, initial: bool = False) -> None:
        loop = asyncio.get_running_loop()
        try:
            info = await loop.run_in_executor(self.loading, registry.champion_info, self.registry_dir)
        except DriftfitError as err:  # a broken pointer: keep serving what is loaded
            self.problem = str(err)
            return
        wanted = info["version"] if info else None
        current = self.champion.version if self.champion is not None else None
        if wanted == current:  # nothing to do; a problem reported before (a broken pointer) is over
            self.problem = self.failed = None
            return
        if wanted is None or wanted == self.failed:  # nothing promoted yet, or a load that failed already
            return
        try:
            champion = await loop.run_in_executor(self.loading, self.loader, wanted)
        except Exception as err:  # noqa: BLE001 - damaged files, or a model that does not load: not retried
            self.failed, self.problem = wanted, f"{wanted} could not be loaded: {err}"
            log.error("not serving %s: %s", wanted, err)
            return
        self.champion, self.failed, self.problem = champion, None, None
        self.loaded_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        log.info("serving %s%s", wanted, "" if initial else f" (was {current})")


# ---- the app -------------------------------------------------------------------------------------

def create_app(server: Server, max_texts: int = 256, max_text_chars: int = 20000,
               max_body_bytes: int = 2_000_000) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await server.start()
        yield
        await server.stop()

    app = FastAPI(title="driftfit", description="The champion of a driftfit registry", lifespan=lifespan)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest):
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.post("/predict")
    async def predict(request: Request):
        """{"texts": [...]} (or {"images": [base64, ...]}) -> a label and its probability per input."""
        champion = server.champion
        if champion is None:
            return JSONResponse({"error": server.problem or "no champion yet"}, status_code=503)
        body = await read_body(request, max_body_bytes)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise BadRequest(400, f"the body is not JSON ({type(err).__name__}: {str(err)[:80]}); expected "
                                  f"Content-Type application/json and a body like {champion.parts.REQUEST_EXAMPLE}") from None
        items, all_probs = parse_request(data, champion.parts, max_texts, max_text_chars)
        version, rows = await server.score(items, all_probs)
        return {"version": version, "predictions": rows}

    @app.get("/health")
    async def health():
        if server.champion is None:
            return JSONResponse({"status": "no champion", "problem": server.problem}, status_code=503)
        return {"status": "ok", "version": server.champion.version, "problem": server.problem,
                "scored": server.served, "passes": server.passes}

    @app.get("/version")
    async def version():
        champion = server.champion
        if champion is None:
            return JSONResponse({"error": server.problem or "no champion yet"}, status_code=503)
        record = champion.record
        return {"version": champion.version, "modality": champion.modality, "labels": champion.labels,
                "backend": champion.backend, "strategy": record.get("strategy"),
                "promoted_at": record.get("promoted_at"), "serving_since": server.loaded_at}

    return app


def build(params, backend: str | None = None) -> tuple[FastAPI, Server]:
    """The app for params.yaml's registry and serve section. The ONNX backends export a version first when it
    has no export yet (on the loading thread, while the old version serves)."""
    from driftfit.serving.champion import load, resolve
    from driftfit.serving.onnx_runner import find_export
    from driftfit.serving import export as export_step

    cfg = params.serve
    backend = backend or cfg.backend
    root = Path(params.paths.registry)
    exports = Path(params.absolute(params.export.dir))

    if backend == "torch":
        from driftfit.training.device import pick_device

        pick_device(cfg.device, "serve.device")  # its own key in the error, before anything loads

    def loader(version: str | None):
        if backend != "torch":
            name, record = resolve(root, version)
            if find_export(root, name, exports, record.get("model_sha256")) is None:
                export_step.run(params, name)
        return load(root, version, backend=backend, device=cfg.device, batch_size=cfg.max_batch, exports=exports,
                    trust_remote_code=params.model.trust_remote_code, threads=cfg.threads)

    server = Server(root, loader, cfg.max_batch, cfg.max_wait_ms / 1000, cfg.reload_poll_s)
    return create_app(server, cfg.max_texts, cfg.max_text_chars, cfg.max_body_bytes), server
