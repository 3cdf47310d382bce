"""charrnn serve: the OpenAI-compatible API against a real uvicorn server on loopback.

Texts are checked against ``charrnn.generate.sampler.Sampler`` with the same seed and settings,
so batching (joining, leaving, mixed settings) must not change a single character.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import files
from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.generate.sampler import END, Sampler
from charrnn.runs import checkpoint as ckpt
from charrnn.serve.app import MAX_BODY, Limits, create_app
from charrnn.serve.models import Models

uvicorn = pytest.importorskip("uvicorn")


def expected(run: Path, prompt: str = "", n: int = 1, length: int = 16, temperature=1.0,
             top_k=0, top_p=1.0, seed=0, stop=()) -> list[str]:
    """What ``charrnn sample`` generates, without the stop string (as OpenAI sends it)."""
    config = SampleConfig(length=length, seed=seed, stop=tuple(stop), num_samples=n,
                          decoding=Decoding(temperature, top_k, top_p))
    texts = [""] * n
    for i, ch in Sampler.load(run).stream(prompt, config):
        if ch != END:
            texts[i] += ch
    return [next((t[:-len(s)] for s in stop if t.endswith(s)), t) for t in texts]


@contextlib.contextmanager
def running(app):
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yield its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


@pytest.fixture(scope="module")
def root(trained_run, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "checkpoints"
    shutil.copytree(trained_run, root / "pattern")
    shutil.copytree(trained_run, root / "more" / "copy")
    return root


@pytest.fixture(scope="module")
def url(root):
    with running(create_app(Models(root), Limits(max_streams=8, max_chars=5000))) as u:
        yield u


def post(url: str, body, **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/completions", json=body, timeout=30, **kw)


def sse(url: str, body, **kw) -> list:
    """The events of a streamed completion, decoded ([DONE] stays a string)."""
    with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True},
                      timeout=30, **kw) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert all(ln.startswith("data: ") for ln in lines)
    return [ln[6:] if ln == "data: [DONE]" else json.loads(ln[6:]) for ln in lines]


def test_models_health_and_page(url):
    models = httpx.get(f"{url}/v1/models").json()
    assert models["object"] == "list"
    assert sorted(m["id"] for m in models["data"]) == ["more/copy", "pattern"]
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    page = httpx.get(f"{url}/")
    assert page.headers["content-type"].startswith("text/html")
    assert "/v1/completions" in page.text and "src=" not in page.text  # self-contained
    r = httpx.get(f"{url}/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_completion_is_the_samplers_text(url, root):
    body = {"model": "pattern", "prompt": "the ", "max_tokens": 80, "n": 3, "seed": 7,
            "temperature": 0.9, "top_k": 6, "top_p": 0.95}
    r = post(url, body)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["object"] == "text_completion" and j["id"].startswith("cmpl-")
    assert j["model"] == "pattern"
    assert [c["index"] for c in j["choices"]] == [0, 1, 2]
    assert [c["finish_reason"] for c in j["choices"]] == ["length"] * 3
    want = expected(root / "pattern", "the ", 3, 80, 0.9, 6, 0.95, 7)
    assert [c["text"] for c in j["choices"]] == want
    assert len(set(want)) > 1  # the three choices really differ
    assert j["usage"] == {"prompt_tokens": 4, "completion_tokens": 240, "total_tokens": 244}
    # echo puts the prompt in front; an empty prompt starts from a fresh line, as sample
    echoed = post(url, {**body, "n": 1, "echo": True}).json()["choices"][0]["text"]
    assert echoed == "the " + want[0]
    plain = post(url, {"prompt": "", "max_tokens": 50, "seed": 3}).json()
    assert plain["choices"][0]["text"] == expected(root / "pattern", "", 1, 50, seed=3)[0]


def test_streaming_events_end_with_done(url, root):
    events = sse(url, {"model": "more/copy", "prompt": "the d", "max_tokens": 300,
                       "seed": 11, "n": 2, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 600
    texts, reasons = ["", ""], [None, None]
    for e in events[:-2]:
        (c,) = e["choices"]
        assert reasons[c["index"]] is None  # nothing after a choice's finish chunk
        texts[c["index"]] += c["text"]
        reasons[c["index"]] = c["finish_reason"]
    assert reasons == ["length", "length"]
    assert texts == expected(root / "pattern", "the d", 2, 300, seed=11)


def test_stop_strings_end_a_choice_and_are_not_sent(url, root):
    body = {"prompt": "the ", "max_tokens": 200, "seed": 5, "stop": ["log", "\n"], "n": 4}
    want = expected(root / "pattern", "the ", 4, 200, seed=5, stop=["log", "\n"])
    j = post(url, body).json()
    assert [c["text"] for c in j["choices"]] == want
    assert all(c["finish_reason"] == "stop" for c in j["choices"])
    assert all("\n" not in t for t in want)
    texts = ["", "", "", ""]
    for e in sse(url, body)[:-1]:
        texts[e["choices"][0]["index"]] += e["choices"][0]["text"]
    assert texts == want  # held back while it might become a stop string, never sent


def test_official_openai_client_streams(url, root):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    stream = client.completions.create(model="pattern", prompt="the c", max_tokens=120,
                                       seed=21, temperature=0.7, stream=True)
    chunks = [c.choices[0].text for c in stream if c.choices]
    assert len(chunks) > 1
    assert "".join(chunks) == expected(root / "pattern", "the c", 1, 120, 0.7, seed=21)[0]
    one = client.completions.create(model="pattern", prompt="the", max_tokens=5, seed=1)
    assert one.choices[0].finish_reason == "length" and one.usage.completion_tokens == 5


def test_concurrent_requests_with_mixed_settings_get_their_own_text(url, root):
    """Requests join and leave the batch at different steps, with different settings."""
    bodies = [{"prompt": "the " * (1 + i), "max_tokens": 100 + 150 * i, "seed": i,
               "temperature": [0, 0.5, 1.3, 1.0][i], "top_k": [0, 3, 0, 0][i],
               "top_p": [1, 1, 0.8, 1][i], "stream": i % 2 == 1} for i in range(4)]
    results = concurrently(url, bodies)
    for i, b in enumerate(bodies):
        assert results[i] == expected(root / "pattern", b["prompt"], 1, b["max_tokens"],
                                      b["temperature"], b["top_k"], b["top_p"], i)[0], i


def concurrently(url: str, bodies: list[dict]) -> dict[int, str]:
    """Each body's choice-0 text, the requests sent 10 ms apart from threads, so they join
    and leave the batch at different steps (streamed where the body says so)."""
    results: dict[int, str] = {}

    def one(i: int) -> None:
        if bodies[i].get("stream"):
            results[i] = "".join(e["choices"][0]["text"] for e in sse(url, bodies[i])[:-1])
        else:
            results[i] = post(url, bodies[i]).json()["choices"][0]["text"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join(30)
    return results


BAD = [
    ({"prompt": 5}, 400, "prompt"), ({"max_tokens": -1}, 400, "max_tokens"),
    ({"max_tokens": 5001}, 400, "max_tokens"), ({"max_tokens": "10"}, 400, "max_tokens"),
    ({"max_tokens": True}, 400, "max_tokens"), ({"temperature": -0.5}, 400, "temperature"),
    ({"temperature": "hot"}, 400, "temperature"), ({"top_p": 0}, 400, "top_p"),
    ({"top_p": 1.5}, 400, "top_p"), ({"top_k": -3}, 400, "top_k"), ({"n": 0}, 400, "n"),
    ({"n": 9}, 400, "n"), ({"seed": -1}, 400, "seed"), ({"seed": 2**70}, 400, "seed"),
    ({"stop": ""}, 400, "stop"), ({"stop": ["a"] * 5}, 400, "stop"),
    ({"stream": "yes"}, 400, "stream"), ({"logprobs": 21}, 400, "logprobs"),
    ({"logprobs": -1}, 400, "logprobs"), ({"logprobs": True}, 400, "logprobs"),
    ({"best_of": 0}, 400, "best_of"), ({"n": 3, "best_of": 2}, 400, "best_of"),
    ({"best_of": 2, "stream": True}, 400, "best_of"), ({"prompt": [1, 2]}, 400, "prompt"),
    ({"prompt": []}, 400, "prompt"), ({"prompt": ["a"] * 5, "n": 2}, 400, "prompt"),
    ({"prompt": ["the", "the \u00e9"]}, 400, "prompt"),
    ({"min_p": 1.5}, 400, "min_p"), ({"dry_multiplier": -1}, 400, "dry_multiplier"),
    ({"dry_base": 0.5}, 400, "dry_base"), ({"dry_allowed_length": 0}, 400, "dry_allowed_length"),
    ({"dry_breakers": 5}, 400, "dry_breakers"), ({"regex": "a("}, 400, "regex"),
    ({"regex": "QQ"}, 400, "regex"), ({"regex": "(?<=a)b"}, 400, "regex"),
    ({"regex": 7}, 400, "regex"), ({"regex": "[a-z]{30}", "max_tokens": 10}, 400, "max_tokens"),
    ({"ban": "the cat sodgmln.\n"}, 400, "ban"), ({"ban": ["a"]}, 400, "ban"),
    ({"logit_bias": {"50256": -100}}, 400, "logit_bias"), ({"logit_bias": {"a": 200}}, 400,
                                                           "logit_bias"),
    ({"logit_bias": [1]}, 400, "logit_bias"), ({"presence_penalty": 0.5}, 400, "presence_penalty"),
    ({"prompt": "the cat \u00e9t\u00e9 \U0001f600"}, 400, "prompt"),
    ({"model": "nope"}, 404, "model"), ({"model": "../pattern"}, 404, "model"),
    ({"model": "more/../pattern"}, 404, "model"), ({"model": "/etc/passwd"}, 404, "model"),
    ({"model": ".."}, 404, "model"), ({"model": 3}, 400, "model"),
]


@pytest.mark.parametrize("body,status,param", BAD)
def test_bad_requests_get_openai_errors(url, body, status, param):
    r = post(url, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"] and err["type"]


def test_unknown_prompt_characters_are_named_or_dropped(url, root):
    r = post(url, {"prompt": "the \u00e9\U0001f600"})
    assert r.status_code == 400 and "'\u00e9\U0001f600'" in r.json()["error"]["message"]
    ok = post(url, {"prompt": "the \u00e9", "drop_unknown": True, "seed": 2, "max_tokens": 30})
    assert ok.json()["choices"][0]["text"] == expected(root / "pattern", "the ", 1, 30, seed=2)[0]


@pytest.mark.parametrize("content", [b"{", b"[1, 2", b"\xff\xfe{}", b"", b"NaN",
                                     b'{"temperature": NaN}', b'{"n": -Infinity}', b"[" * 100_000])
def test_malformed_bodies_are_400(url, content):
    r = httpx.post(f"{url}/v1/completions", content=content, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_body_over_a_megabyte_is_413(url):
    big = json.dumps({"prompt": "a" * MAX_BODY}).encode()
    assert post(url, {"prompt": "a" * MAX_BODY}).status_code == 413
    chunked = httpx.post(f"{url}/v1/completions", content=iter([big[:1000], big[1000:]]))
    assert chunked.status_code == 413  # no Content-Length: counted while read


FIELDS = ["model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stop",
          "seed", "stream", "echo", "logprobs", "stream_options", "drop_unknown", "best_of",
          "min_p", "dry_multiplier", "dry_base", "dry_allowed_length", "dry_breakers",
          "regex", "ban", "logit_bias"]
# Strings may hold lone surrogates ("\ud800" escapes, sent as such): before, one in the
# prompt or the model name gave a 500 and a traceback.
TEXT = st.text(max_size=12) | st.text(st.characters(exclude_categories=()), max_size=6)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**64, 2**64)
                    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)
SMALL = {"max_tokens": st.integers(-2, 40), "n": st.integers(-1, 3), "prompt":
         st.text("the catdoglm.\n\u00e9\ud800\udcff", max_size=20)
         | st.lists(st.text("the catdog", max_size=8), max_size=3),
         "best_of": st.integers(-1, 4), "logprobs": st.integers(-1, 22),
         "min_p": st.floats(-0.5, 1.5), "dry_multiplier": st.floats(-1, 3),
         "dry_allowed_length": st.integers(-1, 5), "dry_breakers": st.text("\n.: ", max_size=3),
         "regex": st.sampled_from(["[a-z ]+", "the (cat|dog)", "(", "Q+", "^a", "t.*g",
                                   "[a-z]{50}"]),
         "ban": st.text("the catdoglm.\n", max_size=6),
         "logit_bias": st.dictionaries(st.text("the cQ", min_size=1, max_size=2),
                                       st.floats(-150, 150), max_size=3)}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.fixed_dictionaries({}, optional={f: SMALL.get(f, JSON) if f in SMALL
                                           else st.one_of(JSON, SMALL.get(f, JSON))
                                           for f in FIELDS}) | JSON)
def test_fuzzed_bodies_never_500(url, body):
    if isinstance(body, dict):
        body = {**body, "max_tokens": body.get("max_tokens", 8)}
        if isinstance(body["max_tokens"], int) and not isinstance(body["max_tokens"], bool):
            body["max_tokens"] = min(body["max_tokens"], 40)
    r = httpx.post(f"{url}/v1/completions", content=json.dumps(body), timeout=30,
                   headers={"Content-Type": "application/json"})  # lone surrogates escaped
    assert r.status_code in (200, 400, 404), r.text
    if r.status_code != 200:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    elif not body.get("stream"):
        assert all(c["finish_reason"] in ("stop", "length") for c in r.json()["choices"])
    else:
        assert r.text.endswith("data: [DONE]\n\n")
    assert httpx.get(f"{url}/health").status_code == 200


def _rows(url: str) -> tuple[int, int]:
    h = httpx.get(f"{url}/health").json()
    return h["streams"], h["rows"]


def test_429_past_max_streams_and_disconnect_frees_the_slot(root):
    app = create_app(Models(root), Limits(max_streams=2, max_chars=300_000))
    long = {"prompt": "the ", "max_tokens": 300_000, "stream": True}
    with running(app) as u, httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{u}/v1/completions", json=long) as first:
            first_lines = first.iter_lines()  # (a dropped iterator closes the stream)
            next(first_lines)
            r = client.post(f"{u}/v1/completions", json={**long, "n": 2})
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert _rows(u) == (1, 1)
            with client.stream("POST", f"{u}/v1/completions", json=long) as second:
                second_lines = second.iter_lines()
                next(second_lines)
                assert _rows(u) == (2, 2)
            deadline = time.monotonic() + 5  # the second client went away mid-stream
            while _rows(u) != (1, 1):
                assert time.monotonic() < deadline, _rows(u)
                time.sleep(0.02)
            # the first client reads nothing (a slow reader): others are still served
            assert post(u, {"prompt": "the", "max_tokens": 5}).status_code == 200
        deadline = time.monotonic() + 5
        while _rows(u) != (0, 0):
            assert time.monotonic() < deadline, _rows(u)
            time.sleep(0.02)


def test_api_key_is_required_when_set(root):
    app = create_app(Models(root), Limits(api_key="s3cret"))
    with running(app) as u:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                        {"Authorization": "Bearer s3cret\u00e9".encode()}):
            r = post(u, {"prompt": "the"}, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{u}/v1/models").status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert post(u, {"prompt": "the", "max_tokens": 3}, headers=ok).status_code == 200
        assert httpx.get(f"{u}/v1/models", headers=ok).status_code == 200
        assert httpx.get(f"{u}/health").status_code == 200  # for load balancers


def _save_variant(src: Path, dest: Path, shift: float) -> None:
    """A copy of checkpoint ``src`` with the head's bias shifted, written atomically."""
    from safetensors.numpy import save

    header, meta = ckpt.read_header(src)
    weights = ckpt.inspect(src).numpy_weights()
    weights["head.bias"] = weights["head.bias"] + np.linspace(0, shift, len(weights[
        "head.bias"]), dtype=np.float32)
    files.atomic_write_bytes(dest, save(weights, metadata=meta))


