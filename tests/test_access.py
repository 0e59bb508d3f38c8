"""Who may call `s2r serve`, with what, and what it leaves in its logs."""

from __future__ import annotations

import base64
import logging

import pytest

from assistant.interfaces.cli import build_parser
from assistant.speech.audio import wav_bytes
from tests.conftest import sharing_store
from tests.test_http_api import call, loaded_app

KEY = "k3y-that-must-never-be-logged"


def test_server_binds_to_loopback_by_default():
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


@pytest.mark.slow
def test_every_route_but_health_needs_the_exact_bearer_token(answer_runtime, caplog, speak):
    caplog.set_level(logging.DEBUG)
    app = loaded_app(answer_runtime, api_key=KEY)
    audio = base64.b64encode(wav_bytes(speak("Who invented the transistor?"))).decode()
    chat = {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}]}]}
    routes = [("POST", "/v1/retrieve", {"json": {"query": "bees"}}),
              ("POST", "/v1/chat/completions", {"json": chat}),
              ("POST", "/v1/ingest", {"files": {"file": ("a.txt", b"x", "text/plain")}})]
    wrong = [{}, {"Authorization": KEY}, {"Authorization": f"bearer {KEY}"},
             {"Authorization": f"Bearer {KEY[:-1]}"}, {"Authorization": f"Bearer {KEY}x"},
             {"Authorization": "Bearer"}, {"Authorization": f"Basic {KEY}"}]
    for method, path, body in routes:
        for headers in wrong:
            response = call(app, method, path, headers=headers, **body)
            assert response.status_code == 401, (path, headers)
            assert KEY not in response.text
    assert call(app, "GET", "/healthz").status_code == 200
    allowed = call(app, "POST", "/v1/retrieve", json={"query": "bees"},
                   headers={"Authorization": f"Bearer {KEY}"})
    assert allowed.status_code == 200
    logged = caplog.text
    assert KEY not in logged and audio[1000:1100] not in logged


@pytest.mark.slow
def test_cors_is_off_unless_configured(answer_runtime):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    closed = loaded_app(answer_runtime)
    assert "access-control-allow-origin" not in call(
        closed, "OPTIONS", "/v1/retrieve", headers=preflight).headers
    opened = loaded_app(answer_runtime, cors_origins="https://app.example")
    allowed = call(opened, "OPTIONS", "/v1/retrieve",
                   headers=preflight | {"Origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = call(opened, "OPTIONS", "/v1/retrieve", headers=preflight)
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_is_refused_as_it_streams(answer_runtime):
    app = loaded_app(answer_runtime, max_upload_mb=0.25)

    async def chunks():  # no Content-Length: the size is only known while reading
        yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
               b"Content-Type: text/plain\r\n\r\n")
        for _ in range(64):
            yield b"x" * 16_384

    response = call(app, "POST", "/v1/ingest", content=chunks(),
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and response.json()["error"]["code"] == \
        "payload_too_large"


@pytest.mark.slow
def test_uploads_cannot_leave_the_data_directory(models, tmp_path):
    runtime = sharing_store(models.with_settings(data_dir=tmp_path / "data", llm_gguf="none"))
    app = loaded_app(runtime)
    outside = tmp_path / "outside.txt"
    uploads = tmp_path / "data" / "uploads"
    names = ["../../outside.txt", "/etc/passwd.txt", "..", "a/../../b.txt", "\u202etxt.exe"]
    for name in names:
        response = call(app, "POST", "/v1/ingest",
                        files={"file": (name, b"Ferns like shade and damp soil.", "text/plain")})
        assert response.status_code in (200, 400), response.text
    assert not outside.exists()
    stored = [p for p in tmp_path.rglob("*") if p.is_file() and "uploads" in p.parts]
    assert stored and all(p.parent == uploads for p in stored)
    # a symlink planted where an upload will be written is not followed
    (uploads / "plant.txt").symlink_to(outside)
    response = call(app, "POST", "/v1/ingest",
                    files={"file": ("plant.txt", b"Cacti need little water.", "text/plain")})
    assert response.status_code == 500 and response.json()["error"]["code"] == "storage_error"
    assert not outside.exists()
    runtime.close()
