"""``s2r serve``: the assistant over HTTP, OpenAI-compatible where a standard exists.

- ``POST /v1/chat/completions``: OpenAI chat completions; the last user message may carry the
  spoken question as an ``input_audio`` part.  Answers carry the retrieved ``sources`` (and an
  ``s2r`` object: transcript, citations, timings) as extra fields, which OpenAI clients ignore.
- ``POST /v1/retrieve``: ranked chunks for a typed question or an uploaded recording.
- ``POST /v1/ingest``: add uploaded documents or recordings to the collection.
- ``GET /healthz``: 200 once the models are loaded, 503 while they load.
- ``GET /``: the voice page (off with ``s2r serve --no-ui``); ``WebSocket /v1/talk``: the
  voice loop over a socket; ``GET /v1/sources/audio``: the cited span of a recording
  (``assistant/interfaces/web/``).

Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.  Retrieval runs
in a worker thread under one lock (the models and the embedded store are not shared between
threads); generation streams from the model endpoint on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from assistant.answer.answering import Answerer, Prepared, Question, QuestionError
from assistant.answer.chat_client import AsyncChatClient, LLMError, Message
from assistant.answer.context import cited_numbers
from assistant.answer.conversation import Conversation
from assistant.answer.extractive import NOTHING_FOUND, extractive_answer
from assistant.interfaces.web import page
from assistant.interfaces.web.access import bearer, cors_origins, key_matches
from assistant.interfaces.web.spans import SPAN_PATH, SpanError, read_span, recording_path
from assistant.interfaces.web.talk_socket import Close, Refused, TalkSockets
from assistant.retrieval.retriever import Retriever
from assistant.retrieval.store import StoreStats
from assistant.runtime import Runtime
from assistant.speech.audio import AudioDecodeError, AudioTooLongError, decode_audio, wav_bytes

log = logging.getLogger(__name__)
STATS_TTL_S = 10.0
UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status, message, type_, code, param)
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}, **self.extra}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


class ChatRequest(BaseModel):
    """The OpenAI request fields s2r reads; others (``n``, ``tools`` …) are accepted and
    ignored, so stock clients work."""

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_k: int | None = Field(default=None, ge=1, le=50, description="s2r: sources to retrieve")


class RetrieveRequest(BaseModel):
    query: str = Field(min_length=1)
    top_k: int = Field(default=5, ge=1, le=100)
    kind: str | None = Field(default=None, pattern="^(text|audio)$")


class Service:
    """Loaded models, the lock that serialises them, and the model client."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.chat: AsyncChatClient | None = None
        self._stats: tuple[float, StoreStats] | None = None  # (monotonic time, stats)

    async def stats(self) -> StoreStats:
        """Collection statistics for /healthz, at most STATS_TTL_S old: counting sources
        scans the source index, and health checks poll often (it cost ~0.3 s a call at 10k
        sources, under the retrieval lock)."""
        now = time.monotonic()
        if self._stats is None or now - self._stats[0] > STATS_TTL_S:
            self._stats = (now, await self.run(self.runtime.store.stats))
        return self._stats[1]

    def stats_changed(self) -> None:
        self._stats = None

    def load(self) -> None:
        """Load every model (and start the local LLM) so the first request is not slow."""
        try:
            self.runtime.warm_up()
            if self.runtime.llm.config is not None:
                self.chat = AsyncChatClient(self.runtime.llm.config)
            self.ready.set()
        except Exception as exc:  # reported by /healthz and every endpoint
            log.exception("loading failed")
            self.load_error = f"{type(exc).__name__}: {exc}"

    def answerer(self) -> Answerer:
        """A stateless answerer: the request's own messages are the conversation."""
        return Answerer(self.runtime, Conversation(0))

    async def run(self, fn, *args):
        def locked():
            with self.lock:
                return fn(*args)

        return await run_in_threadpool(locked)


