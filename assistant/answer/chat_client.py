"""OpenAI-compatible chat completions over httpx, sync and async, streaming and not.

Any server that speaks ``POST /v1/chat/completions`` works: OpenAI, vLLM, llama.cpp, Ollama, or
the local llama.cpp server s2r starts itself.  Transient failures (429, 5xx, refused or
dropped connections) are retried with exponential backoff, honouring ``Retry-After``; a stream
is only retried before its first token, so the caller never sees text twice.  Closing a stream
early (the caller went away) closes the upstream response, which stops the generation there.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from assistant.settings import Settings

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
DONE = "[DONE]"
Message = dict[str, Any]


class LLMError(RuntimeError):
    """The model endpoint failed; ``status`` is its HTTP status, if it answered at all."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChatConfig:
    url: str  # base URL, with or without the trailing /v1
    model: str = ""
    api_key: str = ""
    timeout_s: float = 120.0
    retries: int = 2
    max_tokens: int = 256
    temperature: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None,
                      model: str | None = None) -> ChatConfig:
        return cls(url=url or settings.llm_url, model=model or settings.llm_model,
                   api_key=settings.llm_api_key, timeout_s=settings.tuning.llm_timeout_s,
                   retries=settings.tuning.llm_retries, max_tokens=settings.llm_max_tokens,
                   temperature=settings.tuning.llm_temperature)

    @property
    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def body(self, messages: list[Message], stream: bool, **params: Any) -> dict[str, Any]:
        body = {"messages": messages, "stream": stream, "max_tokens": self.max_tokens,
                "temperature": self.temperature, **params}
        if self.model:
            body.setdefault("model", self.model)
        return body


@dataclass
class Completion:
    text: str
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    model: str = ""


def _retry_delay(attempt: int, response: httpx.Response | None) -> float:
    """Backoff before try ``attempt + 1``: Retry-After when the server gives one."""
    if response is not None:
        after = response.headers.get("retry-after", "")
        try:
            return min(max(float(after), 0.0), BACKOFF_MAX_S)
        except ValueError:
            pass
    return min(BACKOFF_BASE_S * 2**attempt, BACKOFF_MAX_S)


def _error_for(response: httpx.Response) -> LLMError:
    try:
        detail = response.json().get("error", {})
        message = detail.get("message") if isinstance(detail, dict) else str(detail)
    except (ValueError, AttributeError):
        message = None
    message = message or response.text[:300] or response.reason_phrase
    return LLMError(f"model endpoint answered {response.status_code}: {message}",
                    response.status_code)


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def _ok_stream(response: httpx.Response) -> httpx.Response:
    """A 200 answer to a stream request that is not server-sent events (a proxy's HTML page,
    a plain JSON body) is an error, not an empty answer."""
    if _ok(response) and not _is_event_stream(response):
        kind = response.headers.get("content-type") or "no content type"
        raise LLMError(f"model endpoint answered a stream request with {kind}, not server-sent "
                       f"events: {response.text[:200]!r}")
    return response


def _parse_completion(response: httpx.Response) -> Completion:
    try:
        data = response.json()
    except ValueError as exc:  # an HTML error page from a proxy, a truncated body …
        raise LLMError("model endpoint sent a completion that is not JSON: "
                       f"{response.text[:200]!r}") from exc
    try:
        choice = data["choices"][0]
        return Completion(choice["message"].get("content") or "", choice.get("finish_reason"),
                          data.get("usage") or {}, data.get("model", ""))
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"model endpoint sent a malformed completion: {str(data)[:200]}") from exc


def _sse_delta(line: str) -> str | None:
    """Text of one server-sent-event line: "" for keep-alives and role-only chunks,
    None at the end of the stream."""
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if payload == DONE:
        return None
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise LLMError(f"model endpoint sent a malformed stream event: {payload[:200]}") from exc
    if "error" in data:
        raise LLMError(f"model endpoint failed mid-stream: {data['error']}")
    choices = data.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or ""


def _transient(exc: Exception) -> bool:
    return isinstance(exc, httpx.TransportError) or (
        isinstance(exc, LLMError) and exc.status in RETRY_STATUSES)


def _give_up_or_wait(exc: Exception, attempt: int, response: httpx.Response | None,
                     config: ChatConfig, started: bool = False) -> float:
    """Seconds to wait before the next try; raises the final LLMError when there is none
    (a permanent error, the last try, or a stream that already produced text)."""
    if started or not _transient(exc) or attempt >= config.retries:
        raise _wrap(exc, config) from exc
    return _retry_delay(attempt, response)


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise _error_for(response)
    return response


