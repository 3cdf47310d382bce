"""The HTTP side: OpenAI-compatible routes on Starlette, served by uvicorn.

Routes: ``POST /v1/completions`` (JSON, or server-sent events with ``stream``),
``GET /v1/models``, ``GET /health`` and the playground page at ``/``. Requests only
check, admit and read: the characters come from the engine thread (``engine.py``).

Admission counts streams (choices): past ``max_streams`` a request is refused with 429
and ``Retry-After`` instead of queueing without bound. A stream's slot is released the
moment its response ends, whether it finished or the client went away, and the engine
drops its rows at the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from charrnn.errors import CharRNNError
from charrnn.safetext import dumps
from charrnn.serve import protocol
from charrnn.serve.engine import Choice, Engine, Job, Settings
from charrnn.serve.models import Models, UnknownModel
from charrnn.serve.playground import PAGE
from charrnn.serve.protocol import ApiError

log = logging.getLogger("charrnn.serve")
MAX_BODY = 1024 * 1024  # bytes
POLL = 0.25  # seconds between disconnect checks while a non-streamed request waits
FLUSH = 0.02  # seconds between events of a stream, more past 16 streams (the first: at once)


@dataclass
class Limits:
    max_streams: int = 128  # concurrent choices being generated, all models together
    max_chars: int = 4096  # the largest max_tokens a request may ask for
    api_key: str | None = None  # required as "Authorization: Bearer <key>" when set


class JSON(JSONResponse):
    """A JSON response through the one encoder (safetext.dumps): valid JSON whatever it
    holds (a NaN as null, a name that is not UTF-8 shown as \\xNN), never a 500."""

    def render(self, content: Any) -> bytes:
        return dumps(content, separators=(",", ":")).encode("utf-8")


def _error(e: ApiError) -> JSONResponse:
    return JSON(e.body(), status_code=e.status, headers=e.headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _read_json(request: Request) -> Any:
    """The body as JSON, refusing more than MAX_BODY bytes before reading them all."""
    length = request.headers.get("content-length", "")
    if length and (not length.isdigit() or int(length) > MAX_BODY):
        raise ApiError(413, f"the request body is over {MAX_BODY} bytes")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > MAX_BODY:
            raise ApiError(413, f"the request body is over {MAX_BODY} bytes")
    try:
        return json.loads(bytes(data), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"the request body is not valid JSON ({str(e)[:100]})") from None


def _sse(obj: Any) -> str:
    return f"data: {dumps(obj, separators=(',', ':'))}\n\n"


class _Stream(StreamingResponse):
    """A streamed response that releases its slots however it ends (even unstarted)."""

    def __init__(self, content: Any, release: Any) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._release_slots = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release_slots()


class Server:
    """Routes over a set of models and one engine."""

    def __init__(self, models: Models, limits: Limits) -> None:
        self.models, self.limits = models, limits
        self.engine: Engine | None = None
        self.active = 0  # streams admitted and not yet released

    def check_auth(self, request: Request) -> None:
        key = self.limits.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "").encode("latin-1")
        if not hmac.compare_digest(given, f"Bearer {key}".encode()):
            raise ApiError(401, "a valid API key is required: send the header "
                                "'Authorization: Bearer <key>'", code="invalid_api_key",
                           headers={"WWW-Authenticate": "Bearer"})

    async def page(self, request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def health(self, request: Request) -> Response:
        rows = self.engine.rows() if self.engine else 0
        return JSON({"status": "ok", "streams": self.active, "rows": rows,
                             "max_streams": self.limits.max_streams})

    async def list_models(self, request: Request) -> Response:
        try:
            self.check_auth(request)
        except ApiError as e:
            return _error(e)
        names = await run_in_threadpool(self.models.names)
        return JSON({"object": "list", "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "charrnn"} for n in names]})

    async def completions(self, request: Request) -> Response:
        try:
            self.check_auth(request)
            req = protocol.parse(await _read_json(request), self.limits.max_chars,
                                 self.limits.max_streams)
            try:
                found = self.models.cached(req.model)
                if found is None:
                    found = await run_in_threadpool(self.models.get, req.model)
                name, model = found
            except UnknownModel as e:
                raise ApiError(404, str(e), "model", "model_not_found") from None
            except CharRNNError as e:
                raise ApiError(503, f"the model cannot be loaded: {e}", "model",
                               kind="server_error") from None
            try:
                prime, _ = model.clean_prime(req.prompt, req.drop_unknown)
            except CharRNNError as e:
                why = str(e).replace("--drop-unknown", '"drop_unknown": true')
                raise ApiError(400, f"'prompt': {why}", "prompt", "unknown_characters"
                               ) from None
            start = model.start_ids(prime)
        except ApiError as e:
            return _error(e)
        reply = protocol.Completion(name)
        echo = prime if req.echo else ""
        if req.max_tokens == 0:
            usage = reply.usage(len(prime), 0)
            if not req.stream:
                return JSON(reply.full([echo] * req.n, ["length"] * req.n, usage))
            events = [_sse(reply.chunk(i, echo, "length")) for i in range(req.n)]
            tail = [_sse(reply.usage_chunk(usage))] if req.include_usage else []
            return _Stream(iter([*events, *tail, "data: [DONE]\n\n"]), lambda: None)
        if self.active + req.n > self.limits.max_streams:
            return _error(ApiError(429, f"the server is generating {self.active} streams, "
                                        f"its limit (--max-streams) is "
                                        f"{self.limits.max_streams}; retry shortly",
                                   code="rate_limit_exceeded", kind="rate_limit_error",
                                   headers={"Retry-After": "1"}))
        self.active += req.n
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= req.n
                job.cancelled = not job.done

        settings = Settings(req.max_tokens, req.decoding, req.stop)
        seed = model_seed(req.seed)
        choices = [Choice(i, seed + i, settings) for i in range(req.n)]
        loop, ready = asyncio.get_running_loop(), asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to wake
                loop.call_soon_threadsafe(ready.set)

        job = Job(start, choices, wake)
        assert self.engine is not None
        self.engine.submit(model, job)
        if req.stream:
            return _Stream(self._events(job, ready, reply, echo, len(prime),
                                        req.include_usage), release)
        try:
            return await self._collect(request, job, ready, reply, echo, len(prime))
        finally:
            release()

    async def _collect(self, request: Request, job: Job, ready: asyncio.Event,
                       reply: protocol.Completion, echo: str, prompt_chars: int) -> Response:
        """Wait for all choices; give up (and free the rows) if the client leaves."""
        while not job.done:
            ready.clear()
            job.woken()
            if job.done:
                break
            try:
                await asyncio.wait_for(ready.wait(), POLL)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return Response(status_code=499)
        if job.error:
            return _error(ApiError(500, f"generation failed: {job.error}", kind="server_error"))
        texts = [c.take() for c in job.choices]
        usage = reply.usage(prompt_chars, sum(c.produced for c in job.choices))
        return JSON(reply.full([echo + t for t in texts],
                                       [c.finish_reason or "length" for c in job.choices], usage))

    async def _events(self, job: Job, ready: asyncio.Event, reply: protocol.Completion,
                      echo: str, prompt_chars: int, include_usage: bool):
        """Server-sent events: text as it is released, a finish chunk per choice, [DONE]."""
        if echo:
            for c in job.choices:
                yield _sse(reply.chunk(c.index, echo))
        open_ = list(job.choices)
        while open_:
            ready.clear()
            job.woken()
            for c in list(open_):
                reason = c.finish_reason  # read before draining: its text is all out then
                text = c.take()
                if text:
                    yield reply.text_event(c.index, text)
                if reason:
                    yield _sse(reply.chunk(c.index, "", reason))
                    open_.remove(c)
            if job.error:
                yield _sse(ApiError(500, f"generation failed: {job.error}",
                                    kind="server_error").body())
                return
            if open_:
                # Let characters gather for a moment: the loop's work is per event sent,
                # so this bounds it at 16/FLUSH events per second in all however fast the
                # engine runs (and Event.wait alone would not yield to other tasks).
                await asyncio.sleep(FLUSH * max(1.0, self.active / 16))
                await ready.wait()
        if include_usage:
            yield _sse(reply.usage_chunk(reply.usage(
                prompt_chars, sum(c.produced for c in job.choices))))
        yield "data: [DONE]\n\n"

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        self.engine = Engine()
        try:
            yield
        finally:
            self.engine.stop()


def model_seed(seed: int | None) -> int:
    from charrnn.generate.sampler import fresh_seed

    return fresh_seed() if seed is None else seed


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else None
    return _error(ApiError(exc.status_code, f"{request.method} {request.url.path}: "
                                            f"{exc.detail}", code=code))


def create_app(models: Models, limits: Limits) -> Starlette:
    server = Server(models, limits)
    routes = [Route("/", server.page), Route("/health", server.health),
              Route("/v1/models", server.list_models),
              Route("/v1/completions", server.completions, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=server.lifespan,
                    exception_handlers={HTTPException: _http_error})
    app.state.server = server
    return app
