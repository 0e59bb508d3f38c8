"""``WebSocket /v1/talk``: the voice loop of ``s2r talk`` for a browser, or any client that
streams audio.  Turn detection, speculative retrieval and barge-in are ``TalkLoop``'s, run on
a thread per session, so the page and the terminal behave the same; this module only carries
audio in and events out.

Up: one text frame ``{"type": "start", "key": "…", "speak": true}`` (``key`` when S2R_API_KEY
is set; ``speak: false`` for text only), then binary frames of 16 kHz mono PCM16
little-endian, at most ``MAX_FRAME_BYTES`` each.

Down: JSON text frames ``ready``, ``speech_started``, ``speech_stopped``, ``transcript``,
``sources``, ``delta``, ``audio`` (followed by one binary frame: its ``samples`` PCM16 samples
of the spoken answer), ``interrupted`` (drop all audio not yet played, at once),
``answer_done``, ``note`` and ``error`` (sent just before a close with one of ``Close``'s
codes).  docs/architecture.md ("The browser") has the fields.

A session is its socket: nothing names it, so another connection cannot join or take it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from assistant.answer.answering import Answer, Answerer, Question
from assistant.interfaces.talk.loop import SessionClock, TalkLoop, TalkOptions
from assistant.interfaces.talk.microphone import BLOCK_S
from assistant.interfaces.web.access import key_matches, origin_allowed
from assistant.interfaces.web.spans import span_url
from assistant.retrieval.retriever import SearchResult
from assistant.retrieval.store.base import Hit
from assistant.runtime import Runtime
from assistant.speech.answer_voice import SpeechEngine, VirtualPlayer, open_speech_engine
from assistant.speech.audio import SAMPLE_RATE
from assistant.speech.tts import TTSError

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 32_000  # 1 s of audio; pages send 20–100 ms frames
# What the transport reads at all (uvicorn's ws_max_size): a bigger frame is refused by the
# WebSocket layer (1009) before it is buffered, instead of by the session after.
MAX_MESSAGE_BYTES = 1 << 20
# Sessions at once: each runs a voice loop whose turns share one set of models (retrieval is
# serialised), and 2 cores answer about one turn at a time; more would only queue.
MAX_SESSIONS = 4
MAX_SESSION_S = 30 * 60.0  # then the page reconnects; bounds what one socket holds
START_TIMEOUT_S = 10.0  # for the start message: an idle socket must not hold a slot
# Frames queued ahead of the loop; a client sending faster than real time then waits, and TCP
# slows it down, instead of the queue growing without bound.
BACKLOG_FRAMES = 64
BACKLOG_WAIT_S = 0.01
STOP_TIMEOUT_S = 30.0  # for a session's loop to cancel its turn and end
BLOCK = round(BLOCK_S * SAMPLE_RATE)  # the loop's blocks, as a microphone delivers them


class Close(IntEnum):
    """Close codes: the standard ones where they fit, 44xx after HTTP where none does."""

    NORMAL = 1000
    UNSUPPORTED = 1003  # a text frame where audio was expected
    INVALID = 1007  # malformed: an odd-length PCM16 frame, a start message that is not JSON
    POLICY = 1008  # another site's page, no start message
    TOO_BIG = 1009  # a frame over MAX_FRAME_BYTES
    INTERNAL = 1011  # the voice loop failed, or the models failed to load
    TRY_LATER = 1013  # MAX_SESSIONS sessions already, or the models are still loading
    UNAUTHORIZED = 4401  # missing or wrong key
    SESSION_OVER = 4408  # MAX_SESSION_S reached


class Refused(Exception):
    """End the session: an ``error`` event with ``code`` and the message, then ``close``."""

    def __init__(self, close: Close, code: str, message: str) -> None:
        super().__init__(message)
        self.close, self.code = close, code


class Outbox:
    """Events to the socket, in the order they are put, from any thread: the loop and its
    turns run on threads of their own, and only the event loop may write the socket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._send_all())

    def event(self, kind: str, **fields: Any) -> None:
        self._put(("text", json.dumps({"type": kind, **fields}, ensure_ascii=False)))

    def audio(self, samples: np.ndarray) -> None:
        """An ``audio`` header and its PCM16 frame, as one item: nothing may come between."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
        header = json.dumps({"type": "audio", "sample_rate": SAMPLE_RATE, "samples": len(pcm)})
        self._put(("audio", header, pcm.tobytes()))

    def close(self, code: Close, reason: str) -> None:
        self._put(("close", int(code), _short(reason)))

    def _put(self, item: tuple[Any, ...] | None) -> None:
        with contextlib.suppress(RuntimeError):  # no event loop: the server is shutting down
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def _send_all(self) -> None:
        ws = self._websocket
        while (item := await self._queue.get()) is not None:
            try:
                if item[0] == "text":
                    await ws.send_text(item[1])
                elif item[0] == "audio":
                    await ws.send_text(item[1])
                    await ws.send_bytes(item[2])
                else:
                    await ws.close(item[1], item[2])
                    return
            except (WebSocketDisconnect, RuntimeError):  # the client left: nobody to tell
                return

    async def finish(self) -> None:
        """Send what is queued (up to a close), then stop."""
        self._put(None)
        await self._task


def _short(reason: str) -> str:
    """A close reason fits in 123 bytes of UTF-8; the ``error`` event has the whole text."""
    data = reason.encode()
    return reason if len(data) <= 123 else data[:120].decode(errors="ignore") + "…"


class SocketScreen:
    """``TalkLoop``'s screen, drawn by the page: each call becomes an event."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def heard(self, transcript: str) -> None:
        self.outbox.event("transcript", text=transcript)

    def sources(self, hits: list[Hit]) -> None:
        self.outbox.event("sources", sources=[
            {"number": number, **hit.to_json(), "audio_url": span_url(hit)}
            for number, hit in enumerate(hits, 1)])

    def delta(self, text: str) -> None:
        self.outbox.event("delta", text=text)

    def answer_done(self, answer: Answer | None, interrupted: bool) -> None:
        self.outbox.event("answer_done", text=answer.text if answer else "",
                          mode=answer.mode if answer else None,
                          cited=answer.cited if answer else [], interrupted=interrupted,
                          error=answer.error if answer else None)

    def note(self, message: str) -> None:
        self.outbox.event("note", text=message)


