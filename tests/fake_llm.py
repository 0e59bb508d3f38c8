"""A scripted OpenAI-compatible chat server on a real socket, for the client's failure paths
(retries, timeouts, malformed or broken streams) that a real model cannot be made to show.

Nothing here is timed: a slow model is one that answers only when the test sets an event
(``Step.until``), and a long answer is one that stops after a few words and then sends only
keep-alives until its client leaves (``Step.hold_after``), so a test asserts what happened
first, never how long it took.  ``GUARD_S`` only keeps a test that fails from hanging.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from assistant.speech.audio import SAMPLE_RATE, wav_bytes

# How long a held answer waits for its event or for its client to leave before it goes on as
# if released: a guard against a hung test, far beyond any wait a passing test makes.
GUARD_S = 120.0
KEEP_ALIVE_S = 0.02  # between keep-alives while an answer is held


@dataclass
class Step:
    """How to answer one request."""

    status: int = 200
    text: str = "Coffee was first grown in Yemen [1]."
    headers: dict[str, str] = field(default_factory=dict)
    raw: str | None = None  # a body sent as is (malformed answers)
    stream_error: bool = False  # send an error event after the first chunk
    until: threading.Event | None = None  # answer only once the test sets this (a slow model)
    # stream this many words, then only keep-alives until the client leaves (a long answer)
    hold_after: int | None = None


def _client_left(connection: socket.socket) -> bool:
    """The client closed its end: the socket reads as end-of-file (it sends nothing else
    while it waits for an answer)."""
    if not select.select([connection], [], [], 0)[0]:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class FakeLLM:
    def __init__(self) -> None:
        self.script: deque[Step] = deque()
        self.default = Step()
        self.requests: list[dict] = []
        self.aborted = threading.Event()  # a client closed a stream early
        self.holding = threading.Event()  # a request is waiting for ``until`` or is held
        self.left = threading.Event()  # a client closed a request held by ``until``
        self.closed = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, json.dumps({"data": [{"id": "fake"}]}))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append({"body": body, "headers": dict(self.headers)})
                if self.path.endswith("/audio/speech"):  # OpenAI text-to-speech: a tone
                    tone = np.sin(np.arange(SAMPLE_RATE // 2) * 0.1).astype(np.float32) * 0.3
                    self.send_response(200)
                    self.send_header("content-type", "audio/wav")
                    self.end_headers()
                    self.wfile.write(wav_bytes(tone))
                    return
                step = fake.script.popleft() if fake.script else fake.default
                if step.until is not None:
                    fake.holding.set()
                    fake.wait_for(step.until, lambda: _client_left(self.connection))
                    if _client_left(self.connection):
                        fake.left.set()
                        return
                # a client that gave up on a held answer may be gone
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer(step, body)

            def _answer(self, step: Step, body: dict) -> None:
                if step.raw is not None or step.status != 200:
                    error = json.dumps({"error": {"message": f"scripted {step.status}"}})
                    self._send(step.status, step.raw or error, step.headers)
                elif body.get("stream"):
                    self._stream(step)
                else:
                    self._send(200, json.dumps({
                        "id": "x", "object": "chat.completion", "model": "fake",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": step.text}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1}}))

            def _send(self, status: int, body: str, headers: dict | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, step: Step) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                words = step.text.split(" ")
                events = [{"choices": [{"delta": {"role": "assistant"}}]}]
                events += [{"choices": [{"delta": {"content": w if i == 0 else " " + w}}]}
                           for i, w in enumerate(words)]
                try:
                    for i, event in enumerate(events):
                        if step.hold_after is not None and i == step.hold_after + 1:
                            self._hold()
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                        if step.stream_error and i == 1:
                            self.wfile.write(b'data: {"error": {"message": "boom"}}\n\n')
                            return
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    fake.aborted.set()

            def _hold(self) -> None:
                """Keep-alives (SSE comments, which carry no text) until writing one fails
                because the client left (raises), or the guard runs out."""
                fake.holding.set()
                deadline = time.monotonic() + GUARD_S
                while time.monotonic() < deadline and not fake.closed.is_set():
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    time.sleep(KEEP_ALIVE_S)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits for the loop to look again: 0.5 s each test at the default
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def wait_for(self, event: threading.Event, gone: Callable[[], bool] = lambda: False
                 ) -> None:
        """Until ``event`` is set, ``gone()`` (the client left), the server closes, or the
        guard runs out."""
        deadline = time.monotonic() + GUARD_S
        while (not event.wait(0.05) and not gone() and not self.closed.is_set()
               and time.monotonic() < deadline):
            pass

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()
