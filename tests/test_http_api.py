"""`s2r serve`: in-process over ASGI (every status code of the contract), and over a real
socket with the real local llama.cpp model and the official OpenAI client."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import httpx
import numpy as np
import pytest

from assistant.interfaces.http_api import create_app
from assistant.speech.audio import wav_bytes
from tests.conftest import sharing_store, silence
from tests.fake_llm import GUARD_S, Step

pytestmark = pytest.mark.slow

QUESTION = "Who built the first working transistor?"


def audio_part(samples: np.ndarray) -> dict:
    data = base64.b64encode(wav_bytes(samples)).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://s2r") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(run())


def loaded_app(runtime, **changes):
    app = create_app(sharing_store(runtime, **changes))
    app.state.service.load()
    assert app.state.service.ready.is_set(), app.state.service.load_error
    return app


def test_spoken_question_gets_a_streamed_answer_with_sources(answer_runtime, fake, speak):
    fake.default = Step(text="Bardeen and Brattain built it at Bell Labs [1].")
    app = loaded_app(answer_runtime, llm_url=fake.url)
    body = {"model": "any", "stream": True,
            "messages": [{"role": "user", "content": [audio_part(speak(QUESTION))]}]}
    response = call(app, "POST", "/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    first = chunks[0]
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["sources"][0]["source"].endswith("transistor.html")
    assert "transistor" in first["s2r"]["transcript"].lower()
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == fake.default.text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_non_streaming_answer_and_conversation_history(answer_runtime, fake):
    app = loaded_app(answer_runtime, llm_url=fake.url)
    messages = [{"role": "system", "content": "ignored: s2r has its own"},
                {"role": "user", "content": "Who built the first transistor?"},
                {"role": "assistant", "content": "Bardeen and Brattain [1]."},
                {"role": "user", "content": "What was it made of?"}]
    response = call(app, "POST", "/v1/chat/completions", json={"messages": messages})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == fake.default.text
    assert body["s2r"]["cited"] == [1] and body["s2r"]["mode"] == "llm"
    sent = fake.requests[0]["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert "Question: What was it made of?" in sent[-1]["content"]


def test_a_reply_that_is_only_a_source_label_is_quoted_over_http_too(answer_runtime, fake):
    fake.default = Step(text='Source [1], "The transistor":')
    app = loaded_app(answer_runtime, llm_url=fake.url)
    response = call(app, "POST", "/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Who built the first transistor?"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    content = body["choices"][0]["message"]["content"]
    assert "gave no answer" in content and "Bardeen" in content
    assert body["s2r"]["mode"] == "extractive"
    streamed = call(app, "POST", "/v1/chat/completions", json={
        "stream": True, "messages": [{"role": "user", "content": "Who built the transistor?"}]})
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "")
                   for e in streamed.text.split("\n\n") if e and e != "data: [DONE]")
    assert text.startswith('Source [1], "The transistor":\n')  # streamed before it was known
    assert "gave no answer" in text and "Bardeen" in text


@pytest.mark.parametrize("fault", ["503", "down", "slow", "garbage"])
def test_a_failing_model_is_502_with_the_sources_within_the_timeout(answer_runtime, fake, fault):
    """Down, slow, overloaded or talking nonsense: the retrieved sources still come back.
    The slow model answers only after both requests are done, so each 502 came from the
    model's timeout, not from waiting it out."""
    url = "http://127.0.0.1:9/v1" if fault == "down" else fake.url
    answer = threading.Event()
    fake.default = {"503": Step(status=503, headers={"Retry-After": "0"}),
                    "slow": Step(until=answer),
                    "garbage": Step(raw="<html>gateway says hi</html>")}.get(fault, Step())
    app = loaded_app(answer_runtime, llm_url=url, llm_retries=0, llm_timeout_s=1.0)
    for stream in (False, True):
        response = call(app, "POST", "/v1/chat/completions", json={
            "stream": stream, "messages": [{"role": "user", "content": QUESTION}]})
        assert response.status_code == 502, response.text
        body = response.json()
        assert body["error"]["code"] == "llm_failed" and body["error"]["message"]
        assert body["sources"][0]["title"] == "The transistor"
        if fault == "503":
            assert "503" in body["error"]["message"]
        if fault == "slow":
            assert "timed out after 1 s" in body["error"]["message"]
    assert len(fake.requests) == (0 if fault == "down" else 2)
    assert fake.holding.is_set() == (fault == "slow") and not answer.is_set()
    answer.set()


