"""A scripted OpenAI-compatible chat server on a real socket, for the client's failure paths
(retries, timeouts, malformed or broken streams) that a real model cannot be made to show."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from assistant.speech.audio import SAMPLE_RATE, wav_bytes


@dataclass
class Step:
    """How to answer one request."""

    status: int = 200
    text: str = "Coffee was first grown in Yemen [1]."
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    chunk_delay_s: float = 0.0  # between stream chunks
    raw: str | None = None  # a body sent as is (malformed answers)
    stream_error: bool = False  # send an error event after the first chunk


class FakeLLM:
    def __init__(self) -> None:
        self.script: deque[Step] = deque()
        self.default = Step()
        self.requests: list[dict] = []
        self.aborted = threading.Event()  # a client closed a stream early
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
                time.sleep(step.delay_s)
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
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                        if step.stream_error and i == 1:
                            self.wfile.write(b'data: {"error": {"message": "boom"}}\n\n')
                            return
                        time.sleep(step.chunk_delay_s)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    fake.aborted.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
