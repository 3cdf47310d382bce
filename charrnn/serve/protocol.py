"""The OpenAI completions request, checked field by field, and the response shapes.

Tokens are characters here: ``max_tokens`` counts characters, ``usage`` reports
characters, ``logprobs`` scores characters and ``logit_bias`` is keyed by character.
Every problem with a request is an ``ApiError`` carrying the HTTP status and the OpenAI
error object, so nothing a client sends can become a 500. Fields the OpenAI API has but
a char-RNN cannot honour (the per-token penalties, ``suffix``) are accepted at their
neutral values and refused otherwise; unknown fields are ignored, as llama.cpp's and
vLLM's servers do.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from charrnn.errors import ConfigError
from charrnn.generate.decoding import CONTROLS, Decoding, check, kind
from charrnn.safetext import check_text, shown

MAX_PROMPT = 100_000  # characters: warming reads the prime one character per step
MAX_STOPS = 4  # as the OpenAI API
MAX_SEED = 2**63 - 1
MAX_LOGPROBS = 20  # alternatives per character, as vLLM's default limit


class ApiError(Exception):
    """A request the server refuses: HTTP status plus the OpenAI error object."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param,
                          "code": self.code}}


@dataclass(frozen=True)
class Request:
    """A checked completion request."""

    model: str | None
    prompts: list[str]  # one or more; each gets n choices (best_of candidates)
    max_tokens: int
    decoding: Decoding
    n: int
    stop: tuple[str, ...]
    seed: int | None
    stream: bool
    echo: bool
    include_usage: bool
    drop_unknown: bool
    logprobs: int | None  # alternatives per character; None: no logprobs
    best_of: int  # candidates drawn per prompt, the n with the best mean logprob returned

    @property
    def streams(self) -> int:
        """Rows this request occupies while it runs."""
        return len(self.prompts) * self.best_of


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, f"'{param}': {message}", param=param)


def _int(body: dict, name: str, default: int, lo: int, hi: int) -> int:
    v = _opt_int(body, name, lo, hi)
    return default if v is None else v


def _opt_int(body: dict, name: str, lo: int, hi: int) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(name, f"must be an integer, got {v!r:.40}")
    if not lo <= v <= hi:
        raise _bad(name, f"must be between {lo} and {hi}, got {v}")
    return v


def _decoding(body: dict) -> Decoding:
    """The sampling controls, by the names ``Decoding`` gives them (OpenAI's where it has
    them, ``top_k`` as an extension), checked by the type itself."""
    values = {}
    for name in CONTROLS:
        v = body.get(name)
        if v is None:
            continue
        if kind(name) is int and isinstance(v, float) and v.is_integer():
            v = int(v)
        try:
            values[name] = check(name, v)
        except ConfigError as e:
            raise _bad(name, str(e)) from None
    return Decoding(**values)


def _bool(body: dict, name: str, default: bool = False) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _bad(name, f"must be true or false, got {v!r:.40}")
    return v


def _prompts(body: dict) -> list[str]:
    """``prompt``: a string, or a list of strings (each is completed, in one batch)."""
    p = body.get("prompt", "")
    if p is None:
        p = ""
    prompts = [p] if isinstance(p, str) else p
    if not (isinstance(prompts, list) and prompts and all(isinstance(x, str)
                                                          for x in prompts)):
        raise _bad("prompt", "must be a string or a non-empty list of strings (token ids "
                             "are not supported: a token is a character here)")
    if sum(map(len, prompts)) > MAX_PROMPT:
        raise ApiError(400, f"'prompt': {sum(map(len, prompts))} characters is more than "
                            f"the {MAX_PROMPT} this server reads", "prompt",
                       "context_length_exceeded")
    return prompts


def _stop(body: dict) -> tuple[str, ...]:
    v = body.get("stop")
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not (isinstance(stops, list) and len(stops) <= MAX_STOPS
            and all(isinstance(s, str) and 0 < len(s) <= 1000 for s in stops)):
        raise _bad("stop", f"must be a non-empty string or a list of up to {MAX_STOPS}")
    return tuple(stops)


_NEUTRAL = {"presence_penalty": (None, 0), "frequency_penalty": (None, 0),
            "suffix": (None, "")}