class SocketPlayer(VirtualPlayer):
    """Sends each spoken sentence to the page as it is queued, and keeps ``VirtualPlayer``'s
    real-time timeline of the page playing it, which the loop reads (``busy``) to know an
    answer is still being heard and may be talked over."""

    def __init__(self, clock: SessionClock, outbox: Outbox) -> None:
        super().__init__(clock)
        self.outbox = outbox

    def play(self, samples: np.ndarray) -> None:
        super().play(samples)
        self.outbox.audio(samples)

    def stop(self) -> None:
        super().stop()
        self.outbox.event("interrupted")


class SharedModelsAnswerer(Answerer):
    """Retrieval under the service's lock: every session and the HTTP endpoints share one
    Whisper, embedder and embedded store, which are not used from two threads at once."""

    def __init__(self, runtime: Runtime, lock: threading.Lock) -> None:
        super().__init__(runtime)
        self._lock = lock

    def retrieve(self, question: Question, top_k: int | None = None) -> SearchResult:
        with self._lock:
            return super().retrieve(question, top_k)


class _Ended(Exception):
    """The socket is gone: raised into the loop so it cancels its turn and stops now."""


class TalkSession:
    """One socket's voice loop, on a thread of its own, fed the socket's frames."""

    def __init__(self, answerer: Answerer, engine: SpeechEngine | None, outbox: Outbox,
                 options: TalkOptions) -> None:
        self.outbox = outbox
        self.frames: queue.Queue[bytes | None] = queue.Queue(BACKLOG_FRAMES)
        clock = SessionClock()
        self.loop = TalkLoop(answerer, SocketPlayer(clock, outbox), clock, SocketScreen(outbox),
                             engine, options=options)
        self.thread = threading.Thread(target=self._run, daemon=True, name="s2r-web-talk")

    def _run(self) -> None:
        try:
            self.loop.run(self._blocks())
        except _Ended:
            pass
        except Exception as exc:  # reported to the page; the receiving side then closes
            log.exception("voice loop failed")
            self.outbox.event("note", text=f"(the voice loop failed: {type(exc).__name__})")

    def _blocks(self) -> Iterator[np.ndarray]:
        """The frames as the loop's blocks; ``speech_started`` and ``speech_stopped`` as the
        loop's turn detection hears speech begin and end (a cough too: it may become no
        turn).  ``speech_stopped`` carries ``speech_end``, where the words ended (its turn's
        timings count from there), besides ``at``, when the pause that ended it was over."""
        pending = np.zeros(0, np.float32)
        segmenter = self.loop.segmenter
        speaking = False
        ended: float | None = None  # where the open segment's words ended, once it settled
        while (data := self.frames.get()) is not None:
            samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
            pending = np.concatenate([pending, samples])
            while len(pending) >= BLOCK:
                block, pending = pending[:BLOCK], pending[BLOCK:]
                yield block
                if segmenter.in_speech != speaking:
                    speaking = segmenter.in_speech
                    if speaking:
                        self.outbox.event("speech_started", at=segmenter.onset_s)
                    else:  # closed by its pause; else at the longest turn, still speaking
                        self.outbox.event("speech_stopped", at=segmenter.time_s,
                                          speech_end=segmenter.time_s if ended is None
                                          else ended)
                settled = segmenter.settled_at
                ended = settled[1] if settled is not None else None
        raise _Ended

    async def feed(self, data: bytes) -> None:
        """Queue a frame; wait while the loop is behind."""
        while True:
            if not self.thread.is_alive():
                raise Refused(Close.INTERNAL, "server_error", "the voice loop stopped")
            try:
                self.frames.put_nowait(data)
                return
            except queue.Full:
                await asyncio.sleep(BACKLOG_WAIT_S)

    async def stop(self) -> None:
        """End the loop (its turn is cancelled, the model stopped) and wait for it."""
        while True:
            try:
                self.frames.put_nowait(None)
                break
            except queue.Full:  # frames nobody will hear any more
                with contextlib.suppress(queue.Empty):
                    self.frames.get_nowait()
        await asyncio.to_thread(self.thread.join, STOP_TIMEOUT_S)


