"""What the voice page's tests share: s2r on a real loopback socket (as `s2r serve` runs it), a
WebSocket client for /v1/talk, and a small collection with a recording in it.

Nothing here is timed: ``GUARD_S`` only keeps a failing test from hanging.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from assistant.index.ingest import Ingestor
from assistant.interfaces.http_api import create_app
from assistant.interfaces.web.talk_socket import MAX_MESSAGE_BYTES
from assistant.runtime import Runtime
from assistant.speech.audio import SAMPLE_RATE
from tests.conftest import ROOT, sharing_store, silence
from tests.fake_llm import GUARD_S

KEY = "sesame"
RECORDING = ROOT / "samples" / "speech" / "coffee_history.flac"
FRAME_SAMPLES = 640  # 40 ms, as the page sends


def web_collection(models: Runtime, data_dir: Path) -> Runtime:
    """The three sample documents and one recording (coffee's history), spoken answers by
    espeak-ng (fast, always installed)."""
    runtime = models.with_settings(data_dir=data_dir, llm_gguf="none", llm_temperature=0.0,
                                   tts_engine="espeak-ng")
    report = Ingestor(runtime).ingest_paths([str(ROOT / "samples" / "docs"), str(RECORDING)],
                                            progress=False)
    assert report.ok and len(report.ingested) == 4, report.failed
    return runtime


class RunningServer:
    """``create_app`` under uvicorn on 127.0.0.1, in a thread, with ``s2r serve``'s WebSocket
    limit; ``url`` once the models report ready."""

    def __init__(self, runtime: Runtime, ui: bool = True, **changes: Any) -> None:
        import uvicorn

        self.app = create_app(sharing_store(runtime, **changes), ui=ui)
        self.server = uvicorn.Server(uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning",
            ws_max_size=MAX_MESSAGE_BYTES))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + GUARD_S
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn never started"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        while httpx.get(self.url + "/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the models never loaded"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(GUARD_S)


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def spoken(audio: np.ndarray, before_s: float = 0.5, after_s: float = 2.0) -> np.ndarray:
    """A question as a microphone hears it: a little silence, the words, the pause that ends
    the turn."""
    return np.concatenate([silence(before_s), audio, silence(after_s)])


class Closed(Exception):
    """The server closed the session: its close code and reason."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code, self.reason = code, reason


class TalkClient:
    """A /v1/talk session: start it, send audio as the page does, read its events."""

    def __init__(self, url: str, origin: str | None = None) -> None:
        headers = {"Origin": origin} if origin else {}
        self.connection: ClientConnection = connect(
            url.replace("http://", "ws://") + "/v1/talk", additional_headers=headers,
            max_size=None, open_timeout=GUARD_S, close_timeout=GUARD_S)
        self.events: list[dict[str, Any]] = []  # everything received, in order

    def start(self, key: str = KEY, speak: bool = False) -> dict[str, Any]:
        self.connection.send(json.dumps({"type": "start", "key": key, "speak": speak}))
        return self.next()

    def send_audio(self, samples: np.ndarray) -> None:
        data = pcm16(samples)
        step = FRAME_SAMPLES * 2
        for i in range(0, len(data), step):
            self.connection.send(data[i:i + step])

    def next(self) -> dict[str, Any]:
        """The next event; an ``audio`` event carries the frame that follows it as ``pcm``.
        Raises Closed once the server has closed the session."""
        try:
            message = self.connection.recv(timeout=GUARD_S)
            event = json.loads(message)
            if event["type"] == "audio":
                event["pcm"] = self.connection.recv(timeout=GUARD_S)
        except ConnectionClosed as exc:
            raise Closed(exc.rcvd.code if exc.rcvd else None,
                         exc.rcvd.reason if exc.rcvd else "") from exc
        self.events.append(event)
        return event

    def until(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Read events up to the first of ``kind`` whose fields match."""
        while True:
            event = self.next()
            if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                return event

    def closed(self) -> Closed:
        """Read until the server closes; its code and reason."""
        try:
            while True:
                self.next()
        except Closed as closed:
            return closed

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> TalkClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def audio_seconds(events: list[dict[str, Any]]) -> float:
    return sum(len(e["pcm"]) // 2 for e in events if e["type"] == "audio") / SAMPLE_RATE