def _real_text(value: Any, field: str) -> None:
    """Every string in a field (keys too) must be real text: a lone surrogate from a
    JSON escape (``"\\ud800"``) cannot be generated, echoed or written back as UTF-8."""
    if isinstance(value, str):
        try:
            check_text(value, f"'{field}'", field)
        except ConfigError as e:
            raise ApiError(400, str(e), param=field) from None
    elif isinstance(value, list):
        for v in value:
            _real_text(v, field)
    elif isinstance(value, dict):
        for k, v in value.items():
            _real_text(k, field)
            _real_text(v, field)


def parse(body: Any, max_chars: int, max_n: int) -> Request:
    """Check a decoded JSON body; raises ApiError (400) naming the offending field."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    for key, value in body.items():
        _real_text(key, shown(key))
        _real_text(value, shown(key))
    for name, neutral in _NEUTRAL.items():
        v = body.get(name)
        if v not in neutral or isinstance(v, bool):
            raise _bad(name, "is not supported by a character-level model "
                             f"(leave it out or send {neutral[1]!r}; the dry_* fields "
                             "penalise repeats in characters)" if "penalty" in name else
                       f"is not supported (leave it out or send {neutral[1]!r})")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("model", "must be a string")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("stream_options", "must be an object")
    include_usage = _bool(options or {}, "include_usage")
    max_tokens = _int(body, "max_tokens", min(16, max_chars), 0, 2**31)
    if max_tokens > max_chars:
        raise ApiError(400, f"'max_tokens': {max_tokens} is more than this server's "
                            f"limit of {max_chars} characters (--max-chars)", "max_tokens")
    prompts, n = _prompts(body), _int(body, "n", 1, 1, max_n)
    best_of = _int(body, "best_of", n, 1, max_n)
    if best_of < n:
        raise _bad("best_of", f"must be at least n ({n}), got {best_of}")
    stream = _bool(body, "stream")
    if stream and best_of > n:
        raise _bad("best_of", "cannot be streamed: the best are known only at the end")
    if len(prompts) * best_of > max_n:
        raise _bad("prompt", f"{len(prompts)} prompts x {best_of} choices is more than this "
                             f"server's {max_n} streams (--max-streams)")
    return Request(
        model=model or None, prompts=prompts, max_tokens=max_tokens,
        decoding=_decoding(body), n=n, stop=_stop(body),
        seed=_opt_int(body, "seed", 0, MAX_SEED), stream=stream, echo=_bool(body, "echo"),
        include_usage=include_usage, drop_unknown=_bool(body, "drop_unknown"),
        logprobs=_opt_int(body, "logprobs", 0, MAX_LOGPROBS), best_of=best_of)


class Completion:
    """Builds the response objects of one request (one id and timestamp for all)."""

    def __init__(self, model: str) -> None:
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self._prefix: str | None = None

    def _head(self) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model}

    @staticmethod
    def usage(prompt_chars: int, completion_chars: int) -> dict[str, int]:
        return {"prompt_tokens": prompt_chars, "completion_tokens": completion_chars,
                "total_tokens": prompt_chars + completion_chars}

    def full(self, choices: list[tuple[str, str, dict | None]], usage: dict) -> dict[str, Any]:
        """The whole response: (text, finish reason, logprobs object or None) per choice."""
        return {**self._head(), "usage": usage, "choices": [
            {"text": t, "index": i, "logprobs": lp, "finish_reason": r}
            for i, (t, r, lp) in enumerate(choices)]}

    def chunk(self, index: int, text: str, reason: str | None = None,
              logprobs: dict | None = None) -> dict[str, Any]:
        return {**self._head(), "choices": [{"text": text, "index": index,
                                             "logprobs": logprobs, "finish_reason": reason}]}

    def text_event(self, index: int, text: str) -> str:
        """``chunk(index, text)`` as a server-sent event, built without a dict: this runs
        for every event of every stream, on the thread that also serves requests."""
        if self._prefix is None:
            head = json.dumps(self._head(), ensure_ascii=False, separators=(",", ":"))
            self._prefix = f"data: {head[:-1]},\"choices\":[{{\"text\":"
        return (f"{self._prefix}{json.dumps(text, ensure_ascii=False)},\"index\":{index},"
                "\"logprobs\":null,\"finish_reason\":null}]}\n\n")

    def usage_chunk(self, usage: dict) -> dict[str, Any]:
        return {**self._head(), "choices": [], "usage": usage}