class RequestTimeout:
    """A request that has not begun its response within ``seconds`` gets a 504 at once, and its
    handler is cancelled: the model request it awaits is closed, so the model stops too,
    instead of answering a client that has gone (work in a worker thread ends when that thread
    returns; whatever it sends then is dropped).  A response already streaming is not cut."""

    def __init__(self, app, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        begun = anyio.Event()  # the response started, or the handler ended
        timed_out = False

        async def send_unless_timed_out(message) -> None:
            if timed_out:
                return
            if message["type"] == "http.response.start":
                begun.set()
            await send(message)

        async def handle() -> None:
            try:
                await self.app(scope, receive, send_unless_timed_out)
            finally:
                begun.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(handle)
            with anyio.move_on_after(self.seconds):
                await begun.wait()
            if not begun.is_set():
                timed_out = True
                response = APIError(504, f"request took over {self.seconds:g} s",
                                    "timeout_error", "timeout").response()
                await response(scope, receive, send)
                tasks.cancel_scope.cancel()


class BodyLimit:
    """Refuse a request body over the limit while it streams in, whether or not it declares
    a Content-Length (a chunked upload could otherwise fill the disk or memory)."""

    def __init__(self, app, max_bytes: int, limit_mb: float) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.error = APIError(413, f"request body over the {limit_mb:g} MB limit",
                              code="payload_too_large")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self.error.response()(scope, receive, send)
        seen = 0
        refused = False

        async def counted():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not refused:
                    refused = True
                    await self.error.response()(scope, receive, send)
                    return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def unless_refused(message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except Exception:
            if not refused:  # the app's reaction to the cut-off body is not an error
                raise


def _write_upload(path: Path, data: bytes) -> None:
    """Write an upload without following a symlink planted at its name."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def create_app(runtime: Runtime, load_in_background: bool = True, ui: bool = True) -> FastAPI:
    """The service; ``ui=False`` leaves out the voice page (``s2r serve --no-ui``)."""
    service = Service(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = threading.Thread(target=service.load, name="s2r-load", daemon=True)
        loader.start()
        if not load_in_background:
            await asyncio.to_thread(loader.join)
        yield
        if service.chat is not None:
            await service.chat.aclose()

    app = FastAPI(title="s2r", version="0.1.0", lifespan=lifespan,
                  description="Spoken questions straight into a Qdrant retriever; grounded "
                  "answers from an OpenAI-compatible model.")
    app.state.service = service
    settings = runtime.settings
    max_bytes = int(settings.max_upload_mb * 1024 * 1024)

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return APIError(422, f"invalid request: {first.get('msg', exc)}", param=param,
                        code="invalid_value").response()

    app.add_middleware(RequestTimeout, seconds=settings.tuning.request_timeout_s)
    app.add_middleware(BodyLimit, max_bytes=max_bytes, limit_mb=settings.max_upload_mb)
    origins = cors_origins(settings.cors_origins)
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_methods=["GET", "POST"], allow_origins=origins,
                           allow_headers=["authorization", "content-type"])

    def authorized(request: Request) -> None:
        if not key_matches(settings.api_key, bearer(request.headers)):
            raise APIError(401, "missing or wrong API key (Authorization: Bearer …)",
                           "authentication_error", "invalid_api_key")

    def loaded() -> Service:
        if service.load_error:
            raise APIError(503, f"s2r failed to load: {service.load_error}", "server_error",
                           "load_failed")
        if not service.ready.is_set():
            raise APIError(503, "s2r is loading its models; retry shortly", "server_error",
                           "loading")
        return service

    guarded = [Depends(authorized), Depends(loaded)]

    def not_ready() -> Refused | None:
        """Why a talk session cannot start yet, as ``loaded`` says it over HTTP."""
        try:
            loaded()
        except APIError as exc:
            close = Close.INTERNAL if exc.code == "load_failed" else Close.TRY_LATER
            return Refused(close, exc.code or "loading", exc.message)
        return None

    talk = TalkSockets(runtime, service.lock, not_ready, origins)

    if ui:
        @app.get("/", include_in_schema=False)
        async def voice_page(request: Request, key: str = "") -> HTMLResponse:
            if not (key_matches(settings.api_key, key)
                    or key_matches(settings.api_key, bearer(request.headers))):
                return page.key_form()
            return page.page()

    @app.websocket("/v1/talk")
    async def talk_socket(websocket: WebSocket) -> None:
        await talk.serve(websocket)

    @app.get(SPAN_PATH, dependencies=guarded, response_class=Response,
             summary="exactly the cited span of a recording in the collection, as WAV "
             "(16 kHz mono PCM16)",
             responses={200: {"content": {"audio/wav": {}}}})
    async def source_audio(source: str, start: float, end: float) -> Response:
        try:
            path = await service.run(recording_path, runtime.store, source)
            samples = await run_in_threadpool(read_span, path, start, end)
        except SpanError as exc:
            raise APIError(exc.status, str(exc), code=exc.code, param=exc.param) from exc
        except AudioDecodeError as exc:
            raise APIError(500, f"the recording cannot be read: {exc}", "server_error",
                           "unreadable_recording") from exc
        return Response(wav_bytes(samples), media_type="audio/wav",
                        headers={"Cache-Control": "no-store"})

    @app.get("/healthz", summary="200 when ready, 503 while loading")
    async def healthz() -> JSONResponse:
        if service.load_error or not service.ready.is_set():
            status = "error" if service.load_error else "loading"
            return JSONResponse({"status": status, "error": service.load_error}, 503)
        stats = await service.stats()
        return JSONResponse({"status": "ok", "points": stats.points, "sources": stats.sources,
                             "llm": runtime.llm.description})

    @app.post("/v1/chat/completions", dependencies=guarded,
              summary="OpenAI chat completions, grounded in the collection")
    async def chat_completions(body: ChatRequest):
        question, history = _parse_messages(body.messages, settings)
        started = time.perf_counter()
        try:
            prepared = await service.run(service.answerer().prepare, question, history,
                                         body.top_k)
        except QuestionError as exc:
            raise APIError(400, str(exc), code="no_speech") from exc
        model = body.model or (runtime.llm.config.model if runtime.llm.config else "") or "s2r"
        params = {k: v for k, v in (("max_tokens", body.max_tokens or body.max_completion_tokens),
                                    ("temperature", body.temperature)) if v is not None}
        reply = _Reply(prepared, model, started)
        if prepared.abstain or service.chat is None:
            mode = "abstained" if prepared.abstain else "extractive"
            text = NOTHING_FOUND if prepared.abstain else await service.run(
                extractive_answer, prepared.question, prepared.sources, runtime.embedder.embed)
            return reply.stream_text(text, mode) if body.stream else reply.json(text, mode)
        if not body.stream:
            try:
                completion = await service.chat.complete(prepared.messages, **params)
            except LLMError as exc:
                raise reply.upstream_error(exc) from exc
            quoted = await service.run(service.answerer().quote_if_label_only, prepared,
                                       completion.text)
            if quoted is not None:  # as s2r ask and s2r talk do
                return reply.json(quoted, "extractive", completion.usage)
            return reply.json(completion.text, "llm", completion.usage)
        deltas = service.chat.stream(prepared.messages, **params)
        try:
            first = await anext(deltas, "")
        except LLMError as exc:
            raise reply.upstream_error(exc) from exc
        return reply.stream_deltas(first, deltas, lambda text: service.run(
            service.answerer().quote_if_label_only, prepared, text))

    @app.post("/v1/retrieve", dependencies=guarded,
              summary="ranked chunks for a typed question (JSON or form field `query`) or a "
              "recording (form field `file`)",
              openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": RetrieveRequest.model_json_schema()},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "file": {"type": "string", "format": "binary"},
                      "query": {"type": "string"}, "top_k": {"type": "integer"},
                      "kind": {"type": "string", "enum": ["text", "audio"]}}}},
                  "application/x-www-form-urlencoded": {
                      "schema": RetrieveRequest.model_json_schema()}}}})
    async def retrieve(request: Request) -> dict[str, Any]:
        retriever = Retriever(runtime)
        if request.headers.get("content-type", "").startswith(FORM_TYPES):
            form = await request.form()
            upload = form.get("file")
            fields = {k: v for k, v in form.items() if k in ("query", "top_k", "kind") and v}
            try:
                params = RetrieveRequest(query=fields.get("query") or "-", **{
                    k: v for k, v in fields.items() if k != "query"})
            except ValueError as exc:
                raise APIError(422, f"invalid request: {exc}", code="invalid_value") from exc
            if isinstance(upload, UploadFile):
                audio = _checked_audio(await upload.read(), settings, upload.filename)
                result = await service.run(retriever.search_spoken, audio, params.top_k,
                                           params.kind)
            elif fields.get("query"):
                result = await service.run(retriever.search_text, params.query, params.top_k,
                                           params.kind)
            else:
                raise APIError(400, "send a form field `query` or a file in `file`",
                               param="file")
        else:
            try:
                params = RetrieveRequest.model_validate_json(await request.body())
            except ValueError as exc:
                raise APIError(422, f"invalid request: {exc}", code="invalid_value") from exc
            result = await service.run(retriever.search_text, params.query, params.top_k,
                                       params.kind)
        return {"transcript": result.transcript, "hits": [h.to_json() for h in result.hits],
                "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}}

    @app.post("/v1/ingest", dependencies=guarded,
              summary="add uploaded documents or recordings (multipart field `file`, "
              "repeatable)",
              openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                  "type": "object", "properties": {"file": {
                      "type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})
    async def ingest(request: Request) -> JSONResponse:
        from assistant.index.ingest import Ingestor

        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise APIError(400, "upload files as multipart/form-data in field `file`")
        form = await request.form()
        uploads = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not uploads:
            raise APIError(400, "no file in field `file`", param="file")
        folder = settings.data_dir / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for upload in uploads:
            name = UNSAFE_NAME.sub("_", Path(upload.filename or "upload").name).strip("._")
            path = folder / (name or "upload")
            try:
                _write_upload(path, await upload.read())
            except OSError as exc:  # disk full, a planted symlink …: say so, keep nothing half
                if not path.is_symlink():
                    path.unlink(missing_ok=True)
                raise APIError(507 if exc.errno == errno.ENOSPC else 500,
                               f"cannot store upload {name!r}: {exc.strerror}", "server_error",
                               "storage_error") from exc
            paths.append(str(path))
        report = await service.run(
            lambda: Ingestor(runtime).ingest_paths(paths, progress=False))
        service.stats_changed()
        body = {"ingested": report.ingested, "unchanged": report.unchanged,
                "chunks": report.chunks,
                "failed": [{"source": s, "reason": r} for s, r in report.failed]}
        if report.failed and not (report.ingested or report.unchanged):
            raise APIError(400, "; ".join(r for _, r in report.failed), code="bad_file",
                           extra=body)
        return JSONResponse(body)

    return app


def _parse_messages(messages: list[dict[str, Any]], settings) -> tuple[Question, list[Message]]:
    """The last user message is the question (its audio, if any, else its text); the turns
    before it, as text, are the history."""
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        raise APIError(400, "messages contain no user message", param="messages")
    last = users[-1]
    text, audio = _content(messages[last].get("content"), settings)
    try:
        question = Question(audio=audio) if audio is not None else Question(text=text)
    except QuestionError as exc:
        raise APIError(400, str(exc), param=f"messages.{last}.content") from exc
    history: list[Message] = []
    for message in messages[:last]:
        if message.get("role") in ("user", "assistant"):
            content, _ = _content(message.get("content"), settings, audio_allowed=False)
            if content:
                history.append({"role": message["role"], "content": content})
    turns = settings.tuning.history_turns
    return question, history[-2 * turns:] if turns else []


def _content(content: Any, settings, audio_allowed: bool = True
             ) -> tuple[str, np.ndarray | None]:
    if content is None or isinstance(content, str):
        return content or "", None
    if not isinstance(content, list):
        raise APIError(400, "message content must be a string or a list of parts",
                       param="messages")
    texts, audio = [], None
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "input_audio" and audio_allowed:
            payload = part.get("input_audio") or {}
            try:
                raw = base64.b64decode(payload.get("data", ""), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise APIError(400, "input_audio.data is not valid base64",
                               param="input_audio.data", code="invalid_audio") from exc
            audio = _checked_audio(raw, settings, f"input_audio ({payload.get('format')})")
        elif kind != "input_audio":
            raise APIError(400, f"unsupported content part type {kind!r}", param="messages")
    return " ".join(t for t in texts if t).strip(), audio


def _checked_audio(raw: bytes, settings, label: str | None) -> np.ndarray:
    if len(raw) > settings.max_upload_mb * 1024 * 1024:
        raise APIError(413, f"audio over the {settings.max_upload_mb:g} MB limit",
                       code="payload_too_large")
    if not raw:
        raise APIError(400, f"{label or 'audio'} is empty", code="invalid_audio")
    try:
        return decode_audio(raw, settings.max_audio_s)
    except AudioTooLongError as exc:
        raise APIError(413, f"audio is longer than the {settings.max_audio_s:g} s limit",
                       code="audio_too_long") from exc
    except AudioDecodeError as exc:
        raise APIError(400, f"{label or 'audio'} is not decodable audio: {exc}",
                       code="invalid_audio") from exc


class _Reply:
    """OpenAI-shaped responses for one answered turn, sources attached."""

    def __init__(self, prepared: Prepared, model: str, started: float) -> None:
        self.prepared = prepared
        self.model = model
        self.started = started
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.sources = [{"number": i, **h.to_json()} for i, h in enumerate(prepared.sources, 1)]

    def extras(self, text: str | None, mode: str) -> dict[str, Any]:
        timings = dict(self.prepared.timings_ms)
        timings["total"] = (time.perf_counter() - self.started) * 1e3
        extra = {"question": self.prepared.question, "transcript": self.prepared.transcript,
                 "mode": mode, "timings_ms": {k: round(v, 1) for k, v in timings.items()}}
        if text is not None:
            extra["cited"] = cited_numbers(text, len(self.sources))
        return {"sources": self.sources, "s2r": extra}

    def json(self, text: str, mode: str, usage: dict | None = None) -> JSONResponse:
        return JSONResponse({
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": usage or None, **self.extras(text, mode)})

    def upstream_error(self, exc: LLMError) -> APIError:
        return APIError(502, f"the language model failed: {exc}", "upstream_error",
                        "llm_failed", extra=self.extras(None, "llm"))

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                              "logprobs": None}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def _events(self, pieces: AsyncIterator[str], mode: str) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            yield self._chunk({"role": "assistant", "content": ""}, **self.extras(None, mode))
            try:
                async for piece in pieces:
                    yield self._chunk({"content": piece})
            except LLMError as exc:
                error = APIError(502, f"the language model failed mid-answer: {exc}",
                                 "upstream_error", "llm_failed")
                yield f"data: {json.dumps(error.body())}\n\n"
            else:
                yield self._chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    def stream_deltas(self, first: str, rest: AsyncIterator[str],
                      instead: Callable[[str], Awaitable[str | None]]) -> StreamingResponse:
        """``instead(answer)``: what to add once the answer is complete, if anything (a quote
        in place of a reply that was only a source label)."""
        async def pieces() -> AsyncIterator[str]:
            text = first
            if first:
                yield first
            async for piece in rest:
                text += piece
                yield piece
            if (quoted := await instead(text)) is not None:
                yield "\n" + quoted

        return self._events(pieces(), "llm")

    def stream_text(self, text: str, mode: str) -> StreamingResponse:
        async def pieces() -> AsyncIterator[str]:
            yield text

        return self._events(pieces(), mode)
