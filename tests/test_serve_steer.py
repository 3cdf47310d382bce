"""charrnn serve's newer fields: logprobs and echo (scoring a prompt as eval does),
max_tokens 0, best_of, a list of prompts, and the steering controls (min_p, DRY, regex,
ban, logit_bias), streamed and not, checked against the sampler character by character."""

from __future__ import annotations

import json
import re
import shutil

import httpx
import pytest
from test_serve import concurrently, post, running, sse

from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.generate.sampler import END, Sampler
from charrnn.serve.app import Limits, create_app
from charrnn.serve.models import Models

pytest.importorskip("uvicorn")
TEXT = "the cat sat on the mat.\nthe dog ate the log.\nthe cat ate the mat.\n"


@pytest.fixture(scope="module")
def served(trained_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-steer") / "checkpoints"
    shutil.copytree(trained_run, root / "pattern")
    with running(create_app(Models(root), Limits(max_streams=16, max_chars=5000))) as u:
        yield u, root / "pattern"


def sampled(run, prompt, n, length, seed, stop=(), **controls):
    """(text without a final stop string, mean log-probability) per sample, as the
    sampler gives them."""
    texts, lps = [""] * n, [[] for _ in range(n)]
    config = SampleConfig(length=length, seed=seed, stop=tuple(stop), num_samples=n,
                          decoding=Decoding(**controls))
    for i, ch, scored in Sampler.load(run).stream_scored(prompt, config, top=0):
        if ch != END:
            texts[i] += ch
            lps[i].append(scored[0])
    cut = [next((t[:-len(s)] for s in stop if t.endswith(s)), t) for t in texts]
    return cut, [sum(x) / len(x) for x in lps]


def test_echoed_logprobs_sum_to_evals_total_loss(served, cli, tmp_path):
    url, run = served
    f = tmp_path / "text.txt"
    f.write_text(TEXT, encoding="utf-8")
    r = cli("eval", f, "-c", run, "--json", "--device", "cpu")
    assert r.exit_code == 0, r
    report = json.loads(r.stdout)
    body = {"prompt": TEXT, "echo": True, "logprobs": 2, "max_tokens": 0}
    j = post(url, body).json()
    (choice,) = j["choices"]
    lp = choice["logprobs"]
    assert choice["text"] == TEXT and "".join(lp["tokens"]) == TEXT
    assert choice["finish_reason"] == "length" and j["usage"]["completion_tokens"] == 0
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None  # no context
    assert lp["text_offset"] == list(range(len(TEXT)))
    total = -sum(lp["token_logprobs"][1:])
    assert report["chars"] == len(TEXT) - 1
    assert abs(total - report["loss"] * report["chars"]) <= 1e-4 * report["chars"]
    streamed = [e for e in sse(url, body)[:-1]]
    chunks = [e["choices"][0] for e in streamed if e["choices"][0]["text"]]
    assert "".join(c["text"] for c in chunks) == TEXT
    assert sum((c["logprobs"]["token_logprobs"] for c in chunks), []) == lp["token_logprobs"]


def test_generated_logprobs_streamed_and_not(served):
    url, run = served
    body = {"prompt": "the d", "max_tokens": 600, "seed": 4, "logprobs": 3, "echo": True,
            "temperature": 0.9}
    choice = post(url, body).json()["choices"][0]
    lp = choice["logprobs"]
    want, _ = sampled(run, "the d", 1, 600, 4, temperature=0.9)
    assert choice["text"] == "the d" + want[0]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == 605
    for tok, got, top in zip(lp["tokens"][1:], lp["token_logprobs"][1:], lp["top_logprobs"][1:],
                             strict=True):
        assert top[tok] == got and len(top) <= 4
        assert list(top.values())[:3] == sorted(list(top.values())[:3], reverse=True)
    events = [e["choices"][0] for e in sse(url, body)[:-1]]
    texts = [e for e in events if e["text"]]
    assert len(texts) > 1  # several chunks (600 characters take over 20 ms): offsets carry on
    offsets = sum((e["logprobs"]["text_offset"] for e in texts), [])
    assert offsets == list(range(605))
    assert sum((e["logprobs"]["token_logprobs"] for e in texts), []) == lp["token_logprobs"]


def test_official_openai_client_reads_logprobs_and_echo(served):
    openai = pytest.importorskip("openai")
    url, run = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    one = client.completions.create(model="pattern", prompt="the cat", max_tokens=10, seed=2,
                                    echo=True, logprobs=2)
    lp = one.choices[0].logprobs
    assert one.choices[0].text.startswith("the cat") and lp.tokens[:7] == list("the cat")
    assert lp.token_logprobs[0] is None and all(x < 0 for x in lp.token_logprobs[1:])
    assert lp.text_offset == list(range(17)) and set(lp.top_logprobs[3]) >= {lp.tokens[3]}
    scored = client.completions.create(model="pattern", prompt=TEXT, max_tokens=0, echo=True,
                                       logprobs=0)
    assert scored.choices[0].text == TEXT and scored.usage.prompt_tokens == len(TEXT)


def test_best_of_returns_the_likeliest_candidates(served):
    url, run = served
    j = post(url, {"prompt": "the ", "max_tokens": 60, "n": 2, "best_of": 5, "seed": 9,
                   "temperature": 1.6}).json()
    texts, means = sampled(run, "the ", 5, 60, 9, temperature=1.6)
    best = sorted(range(5), key=lambda i: -means[i])[:2]
    assert [c["text"] for c in j["choices"]] == [texts[i] for i in best]
    assert [c["index"] for c in j["choices"]] == [0, 1]
    assert j["usage"]["completion_tokens"] == 300  # every candidate counts


def test_a_list_of_prompts_is_one_batch(served):
    url, run = served
    prompts = ["the c", "the dog ate", ""]
    j = post(url, {"prompt": prompts, "max_tokens": 40, "n": 2, "seed": 3, "echo": True}).json()
    assert [c["index"] for c in j["choices"]] == list(range(6))
    for i, c in enumerate(j["choices"]):  # choice i: prompt i // n, seed + i
        p = prompts[i // 2]
        assert c["text"] == p + sampled(run, p, 1, 40, 3 + i)[0][0]
    assert j["usage"]["prompt_tokens"] == sum(map(len, prompts))
    events = sse(url, {"prompt": prompts, "max_tokens": 40, "n": 2, "seed": 3})[:-1]
    got = [""] * 6
    for e in events:
        got[e["choices"][0]["index"]] += e["choices"][0]["text"]
    assert got == [c["text"][len(prompts[i // 2]):] for i, c in enumerate(j["choices"])]


def test_max_tokens_zero_streamed_and_not(served):
    url, _ = served
    j = post(url, {"prompt": "the", "max_tokens": 0, "n": 2}).json()
    assert [c["text"] for c in j["choices"]] == ["", ""]
    assert all(c["finish_reason"] == "length" for c in j["choices"])
    events = sse(url, {"prompt": "the", "max_tokens": 0, "echo": True})
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == "the"


@pytest.mark.parametrize("controls, stop", [
    ({"min_p": 0.2, "temperature": 1.5}, ()),
    ({"dry_multiplier": 1.5, "dry_allowed_length": 4, "temperature": 0}, ()),
    ({"regex": "[a-z ]+\\.", "temperature": 1.2}, ()),
    ({"regex": "t[a-z ]+", "temperature": 1.2}, ("\n",)),
    ({"ban": "ae", "logit_bias": {"o": 3.0, "t": -2}}, ("log",)),
])
def test_steering_controls_give_the_samplers_text(served, controls, stop):
    url, run = served
    body = {"prompt": "the ", "max_tokens": 150, "n": 3, "seed": 6, "stop": list(stop),
            **controls}
    want, _ = sampled(run, "the ", 3, 150, 6, stop, **controls)
    j = post(url, body).json()
    assert [c["text"] for c in j["choices"]] == want, j
    got = [""] * 3
    for e in sse(url, body)[:-1]:
        got[e["choices"][0]["index"]] += e["choices"][0]["text"]
    assert got == want
    if "regex" in controls:
        assert all(re.fullmatch(controls["regex"], t) for t in want)
        assert all(c["finish_reason"] == "stop" for c in j["choices"])


def test_rows_with_regex_and_dry_join_and_leave_the_batch(served):
    url, run = served
    bodies = [{"prompt": "the " * (1 + i), "max_tokens": 80 + 60 * i, "seed": i,
               "temperature": 1.1, "stream": i % 2 == 1,
               **[{"regex": "[a-z .\n]+"}, {"dry_multiplier": 1.0, "dry_allowed_length": 3},
                  {}, {"regex": "[a-z ]+", "min_p": 0.1}][i]} for i in range(4)]
    results = concurrently(url, bodies)
    for i, b in enumerate(bodies):
        controls = {k: v for k, v in b.items() if k not in ("prompt", "max_tokens", "seed",
                                                           "stream")}
        assert results[i] == sampled(run, b["prompt"], 1, b["max_tokens"], i, **controls)[0][0]


def test_a_regex_too_complex_to_build_is_a_400(served, monkeypatch):
    from charrnn.generate import automaton

    monkeypatch.setattr(automaton, "BUILD_SECONDS", 0.5)
    url, _ = served
    r = post(url, {"regex": "(a|t)*a(a|t){22}"})
    assert r.status_code == 400 and "too complex" in r.json()["error"]["message"]
    assert httpx.get(f"{url}/health").status_code == 200