class ChatClient:
    """Blocking client; one connection pool per instance."""

    def __init__(self, config: ChatConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._http = httpx.Client(timeout=httpx.Timeout(config.timeout_s, connect=10.0),
                                  headers=config.headers(), transport=transport)

    def complete(self, messages: list[Message], **params: Any) -> Completion:
        body = self.config.body(messages, stream=False, **params)
        for attempt in range(self.config.retries + 1):
            response = None
            try:
                response = _ok(self._http.post(self.config.endpoint, json=body))
                return _parse_completion(response)
            except (httpx.TransportError, LLMError) as exc:
                time.sleep(_give_up_or_wait(exc, attempt, response, self.config))
        raise AssertionError("unreachable")

    def stream(self, messages: list[Message], **params: Any) -> Iterator[str]:
        """Yield text deltas as they arrive.  Closing the iterator closes the upstream stream."""
        body = self.config.body(messages, stream=True, **params)
        for attempt in range(self.config.retries + 1):
            response = None
            started = False
            try:
                with self._http.stream("POST", self.config.endpoint, json=body) as response:
                    if response.status_code != 200 or not _is_event_stream(response):
                        response.read()
                    for line in _ok_stream(response).iter_lines():
                        if (delta := _sse_delta(line)) is None:
                            return
                        started = started or bool(delta)
                        if delta:
                            yield delta
                return
            except (httpx.TransportError, LLMError) as exc:
                time.sleep(_give_up_or_wait(exc, attempt, response, self.config, started))

    def close(self) -> None:
        self._http.close()


class AsyncChatClient:
    """The same client for asyncio callers (the HTTP service)."""

    def __init__(self, config: ChatConfig,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_s, connect=10.0),
                                       headers=config.headers(), transport=transport)

    async def complete(self, messages: list[Message], **params: Any) -> Completion:
        body = self.config.body(messages, stream=False, **params)
        for attempt in range(self.config.retries + 1):
            response = None
            try:
                response = _ok(await self._http.post(self.config.endpoint, json=body))
                return _parse_completion(response)
            except (httpx.TransportError, LLMError) as exc:
                await asyncio.sleep(_give_up_or_wait(exc, attempt, response, self.config))
        raise AssertionError("unreachable")

    async def stream(self, messages: list[Message], **params: Any) -> AsyncIterator[str]:
        body = self.config.body(messages, stream=True, **params)
        for attempt in range(self.config.retries + 1):
            response = None
            started = False
            try:
                async with self._http.stream("POST", self.config.endpoint,
                                             json=body) as response:
                    if response.status_code != 200 or not _is_event_stream(response):
                        await response.aread()
                    async for line in _ok_stream(response).aiter_lines():
                        if (delta := _sse_delta(line)) is None:
                            return
                        started = started or bool(delta)
                        if delta:
                            yield delta
                return
            except (httpx.TransportError, LLMError) as exc:
                await asyncio.sleep(
                    _give_up_or_wait(exc, attempt, response, self.config, started))

    async def aclose(self) -> None:
        await self._http.aclose()


class AbortableChatClient:
    """Streams that another thread can abort with ``close``, even before the first byte.
    Closing a blocking httpx client from another thread does not interrupt a read in
    progress: the server never sees the caller leave (the voice loop's barge-in would stop
    the model only at its first token, seconds later, while the next turn waited for the
    server's one slot).  Here each request runs on an event loop of its own, and ``close``
    cancels it there, which closes its connection."""

    def __init__(self, config: ChatConfig) -> None:
        self.config = config
        self._lock = threading.RLock()  # close() cancels under it
        self._closed = False
        self._running: set[tuple[asyncio.AbstractEventLoop, asyncio.Task]] = set()

    def stream(self, messages: list[Message], **params: Any) -> Iterator[str]:
        """Yield text deltas as they arrive; closing the iterator, or ``close`` from any
        thread, ends the request."""
        deltas: queue.SimpleQueue[str | BaseException | None] = queue.SimpleQueue()
        running: list[tuple[asyncio.AbstractEventLoop, asyncio.Task]] = []

        async def pump() -> None:
            client = AsyncChatClient(self.config)
            try:
                async for delta in client.stream(messages, **params):
                    deltas.put(delta)
            finally:
                await client.aclose()

        def run() -> None:
            try:
                self._run(pump(), running.append)
                deltas.put(None)
            except BaseException as exc:  # raised again in the reading thread
                deltas.put(exc)

        pumping = threading.Thread(target=run, daemon=True, name="s2r-chat-stream")
        pumping.start()
        try:
            while (item := deltas.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for entry in running:
                self._cancel(entry)
            pumping.join(10)

    def close(self) -> None:
        """From any thread: abort every request under way, and any later one."""
        with self._lock:
            self._closed = True
            for entry in list(self._running):
                self._cancel(entry)

    def _run(self, work: Coroutine[Any, Any, None],
             started: Callable[[tuple[asyncio.AbstractEventLoop, asyncio.Task]], None]) -> None:
        loop = asyncio.new_event_loop()
        task = loop.create_task(work)
        entry = (loop, task)
        with self._lock:
            if self._closed:
                task.cancel()
            self._running.add(entry)
        started(entry)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError as exc:
            raise LLMError("the request to the model was closed") from exc
        finally:
            with self._lock:
                self._running.discard(entry)
            # finalize the async generators a cancelled stream left open (httpx's among them)
            # while the loop can still run them, as asyncio.run does
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _cancel(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Task]) -> None:
        """Cancel a request if its loop still runs (a closed loop takes no more calls)."""
        with self._lock:
            if entry in self._running:
                entry[0].call_soon_threadsafe(entry[1].cancel)


def _wrap(exc: Exception, config: ChatConfig) -> LLMError:
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return LLMError(f"model endpoint {config.url} timed out after {config.timeout_s:g} s")
    return LLMError(f"model endpoint {config.url} unreachable: {type(exc).__name__}: {exc}")