def test_replaced_checkpoint_is_picked_up_and_a_broken_one_is_not(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    best = run / "best.safetensors"
    body = {"prompt": "the ", "max_tokens": 60, "seed": 4, "temperature": 1.5}
    with running(create_app(Models(target=str(run)), Limits())) as u:
        before = post(u, {**body, "model": "run"}).json()["choices"][0]["text"]
        assert before == expected(run, "the ", 1, 60, 1.5, seed=4)[0]
        _save_variant(best, best, 6.0)
        after = post(u, body).json()["choices"][0]["text"]
        assert after == expected(run, "the ", 1, 60, 1.5, seed=4)[0] != before
        files.atomic_write_bytes(best, b"\0" * 100)  # a damaged file: the last good one stays
        assert post(u, body).json()["choices"][0]["text"] == after


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_lets_streams_finish_then_exits_0(trained_run):
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", "-c", str(trained_run),
                             "--port", str(port), "--max-chars", "50000", "--grace", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            time.sleep(0.05)
        body = {"prompt": "the ", "max_tokens": 50000, "stream": True}  # long: still streaming
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/completions", json=body,
                          timeout=60) as r:
            lines = r.iter_lines()
            first = next(lines)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(httpx.ConnectError):  # no longer accepting
                httpx.get(f"http://127.0.0.1:{port}/health")
            after = [e for e in lines if e]  # what arrived after the signal
            events = [first, *after]
        text = "".join(json.loads(e[6:])["choices"][0]["text"] for e in events
                       if e.startswith("data: {"))
        assert len(text) == 50000 and events[-1] == "data: [DONE]"
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert out == b""  # logs go to stderr
        assert any(e.startswith("data: {") for e in after)  # it was still streaming
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_command_errors_are_one_line(cli, tmp_path, trained_run):
    r = cli("serve", "--root", tmp_path / "none")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("charrnn: error: no checkpoints found") and r.stderr.count("\n") == 1
    r = cli("serve", "-c", tmp_path / "missing")
    assert r.exit_code == 1 and "no such checkpoint" in r.stderr
    assert cli("serve", "--port", "70000").exit_code == 2
    assert cli("serve", "--max-streams", "0").exit_code == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = cli("serve", "-c", trained_run, "--port", taken.getsockname()[1])
    assert r.exit_code == 1 and r.stderr.splitlines()[-1].startswith(
        "charrnn: error: cannot serve on 127.0.0.1:")


