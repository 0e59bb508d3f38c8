"""The voice page driven end to end, shared by tests/test_browser.py,
benchmarks/browser_talk.py and scripts/browser_screenshot.py: headless Chromium with a
recording as its microphone (``--use-file-for-fake-audio-capture``), read and steered over the
DevTools protocol, and ``s2r serve`` started as a user starts it.

Chromium's fake capture plays the file from its start when the page calls getUserMedia, at
real-time pace, once (``%noloop``); a 16 kHz mono WAV is what the tests give it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx
from websockets.sync.client import connect

from tests.fake_llm import GUARD_S

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What the page shows, read in one evaluation (null until the page has loaded).
READ_PAGE = """document.getElementById("status") && JSON.stringify({
  state: document.body.dataset.state, status: document.getElementById("status").textContent,
  search: location.search, audioChunks: Number(document.body.dataset.audioChunks || 0),
  stoppedChunks: Number(document.body.dataset.stoppedChunks || 0),
  turns: [...document.querySelectorAll(".turn")].map((t) => ({
    heard: t.querySelector(".heard").textContent, answer: t.querySelector(".answer").textContent,
    done: t.dataset.done === "1", interrupted: t.classList.contains("interrupted"),
    notes: [...t.querySelectorAll(".note")].map((n) => n.textContent),
    sources: [...t.querySelectorAll(".source")].map((s) => ({
      title: s.querySelector(".title").textContent, kind: s.classList[1],
      play: s.querySelector(".play-span")?.title ?? null,
      passage: s.querySelector(".passage p")?.textContent ?? ""}))}))})"""
Page = dict[str, Any]



def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (the browser's or the server's children too), then
    SIGKILL if it has not ended within the guard."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

class PageError(Exception):
    """The DevTools protocol or the page's script reported an error."""


class Browser:
    """Headless Chromium on one page, driven over the DevTools protocol.

    ``timeline=True`` sets ``window.s2rTimeline`` before the page's script runs, so the page
    logs what it does, timed with ``performance.now()`` (``timeline()`` reads it); ``window``
    is the viewport's width and height in CSS pixels."""

    def __init__(self, microphone: Path | str, profile: Path | str, timeline: bool = False,
                 window: tuple[int, int] | None = None) -> None:
        assert CHROMIUM, "Debian's chromium is not installed (scripts/setup.sh installs it)"
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", f"--user-data-dir={profile}",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={microphone}%noloop",
             "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)  # its own process group: closed as one below
        self.log: list[str] = []
        self.console: list[str] = []  # the page's console messages and uncaught errors
        self._id = 0
        self._endpoint = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()
        try:
            assert self._endpoint.wait(GUARD_S), "chromium did not start:\n" + "\n".join(
                self.log)
            port = re.search(r"ws://[^:]+:(\d+)/", "\n".join(self.log)).group(1)
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=GUARD_S).json()
            page = next(t for t in targets if t["type"] == "page")
            self.cdp = connect(page["webSocketDebuggerUrl"], max_size=None,
                               open_timeout=GUARD_S)
            self.call("Runtime.enable")
            self.call("Page.enable")
            if window:  # the viewport, as a screenshot shows it
                self.call("Emulation.setDeviceMetricsOverride", width=window[0],
                          height=window[1], deviceScaleFactor=1, mobile=False)
            if timeline:
                self.call("Page.addScriptToEvaluateOnNewDocument",
                          source="window.s2rTimeline = [];")
        except BaseException:
            self._kill()
            raise

    @staticmethod
    def version() -> str:
        """Chromium's name and version, for a benchmark's record."""
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True)
        return out.stdout.strip()

    def _read_log(self) -> None:
        for line in self.process.stderr:
            self.log.append(line.rstrip())
            if "DevTools listening on" in line:
                self._endpoint.set()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result; console output met on the way is kept."""
        self._id += 1
        self.cdp.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.cdp.recv(timeout=GUARD_S))
            if message.get("id") == self._id:
                if "error" in message:
                    raise PageError(f"{method}: {message['error']}")
                return message["result"]
            if message.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in message["params"]["args"]))
            elif message.get("method") == "Runtime.exceptionThrown":
                self.console.append(str(message["params"]["exceptionDetails"]))

    def open(self, url: str) -> None:
        """Load ``url`` (the microphone starts when the page asks for it) and wait until its
        document is complete."""
        self.call("Page.navigate", url=url)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        self.wait_for("location.origin + ' ' + document.readyState",
                      lambda v: v == f"{origin} complete", "the page loaded", tolerant=True)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise PageError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    def wait_for(self, expression: str, done: Callable[[Any], bool], what: str,
                 timeout_s: float = GUARD_S, tolerant: bool = False) -> Any:
        """Evaluate ``expression`` until ``done`` accepts its value (``tolerant``: errors, as
        while a page replaces another, count as not yet)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(expression)
            except PageError as exc:
                if not tolerant:
                    raise
                value = str(exc)
            else:
                if done(value):
                    return value
            assert time.monotonic() < deadline, (
                f"the page never showed {what}; it shows {value}; console: {self.console}")
            time.sleep(0.1)

    def page(self) -> Page | None:
        """What the page shows (``READ_PAGE``), None before it has loaded."""
        value = self.evaluate(READ_PAGE)
        return json.loads(value) if value else None

    def wait_for_page(self, done: Callable[[Page], bool], what: str,
                      timeout_s: float = GUARD_S) -> Page:
        value = self.wait_for(READ_PAGE, lambda v: bool(v) and done(json.loads(v)), what,
                              timeout_s)
        return json.loads(value)

    def play_span(self) -> float:
        """Click the first audio source's ▶ and wait until the span plays; its duration."""
        self.evaluate('document.querySelector(".source.audio .play-span").click()')
        return self.wait_for(
            """(() => { const a = document.querySelector("audio.span");
                        return a && a.readyState >= 1 && !a.paused ? a.duration : null; })()""",
            lambda v: v is not None, "the cited span playing")

    def space(self, down: bool) -> None:
        """Press (``down``) or release the space bar, as a user holding it to talk would."""
        self.call("Input.dispatchKeyEvent", type="keyDown" if down else "keyUp", code="Space",
                  key=" ", windowsVirtualKeyCode=32, nativeVirtualKeyCode=32)

    def timeline(self) -> list[dict[str, Any]]:
        """``window.s2rTimeline``: what the page did, in order (``timeline=True``)."""
        return self.evaluate("window.s2rTimeline") or []

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cdp.close()
        self._kill()

    def _kill(self) -> None:
        stop_group(self.process)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``s2r serve`` in a process of its own on a free loopback port, configured as a user
    configures it (``S2R_*`` variables, over this process's environment); ``url`` once
    /healthz says the models are loaded.  Its output goes to ``log``."""

    def __init__(self, env: dict[str, str], log: Path, ready_s: float = 300.0,
                 cwd: Path | None = None) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log
        self.ready_s = ready_s
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log: TextIO | None = None
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServeProcess:
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--port", str(self.port)],
            env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + self.ready_s
        try:
            while not self._ready():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"s2r serve did not become ready:\n{self.log_tail()}")
                time.sleep(0.2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process)
        if self._log is not None:
            self._log.close()
