"""The voice page in a real browser: headless Chromium, its microphone a recorded question
(``--use-file-for-fake-audio-capture``), against s2r on a real loopback socket.  The page
opens hands-free (``?auto=1``), streams the question over /v1/talk and shows what comes back;
the test reads the page through the DevTools protocol.

Nothing is timed: the test waits for what the page shows, ``GUARD_S`` only keeps a broken
page from hanging it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from assistant.speech.audio import write_wav
from tests.conftest import silence
from tests.fake_llm import GUARD_S, Step
from tests.web_helpers import KEY, RECORDING, RunningServer, web_collection

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it)")]
QUESTION = "Where was coffee first grown?"
ANSWER = "Coffee was first grown in Yemen [1]."
# What the page shows, read in one evaluation (null until the page has loaded).
READ_PAGE = """document.getElementById("status") && JSON.stringify({
  state: document.body.dataset.state, status: document.getElementById("status").textContent,
  search: location.search, audioChunks: Number(document.body.dataset.audioChunks || 0),
  turns: [...document.querySelectorAll(".turn")].map((t) => ({
    heard: t.querySelector(".heard").textContent, answer: t.querySelector(".answer").textContent,
    done: t.dataset.done === "1",
    sources: [...t.querySelectorAll(".source")].map((s) => ({
      title: s.querySelector(".title").textContent, kind: s.classList[1],
      play: s.querySelector(".play-span")?.title ?? null,
      passage: s.querySelector(".passage p")?.textContent ?? ""}))}))})"""


class Browser:
    """Headless Chromium on one page, driven over the DevTools protocol."""

    def __init__(self, url: str, microphone: str, profile: str) -> None:
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", f"--user-data-dir={profile}",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={microphone}%noloop",
             "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)  # its own process group: closed as one below
        self.log: list[str] = []
        self._endpoint = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()
        assert self._endpoint.wait(GUARD_S), "chromium did not start:\n" + "\n".join(self.log)
        port = re.search(r"ws://[^:]+:(\d+)/", "\n".join(self.log)).group(1)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=GUARD_S).json()
        page = next(t for t in targets if t["type"] == "page")
        self.cdp = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=GUARD_S)
        self._id = 0
        self.console: list[str] = []  # the page's console messages and uncaught errors
        self.call("Runtime.enable")

    def _read_log(self) -> None:
        for line in self.process.stderr:
            self.log.append(line.rstrip())
            if "DevTools listening on" in line:
                self._endpoint.set()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.cdp.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.cdp.recv(timeout=GUARD_S))
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]
            if message.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in message["params"]["args"]))
            elif message.get("method") == "Runtime.exceptionThrown":
                self.console.append(str(message["params"]["exceptionDetails"]))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, done: Callable[[Any], bool], what: str) -> Any:
        deadline = time.monotonic() + GUARD_S
        while True:
            value = self.evaluate(expression)
            if done(value):
                return value
            assert time.monotonic() < deadline, (
                f"the page never showed {what}; it shows {value}; console: {self.console}")
            time.sleep(0.1)

    def close(self) -> None:
        self.cdp.close()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(GUARD_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def collection(models, tmp_path_factory):
    runtime = web_collection(models, tmp_path_factory.mktemp("browser-data"))
    yield runtime
    runtime.close()


def test_the_page_hears_a_question_and_shows_and_plays_the_answer(collection, fake, speak,
                                                                  tmp_path):
    fake.default = Step(text=ANSWER)
    microphone = write_wav(tmp_path / "question.wav",
                           np.concatenate([silence(1.0), speak(QUESTION), silence(3.0)]))
    with RunningServer(collection, llm_url=fake.url, api_key=KEY) as server:
        browser = Browser(f"{server.url}/?key={KEY}&auto=1", str(microphone),
                          str(tmp_path / "profile"))
        try:
            page = json.loads(browser.wait_for(
                READ_PAGE, lambda v: v and any(t["done"] for t in json.loads(v)["turns"]),
                "an answered turn"))
            # the recording cited: play exactly its span, fetched with the key
            browser.evaluate('document.querySelector(".source.audio .play-span").click()')
            duration = browser.wait_for(
                """(() => { const a = document.querySelector("audio.span");
                            return a && a.readyState >= 1 && !a.paused ? a.duration : null; })()""",
                lambda v: v is not None, "the cited span playing")
        finally:
            browser.close()
    turn = page["turns"][0]
    assert "coffee" in turn["heard"].lower(), page
    first = turn["sources"][0]
    assert first["title"] == RECORDING.stem and first["kind"] == "audio", page
    assert first["play"] and first["passage"], page
    assert any(s["kind"] == "text" and s["passage"] for s in turn["sources"][1:]), page
    assert turn["answer"] == ANSWER
    assert page["audioChunks"] > 0  # the spoken answer reached the page's player
    assert "key" not in page["search"]  # the key left the address bar
    start, end = (float(x) for x in re.findall(r"[\d.]+", first["play"]))
    assert duration == pytest.approx(end - start, abs=1 / 16_000)