def test_serving_never_imports_torch(trained_run):
    code = ("import sys; from charrnn.serve.models import Models; from charrnn.serve.app import "
            f"Limits, create_app; m = Models(target={str(trained_run)!r}); m.get(None); "
            "create_app(m, Limits()); import uvicorn; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_an_empty_api_key_in_the_environment_is_refused_not_ignored(cli, trained_run,
                                                                    monkeypatch):
    """Before: CHARRNN_API_KEY= (set, empty) served without authentication, while
    --api-key '' was refused. Fail closed: both are refused before anything is served."""
    def started(config):
        raise AssertionError(f"the server started (api_key={config.api_key!r})")

    monkeypatch.setattr("charrnn.serve.runner.serve", started)
    monkeypatch.setenv("CHARRNN_API_KEY", "")
    for args in ([], ["--api-key", ""]):
        r = cli("serve", "-c", trained_run, *args)
        assert r.exit_code == 2 and r.stderr.startswith(
            "charrnn: error: the API key must be printable ASCII text"), r


@pytest.mark.parametrize("body, param", [
    ('{"prompt": "\\ud800"}', "prompt"),
    ('{"prompt": "the", "model": "\\udcff"}', "model"),
    ('{"prompt": "the", "stop": ["a\\udfff"]}', "stop"),
    ('{"prompt": "the", "\\ud800": 1}', "\\ud800"),
])
def test_a_lone_surrogate_in_the_json_is_a_400_not_a_500(url, body, param):
    r = httpx.post(f"{url}/v1/completions", content=body, timeout=30,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and "not valid UTF-8 text" in error["message"], error


@contextlib.contextmanager
def _unblocked_after(fifo: Path, seconds: float):
    """Whoever still waits on ``fifo`` after ``seconds`` is let go (its writer opens and
    closes it), so a regression fails the test instead of hanging the suite."""
    done = threading.Event()

    def release() -> None:
        while not done.wait(seconds):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    t = threading.Thread(target=release, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()


def test_a_fifo_named_like_a_checkpoint_stalls_nothing(trained_run, tmp_path, cli):
    """Before: a FIFO named best.safetensors in any run folder hung a request for that
    model, and (one lock held across the open) every later load of any model; `charrnn
    sample -c` on it hung too. Now it is refused at once, without blocking."""
    root = tmp_path / "checkpoints"
    shutil.copytree(trained_run, root / "good")
    (root / "bad").mkdir()
    fifo = root / "bad" / "best.safetensors"
    os.mkfifo(fifo)
    with _unblocked_after(fifo, 8), running(create_app(Models(root),
                                                       Limits())) as u:
        start = time.monotonic()
        r = post(u, {"prompt": "the", "max_tokens": 3, "model": "bad"})
        assert r.status_code == 503 and "named pipe" in r.json()["error"]["message"], r.text
        r = post(u, {"prompt": "the", "max_tokens": 3, "model": "good"})
        assert r.status_code == 200, r.text
        assert time.monotonic() - start < 5
    with _unblocked_after(fifo, 8):
        start = time.monotonic()
        r = cli("sample", "-c", fifo, "-n", "3")
        assert time.monotonic() - start < 5
    assert r.exit_code == 1 and r.stderr == (
        f"charrnn: error: {fifo} is not a usable charrnn checkpoint: it is a named pipe "
        "(FIFO), not a regular file\n"), r


def test_serve_root_that_is_a_file_says_so(cli, tmp_path):
    (tmp_path / "f").write_text("not a folder\n")
    r = cli("serve", "--root", tmp_path / "f")
    assert r.exit_code == 1 and r.stderr == (
        f"charrnn: error: no checkpoints found: {tmp_path / 'f'} is a file, not a folder\n"), r
    r = cli("list", "--root", tmp_path / "f")
    assert r.exit_code == 1 and "is a file, not a folder" in r.stderr, r


def test_a_run_folder_whose_name_is_not_utf8_is_served_by_its_shown_name(trained_run,
                                                                         tmp_path):
    root = tmp_path / "checkpoints"
    shutil.copytree(trained_run, root / os.fsdecode(b"\xffrun"))
    with running(create_app(Models(root), Limits())) as u:
        assert [m["id"] for m in httpx.get(f"{u}/v1/models").json()["data"]] == ["\\xffrun"]
        events = sse(u, {"prompt": "the", "max_tokens": 5, "model": "\\xffrun", "seed": 1})
        assert events[-1] == "[DONE]" and events[0]["model"] == "\\xffrun"
        r = post(u, {"prompt": "the", "max_tokens": 5, "seed": 1})
        assert r.status_code == 200 and r.json()["model"] == "\\xffrun", r.text