def test_without_a_model_answers_are_extractive(answer_runtime):
    app = loaded_app(answer_runtime)
    response = call(app, "POST", "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": QUESTION}]})
    assert response.status_code == 200
    assert response.json()["s2r"]["mode"] == "extractive"
    assert "Bardeen" in response.json()["choices"][0]["message"]["content"]


def test_bad_requests_get_openai_shaped_errors(answer_runtime, fake):
    app = loaded_app(answer_runtime, llm_url=fake.url, max_upload_mb=0.5, max_audio_s=5)

    def chat(content):
        return call(app, "POST", "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": content}]})

    bad_audio = {"type": "input_audio", "input_audio": {
        "data": base64.b64encode(b"this is not audio").decode(), "format": "wav"}}
    cases = [
        (chat([bad_audio]), 400, "invalid_audio"),
        (chat([{"type": "input_audio", "input_audio": {"data": "@@@"}}]), 400, "invalid_audio"),
        (chat([audio_part(silence(2.0))]), 400, "no_speech"),
        (chat([audio_part(silence(8.0))]), 413, "audio_too_long"),
        (chat("   "), 400, None),
        (call(app, "POST", "/v1/chat/completions", json={"messages": []}), 422,
         "invalid_value"),
        (call(app, "POST", "/v1/chat/completions", content=b"x" * 600_000,
              headers={"content-type": "application/json"}), 413, "payload_too_large"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["message"] and set(error) == {"message", "type", "param", "code"}
        assert code is None or error["code"] == code
    assert fake.requests == []  # nothing bad reached the model


def test_slow_requests_time_out_with_504(answer_runtime, fake):
    """Over a real socket (in-process ASGI hands over a response only once the app is done):
    the 504 reaches the client while the model has still not answered."""
    answer = threading.Event()
    fake.default = Step(until=answer)
    app = loaded_app(answer_runtime, llm_url=fake.url, request_timeout_s=1.0)
    with RunningServer(app) as url:
        try:
            response = httpx.post(url + "/v1/chat/completions", timeout=GUARD_S, json={
                "messages": [{"role": "user", "content": QUESTION}]})
            unanswered = fake.holding.is_set() and not answer.is_set()
        finally:
            answer.set()  # the model answers now, to a request that is over
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
    assert unanswered


def test_a_timed_out_request_stops_its_model(answer_runtime, fake):
    """The 504 cancels the handler, so the model's stream is closed instead of being read to
    the end for a client that has gone (the model here sends nothing but keep-alives)."""
    fake.default = Step(text="Bees make honey from nectar.", hold_after=0)
    app = loaded_app(answer_runtime, llm_url=fake.url, request_timeout_s=1.0)
    with RunningServer(app) as url:
        response = httpx.post(url + "/v1/chat/completions", timeout=GUARD_S, json={
            "messages": [{"role": "user", "content": QUESTION}], "stream": True})
        assert response.status_code == 504
        assert fake.aborted.wait(GUARD_S)  # a guard: the fixed server aborts within ~0.1 s


def test_api_key_is_required_when_set(answer_runtime):
    app = loaded_app(answer_runtime, api_key="sesame")
    assert call(app, "GET", "/healthz").status_code == 200  # health stays open
    denied = call(app, "POST", "/v1/retrieve", json={"query": "bees"})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
    allowed = call(app, "POST", "/v1/retrieve", json={"query": "bees"},
                   headers={"Authorization": "Bearer sesame"})
    assert allowed.status_code == 200


def test_503_while_loading(answer_runtime):
    app = create_app(sharing_store(answer_runtime))  # models not loaded yet
    assert call(app, "GET", "/healthz").status_code == 503
    response = call(app, "POST", "/v1/retrieve", json={"query": "bees"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "loading"


def test_retrieve_text_and_audio(answer_runtime, speak):
    app = loaded_app(answer_runtime)
    typed = call(app, "POST", "/v1/retrieve", json={"query": "waggle dance", "top_k": 2})
    assert typed.status_code == 200 and len(typed.json()["hits"]) == 2
    assert typed.json()["hits"][0]["title"] == "Honeybees"
    form = call(app, "POST", "/v1/retrieve", data={"query": "waggle dance"})
    assert form.json()["hits"][0]["title"] == "Honeybees"
    spoken = call(app, "POST", "/v1/retrieve", data={"top_k": "3"},
                  files={"file": ("q.wav", wav_bytes(speak(QUESTION)), "audio/wav")})
    assert spoken.status_code == 200, spoken.text
    assert spoken.json()["hits"][0]["title"] == "The transistor"
    assert "transistor" in spoken.json()["transcript"].lower()
    assert call(app, "POST", "/v1/retrieve", json={"top_k": 3}).status_code == 422


def test_ingest_uploads(models, tmp_path):
    runtime = models.with_settings(data_dir=tmp_path / "data", llm_gguf="none")
    app = loaded_app(runtime)
    assert call(app, "GET", "/healthz").json()["points"] == 0
    note = "The office plant is watered every Tuesday by Priya."
    response = call(app, "POST", "/v1/ingest", files=[
        ("file", ("plants.txt", note.encode(), "text/plain")),
        ("file", ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf"))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["ingested"]) == 1 and body["chunks"] == 1
    assert body["failed"][0]["source"].endswith("broken.pdf")
    assert call(app, "GET", "/healthz").json()["points"] == 1  # cached stats were refreshed
    hits = call(app, "POST", "/v1/retrieve", json={"query": "who waters the plant"}).json()
    assert hits["hits"][0]["text"] == note
    only_bad = call(app, "POST", "/v1/ingest",
                    files={"file": ("x.pdf", b"%PDF-1.4 garbage", "application/pdf")})
    assert only_bad.status_code == 400 and only_bad.json()["error"]["code"] == "bad_file"
    runtime.close()


class RunningServer:
    """uvicorn on a real socket, in a thread, for clients that need a URL."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + GUARD_S  # a guard: a server that cannot start fails
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_a_client_leaving_mid_answer_stops_the_model(answer_runtime, fake):
    fake.default = Step(text=" ".join(["word"] * 2000), hold_after=5)  # the rest never comes
    app = loaded_app(answer_runtime, llm_url=fake.url)
    body = {"stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with RunningServer(app) as url, httpx.stream("POST", url + "/v1/chat/completions",
                                                 json=body, timeout=30) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")  # the sources chunk: the answer is flowing
    assert fake.aborted.wait(GUARD_S), "the model kept generating for a client that left"


def test_openai_client_gets_a_grounded_cited_answer_from_the_local_model(
        answer_runtime, local_llm, speak):
    """End to end: real speech → S2R → real llama.cpp model (bundled Qwen2.5 1.5B) → the
    official OpenAI client, unchanged, over a real socket."""
    from openai import OpenAI

    app = create_app(sharing_store(answer_runtime, llm_url=local_llm("qwen"), llm_max_tokens=80,
                                   answer_top_k=3))
    with RunningServer(app) as url:
        deadline = time.monotonic() + GUARD_S  # a guard: loading never takes this long
        while httpx.get(url + "/healthz").status_code != 200:
            assert time.monotonic() < deadline, "s2r serve did not become ready"
            time.sleep(0.2)
        client = OpenAI(base_url=url + "/v1", api_key="unused")
        completion = client.chat.completions.create(model="s2r", messages=[
            {"role": "user", "content": [audio_part(speak(QUESTION))]}])
        answer = completion.choices[0].message.content
        sources = completion.model_extra["sources"]
        cited = completion.model_extra["s2r"]["cited"]
        assert sources[0]["title"] == "The transistor"
        assert cited and sources[cited[0] - 1]["title"] == "The transistor", answer
        assert any(name in answer for name in ("Bardeen", "Brattain", "Bell")), answer

        stream = client.chat.completions.create(model="s2r", stream=True, messages=[
            {"role": "user", "content": "How do honeybees tell others where food is?"}])
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream]
        assert "dance" in "".join(pieces).lower()