class TalkSockets:
    """The ``/v1/talk`` endpoint: admits sessions (origin, key, readiness, capacity) and
    runs each until its socket closes or breaks the protocol."""

    def __init__(self, runtime: Runtime, lock: threading.Lock,
                 not_ready: Callable[[], Refused | None], allowed_origins: list[str]) -> None:
        self.runtime = runtime
        self.lock = lock
        self.not_ready = not_ready
        self.allowed_origins = allowed_origins
        self.active = 0  # sessions admitted; changed only on the event loop
        self._engine: SpeechEngine | None = None
        self._engine_lock = threading.Lock()

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        outbox = Outbox(websocket)
        try:
            if not origin_allowed(websocket.headers, websocket.url.scheme == "wss",
                                  self.allowed_origins):
                raise Refused(Close.POLICY, "origin_not_allowed",
                              "pages of another origin may not open a session "
                              "(S2R_CORS_ORIGINS lists those that may)")
            start = await self._start_message(websocket)
            if start is None:
                return
            if (refused := self.not_ready()) is not None:
                raise refused
            if self.active >= MAX_SESSIONS:
                raise Refused(Close.TRY_LATER, "busy", f"{MAX_SESSIONS} sessions are open "
                              "already; try again later")
            self.active += 1
            try:
                await self._session(websocket, outbox, start.get("speak", True) is not False)
            finally:
                self.active -= 1
        except Refused as refused:
            outbox.event("error", code=refused.code, message=str(refused))
            outbox.close(refused.close, str(refused))
        finally:
            await outbox.finish()

    async def _start_message(self, websocket: WebSocket) -> dict[str, Any] | None:
        """The start message, its key checked; None if the client left first."""
        message = await _receive(websocket, START_TIMEOUT_S, Refused(
            Close.POLICY, "start_expected", f"no start message within {START_TIMEOUT_S:g} s"))
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            raise Refused(Close.POLICY, "start_expected",
                          'send {"type": "start", "key": "…"} before any audio')
        try:
            start = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Refused(Close.INVALID, "invalid_json",
                          f"the start message is not JSON: {exc}") from exc
        if not isinstance(start, dict) or start.get("type") != "start":
            raise Refused(Close.POLICY, "start_expected",
                          'the first message must be {"type": "start", …}')
        key = start.get("key")
        if not key_matches(self.runtime.settings.api_key, key if isinstance(key, str) else ""):
            raise Refused(Close.UNAUTHORIZED, "invalid_api_key",
                          "missing or wrong API key (the start message's key)")
        return start

    async def _session(self, websocket: WebSocket, outbox: Outbox, speak: bool) -> None:
        engine = await asyncio.to_thread(self._speech_engine, outbox) if speak else None
        session = TalkSession(SharedModelsAnswerer(self.runtime, self.lock), engine, outbox,
                              self._options())
        session.thread.start()
        outbox.event("ready", sample_rate=SAMPLE_RATE, max_frame_bytes=MAX_FRAME_BYTES,
                     session_s=MAX_SESSION_S, speak=engine is not None)
        deadline = asyncio.get_running_loop().time() + MAX_SESSION_S
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                message = await _receive(websocket, left, Refused(
                    Close.SESSION_OVER, "session_over", f"sessions end after "
                    f"{MAX_SESSION_S / 60:g} min; reconnect to go on"))
                if message["type"] == "websocket.disconnect":
                    return
                await session.feed(_frame(message))
        finally:
            await session.stop()

    def _options(self) -> TalkOptions:
        """``s2r talk``'s tuning, with no echo gate: the page asks the browser for echo
        cancellation, which removes the answer from the microphone better than comparing
        levels can across the network's delay."""
        return TalkOptions.from_settings(self.runtime.settings)

    def _speech_engine(self, outbox: Outbox) -> SpeechEngine | None:
        """One engine for every session, opened by the first (piper loads its voice once)."""
        with self._engine_lock:
            if self._engine is None:
                try:
                    self._engine = open_speech_engine(self.runtime.settings)
                except TTSError as exc:
                    outbox.event("note", text=f"(answers are not spoken: {exc})")
            return self._engine


async def _receive(websocket: WebSocket, timeout_s: float, late: Refused) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(websocket.receive(), max(timeout_s, 0.0))
    except TimeoutError:
        raise late from None


def _frame(message: dict[str, Any]) -> bytes:
    """The PCM16 bytes of an audio frame, or why it is not one."""
    data = message.get("bytes")
    if data is None:
        raise Refused(Close.UNSUPPORTED, "binary_expected",
                      "after the start message, send audio as binary frames (16 kHz mono PCM16)")
    if len(data) > MAX_FRAME_BYTES:
        raise Refused(Close.TOO_BIG, "frame_too_big",
                      f"a frame holds at most {MAX_FRAME_BYTES} bytes (1 s); got {len(data)}")
    if len(data) % 2:
        raise Refused(Close.INVALID, "odd_frame",
                      f"PCM16 frames have an even number of bytes; got {len(data)}")
    return data
