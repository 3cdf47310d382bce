"""The playground page driven in headless Chromium against a real server: type a prime,
click Start, watch the text stream in.

Chromium is driven over its DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages ending in NUL on file descriptors 3 and 4), so no driver package is needed.
Skipped when no Chromium is installed (.ci/run installs it: apt-get install chromium).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_pages_browser import ARTIFACTS, CHROMIUM, FLAGS
from test_serve import expected, running

from charrnn.serve.app import Limits, create_app
from charrnn.serve.models import Models

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


class DevTools:
    """A headless Chromium and one page of it, commanded over the debugging pipe."""

    def __init__(self, profile: Path) -> None:
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()
        # Move the child's ends above 10 first, so putting them on 3 and 4 clobbers nothing.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome)]
        os.close(to_chrome)
        os.close(from_chrome)

        def child() -> None:
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "about:blank"], pass_fds=(3, 4), preexec_fn=child,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in ends:
            os.close(fd)
        self._id, self._buf, self.session = 0, b"", None
        page = next(t for t in self.send("Target.getTargets")["targetInfos"]
                    if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]

    def send(self, method: str, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            while b"\0" not in self._buf:
                left = deadline - time.monotonic()
                assert left > 0 and select.select([self._in], [], [], left)[0], method
                data = os.read(self._in, 1 << 20)
                assert data, "Chromium closed the pipe"
                self._buf += data
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while not (value := self.js(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.05)
        return value

    def type_into(self, element_id: str, text: str) -> None:
        """Focus a field, select what it holds, and type over it (as keystrokes do)."""
        self.js(f"document.getElementById('{element_id}').focus(); "
                f"document.getElementById('{element_id}').select()")
        self.send("Input.insertText", text=text)

    def click(self, element_id: str) -> None:
        box = self.js(f"JSON.stringify(document.getElementById('{element_id}')"
                      ".getBoundingClientRect())")
        r = json.loads(box)
        x, y = r["x"] + r["width"] / 2, r["y"] + r["height"] / 2
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._out)
        os.close(self._in)


@contextlib.contextmanager
def playground(trained_run: Path, tmp_path: Path):
    """A server over a copy of the trained run and Chromium on its playground, ready:
    yields (url, browser, the run's folder)."""
    root = tmp_path / "checkpoints"
    shutil.copytree(trained_run, root / "pattern")
    with running(create_app(Models(root), Limits())) as url:
        browser = DevTools(tmp_path / "profile")
        try:
            browser.send("Page.navigate", url=f"{url}/")
            browser.wait_for("document.body && document.body.dataset.ready === '1'")
            yield url, browser, root / "pattern"
        finally:
            browser.close()


def test_playground_streams_typed_prime(trained_run, tmp_path):
    with playground(trained_run, tmp_path) as (url, browser, run):
        assert browser.js("document.getElementById('model').value") == "pattern"
        browser.type_into("prime", "the d")
        browser.type_into("length", "1500")
        browser.type_into("temperature", "0.9")
        browser.type_into("seed", "12")
        # Record the generated text's length at every change, to see it arrive in parts.
        browser.js("window.seen = []; new MutationObserver(() => window.seen.push("
                   "document.getElementById('gen').textContent.length)).observe("
                   "document.getElementById('gen'), {childList: true, "
                   "characterData: true, subtree: true});")
        browser.click("start")
        status = browser.wait_for("document.getElementById('status').textContent"
                                  ".startsWith('done') && document.getElementById("
                                  "'status').textContent")
        assert status.startswith("done: 1500 characters") and "(length)" in status
        text = browser.js("document.getElementById('gen').textContent")
        assert text == expected(run, "the d", 1, 1500, 0.9, seed=12)[0]
        assert browser.js("document.getElementById('prime-echo').textContent") == "the d"
        seen = browser.js("window.seen")
        assert len(set(seen)) >= 2 and seen[-1] == 1500, seen  # streamed, in parts
        ARTIFACTS.mkdir(exist_ok=True)
        shot = browser.send("Page.captureScreenshot", format="png")["data"]
        (ARTIFACTS / "serve-playground.png").write_bytes(base64.b64decode(shot))
        # An error from the API is shown on the page, not swallowed.
        browser.type_into("prime", "the \u00e9")
        browser.click("start")
        error = browser.wait_for("document.getElementById('status').className === "
                                 "'error' && document.getElementById('status')"
                                 ".textContent")
        assert "never saw" in error and "\u00e9" in error


def test_playground_steers_and_shows_alternatives_on_hover(trained_run, tmp_path):
    """min-p, DRY and a regex from the page's fields; hovering a generated character shows
    the model's five likeliest characters there, with their probabilities."""
    import math
    import re

    from test_serve import post

    with playground(trained_run, tmp_path) as (url, browser, _):
        for field, value in (("prime", "the "), ("length", "60"), ("temperature", "1.2"),
                             ("seed", "5"), ("min_p", "0.05"), ("dry_multiplier", "1"),
                             ("dry_allowed_length", "4"), ("regex", "[a-z ]+\\.")):
            browser.type_into(field, value)
        browser.click("start")
        browser.wait_for("document.getElementById('status').textContent"
                         ".startsWith('done')")
        text = browser.js("document.getElementById('gen').textContent")
        body = {"prompt": "the ", "max_tokens": 60, "temperature": 1.2, "seed": 5,
                "min_p": 0.05, "dry_multiplier": 1, "dry_allowed_length": 4,
                "regex": "[a-z ]+\\.", "logprobs": 5, "top_p": 1}
        want = post(url, body).json()["choices"][0]
        assert text == want["text"] and re.fullmatch("[a-z ]+\\.", text), text
        n = browser.js("document.getElementById('gen').children.length")
        assert n == len(text)
        k = 2  # hover the third generated character
        box = json.loads(browser.js(
            f"JSON.stringify(document.getElementById('gen').children[{k}]"
            ".getBoundingClientRect())"))
        browser.send("Input.dispatchMouseEvent", type="mouseMoved",
                     x=box["x"] + box["width"] / 2, y=box["y"] + box["height"] / 2)
        tip = browser.wait_for("document.getElementById('tip').style.display === "
                               "'block' && document.getElementById('tip').textContent")
        lines = tip.split("\n")
        top = sorted(want["logprobs"]["top_logprobs"][k].items(), key=lambda x: -x[1])[:5]
        assert len(lines) == 6, tip
        drawn = math.exp(want["logprobs"]["token_logprobs"][k])
        assert lines[0].endswith(f"{100 * drawn:.1f}%"), tip
        for line, (ch, lp) in zip(lines[1:], top, strict=True):
            shown = {" ": "\u2423", "\n": "\u21b5"}.get(ch, ch)
            assert line == f"{shown}  {100 * math.exp(lp):.1f}%", (line, ch, lp)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = browser.send("Page.captureScreenshot", format="png")["data"]
        (ARTIFACTS / "serve-playground-hover.png").write_bytes(base64.b64decode(shot))
