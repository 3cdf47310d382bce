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

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from charrnn.errors import CharRNNError, ConfigError
from charrnn.generate.sampler import Sampler
from charrnn.generate.scores import openai
from charrnn.generate.steer import Rules, Steer
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
            primes = [_prime(model, p, req.drop_unknown, i if len(req.prompts) > 1 else None)
                      for i, p in enumerate(req.prompts)]
            starts = [model.start_ids(p) for p in primes]
            rules, steers = await run_in_threadpool(_steers, model, req, primes, starts)
        except ApiError as e:
            return _error(e)
        if self.active + req.streams > self.limits.max_streams:
            return _error(ApiError(429, f"the server is generating {self.active} streams, "
                                        f"its limit (--max-streams) is "
                                        f"{self.limits.max_streams}; retry shortly",
                                   code="rate_limit_exceeded", kind="rate_limit_error",
                                   headers={"Retry-After": "1"}))
        self.active += req.streams
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= req.streams
                for job in jobs:
                    job.cancelled = not job.done

        settings = Settings(req.max_tokens, req.decoding, req.stop, rules, req.logprobs,
                            scored=req.logprobs is not None or req.best_of > req.n)
        seed = model_seed(req.seed)
        loop, ready = asyncio.get_running_loop(), asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to wake
                loop.call_soon_threadsafe(ready.set)

        k = req.best_of  # candidate j of prompt p: index and seed offset p * k + j
        jobs = [Job(start, [Choice(p * k + j, seed + p * k + j, settings) for j in range(k)],
                    wake, steer, prime if req.echo else "")
                for p, (prime, start, steer) in enumerate(zip(primes, starts, steers,
                                                              strict=True))]
        assert self.engine is not None
        for job in jobs:
            self.engine.submit(model, job)
        reply, prompt_chars = protocol.Completion(name), sum(map(len, primes))
        if req.stream:
            return _Stream(self._events(jobs, ready, reply, prompt_chars, req), release)
        try:
            return await self._collect(request, jobs, ready, reply, prompt_chars, req)
        finally:
            release()

    async def _collect(self, request: Request, jobs: list[Job], ready: asyncio.Event,
                       reply: protocol.Completion, prompt_chars: int,
                       req: protocol.Request) -> Response:
        """Wait for all choices; give up (and free the rows) if the client leaves. With
        ``best_of``, each prompt's n candidates with the best mean log-probability."""
        while not all(job.done for job in jobs):
            ready.clear()
            for job in jobs:
                job.woken()
            if all(job.done for job in jobs):
                break
            try:
                await asyncio.wait_for(ready.wait(), POLL)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return Response(status_code=499)
        if failed := next((job.error for job in jobs if job.error), None):
            return _error(ApiError(500, f"generation failed: {failed}", kind="server_error"))
        choices = []
        for job in jobs:
            best = sorted(job.choices, key=lambda c: -c.mean_logprob) if req.best_of > req.n \
                else job.choices
            for c in best[:req.n]:
                text, scores = c.take()
                lp = None if scores is None else openai(text, scores)
                choices.append((text, c.finish_reason or "length", lp))
        usage = reply.usage(prompt_chars, sum(c.produced for job in jobs for c in job.choices))
        return JSON(reply.full(choices, usage))

    async def _events(self, jobs: list[Job], ready: asyncio.Event,
                      reply: protocol.Completion, prompt_chars: int, req: protocol.Request):
        """Server-sent events: text as it is released, a finish chunk per choice, [DONE]."""
        open_ = [c for job in jobs for c in job.choices]
        sent = dict.fromkeys((c.index for c in open_), 0)  # characters sent per choice
        while open_:
            ready.clear()
            for job in jobs:
                job.woken()
            for c in list(open_):
                reason = c.finish_reason  # read before draining: its text is all out then
                text, scores = c.take()
                if text and scores is not None:
                    yield _sse(reply.chunk(c.index, text, None,
                                           openai(text, scores, sent[c.index])))
                elif text:
                    yield reply.text_event(c.index, text)
                sent[c.index] += len(text)
                if reason:
                    yield _sse(reply.chunk(c.index, "", reason))
                    open_.remove(c)
            if failed := next((job.error for job in jobs if job.error), None):
                yield _sse(ApiError(500, f"generation failed: {failed}",
                                    kind="server_error").body())
                return
            if open_:
                # Let characters gather for a moment: the loop's work is per event sent,
                # so this bounds it at 16/FLUSH events per second in all however fast the
                # engine runs (and Event.wait alone would not yield to other tasks).
                await asyncio.sleep(FLUSH * max(1.0, self.active / 16))
                await ready.wait()
        if req.include_usage:
            yield _sse(reply.usage_chunk(reply.usage(
                prompt_chars, sum(c.produced for job in jobs for c in job.choices))))
        yield "data: [DONE]\n\n"

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        self.engine = Engine()
        try:
            yield
        finally:
            self.engine.stop()


def _prime(model: Sampler, prompt: str, drop_unknown: bool, number: int | None) -> str:
    """A prompt as the model reads it; a 400 naming its unknown characters."""
    try:
        prime, _ = model.clean_prime(prompt, drop_unknown)
    except CharRNNError as e:
        why = str(e).replace("--drop-unknown", '"drop_unknown": true')
        where = "" if number is None else f"prompt {number}: "
        raise ApiError(400, f"'prompt': {where}{why}", "prompt", "unknown_characters"
                       ) from None
    return prime


def _steers(model: Sampler, req: protocol.Request, primes: list[str],
            starts: list[np.ndarray]) -> tuple[Rules | None, list[Steer | None]]:
    """The request's pre-pick rules (a regex's automaton is built here, in a worker
    thread, once per model and decoding) and one steer per prompt that has read it."""
    try:
        rules = model.rules(req.decoding, req.stop)
    except ConfigError as e:
        field = e.field or "regex"
        raise ApiError(400, f"'{field}': {e}", field) from None
    if rules is None:
        return None, [None] * len(primes)
    if rules.least() > req.max_tokens:
        raise ApiError(400, f"'max_tokens': the regex needs at least {rules.least()} "
                            f"characters, max_tokens is {req.max_tokens}", "max_tokens")
    return rules, [rules.start(ids if p else []) for p, ids in zip(primes, starts,
                                                                    strict=True)]


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
