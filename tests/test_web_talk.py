"""The voice page's server side, over real loopback sockets: the /v1/talk protocol (a spoken
question in, transcript, sources, answer and its audio out; barge-in; every refusal with its
close code, the server serving the next session after each), the span endpoint (exactly the
cited samples; refusals), and the page itself (key, --no-ui, nothing loaded from elsewhere).

The model is the scripted fake (tests.fake_llm): a held answer is one that streams a few words
and then waits for its client to leave, so "the model stopped" is observed, never timed.
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from assistant.interfaces.http_api import create_app
from assistant.interfaces.web import talk_socket
from assistant.interfaces.web.spans import MAX_SPAN_S, SPAN_PATH
from assistant.interfaces.web.talk_socket import MAX_FRAME_BYTES, Close
from assistant.speech.audio import SAMPLE_RATE, decode_audio
from tests.conftest import sharing_store
from tests.fake_llm import GUARD_S, Step
from tests.web_helpers import (
    KEY,
    RECORDING,
    RunningServer,
    TalkClient,
    audio_seconds,
    spoken,
    web_collection,
)

QUESTION = "Who built the first working transistor?"
ANSWER = "Bardeen and Brattain built it at Bell Labs [1]. That was in 1947."
HELD = " ".join(["The transistor was built at Bell Labs by Bardeen and Brattain [1]."] * 12)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def collection(models, tmp_path_factory):
    runtime = web_collection(models, tmp_path_factory.mktemp("web-data"))
    yield runtime
    runtime.close()


def kinds(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def test_a_spoken_question_gets_transcript_sources_answer_and_speech(collection, fake, speak):
    fake.default = Step(text=ANSWER)
    with RunningServer(collection, llm_url=fake.url, api_key=KEY) as server, \
            TalkClient(server.url) as client:
        ready = client.start(speak=True)
        assert ready["type"] == "ready" and ready["sample_rate"] == SAMPLE_RATE
        assert ready["speak"] is True and ready["max_frame_bytes"] == MAX_FRAME_BYTES
        client.send_audio(spoken(speak(QUESTION)))
        done = client.until("answer_done")  # every sentence was spoken before it
    events = client.events
    order = kinds(events)
    assert order.index("speech_started") < order.index("transcript") < order.index("sources") \
        < order.index("delta") < order.index("answer_done")
    assert order.index("speech_started") < order.index("speech_stopped")
    started, stopped = (events[order.index(k)] for k in ("speech_started", "speech_stopped"))
    # the words end where the endpoint's pause began: the turn's timings count from there
    assert started["at"] < stopped["speech_end"] < stopped["at"]
    assert stopped["at"] - stopped["speech_end"] == pytest.approx(
        collection.settings.vad_end_silence_ms / 1e3, abs=0.031)
    transcript = events[order.index("transcript")]["text"]
    assert "transistor" in transcript.lower()
    sources = events[order.index("sources")]["sources"]
    assert [s["number"] for s in sources] == list(range(1, len(sources) + 1))
    assert sources[0]["source"].endswith("transistor.html") and sources[0]["kind"] == "text"
    assert sources[0]["text"] and sources[0]["audio_url"] is None
    assert "".join(e["text"] for e in events if e["type"] == "delta") == ANSWER
    assert done["text"] == ANSWER and done["cited"] == [1] and done["interrupted"] is False
    audio = [e for e in events if e["type"] == "audio"]
    assert order.index("delta") < order.index("audio")
    assert all(len(e["pcm"]) == 2 * e["samples"] and e["sample_rate"] == SAMPLE_RATE
               for e in audio)
    assert audio_seconds(events) > 1.0  # two spoken sentences
    assert "interrupted" not in order


def test_two_sessions_each_hear_only_their_own_turns(collection, fake, speak):
    """A session is its socket: a second page with the same key, talking at the same time,
    gets its own turns and none of the first one's events (nor can it name the first)."""
    fake.default = Step(text=ANSWER)
    # (not "How do honeybees tell others where food is?": on some CPUs tiny.en hears
    # "enemies", and the turn abstains without asking the model)
    questions = {"first": QUESTION, "second": "What does the waggle dance of the bees tell?"}
    with RunningServer(collection, llm_url=fake.url, api_key=KEY) as server, \
            TalkClient(server.url) as first, TalkClient(server.url) as second:
        clients = {"first": first, "second": second}
        for name, client in clients.items():
            client.start()
            client.send_audio(spoken(speak(questions[name])))
        for client in clients.values():
            client.until("answer_done")
    heard = {name: [e["text"].lower() for e in c.events if e["type"] == "transcript"]
             for name, c in clients.items()}
    assert len(heard["first"]) == len(heard["second"]) == 1, heard
    assert "transistor" in heard["first"][0] and "transistor" not in heard["second"][0]
    assert "dance" in heard["second"][0] and "dance" not in heard["first"][0]
    tops = {name: [e["sources"][0]["source"] for e in c.events if e["type"] == "sources"]
            for name, c in clients.items()}
    assert tops["first"][0].endswith("transistor.html")
    assert tops["second"][0].endswith("honeybees.md")
    asked = [r["body"]["messages"][-1]["content"].lower().rsplit("question:", 1)[-1]
             for r in fake.requests]  # each model request carries one session's question
    assert sorted(("transistor" in a, "dance" in a) for a in asked) == [(False, True),
                                                                          (True, False)]


def test_talking_over_the_answer_stops_it_and_becomes_the_next_turn(collection, fake, speak):
    fake.script.append(Step(text=HELD, hold_after=5))  # streams 5 words, then holds
    fake.default = Step(text="Coffee was first grown in Yemen [1].")
    with RunningServer(collection, llm_url=fake.url, api_key=KEY) as server, \
            TalkClient(server.url) as client:
        client.start()
        client.send_audio(spoken(speak(QUESTION)))
        client.until("delta")  # the held answer is streaming
        client.send_audio(spoken(speak("Where was coffee first grown?")))
        client.until("answer_done", interrupted=True)
        assert fake.aborted.wait(GUARD_S), "the model kept generating over the barge-in"
        second = client.until("transcript")
        sources = client.until("sources")["sources"]
        done = client.until("answer_done")
    assert "coffee" in second["text"].lower(), second
    recording = sources[0]
    assert recording["source"] == str(RECORDING) and recording["kind"] == "audio"
    assert recording["audio_url"] == f"{SPAN_PATH}?" + urlencode(
        {"source": str(RECORDING), "start": recording["start"], "end": recording["end"]})
    assert done["text"] == fake.default.text and not done["interrupted"]
    order = kinds(client.events)
    assert order.index("interrupted") < order.index("answer_done")
    assert order.count("transcript") == 2


@pytest.fixture
def strict_server(collection, fake):
    """A server with a key and one other allowed origin; the model answers at once."""
    fake.default = Step(text=ANSWER)
    with RunningServer(collection, llm_url=fake.url, api_key=KEY,
                       cors_origins="http://allowed.example") as server:
        yield server


def serves_another_session(server: RunningServer) -> None:
    with TalkClient(server.url) as client:
        assert client.start()["type"] == "ready"


@pytest.mark.parametrize("case", [
    "wrong_key", "no_key", "audio_first", "not_json", "text_frame", "odd_frame", "big_frame",
    "other_origin"])
def test_each_refusal_has_its_close_code_and_the_server_goes_on(strict_server, case):
    origin = "http://evil.example" if case == "other_origin" else None
    with TalkClient(strict_server.url, origin=origin) as client:
        send = client.connection.send
        if case in ("wrong_key", "no_key"):
            send('{"type": "start", "key": "%s"}' % ("nope" if case == "wrong_key" else ""))
        elif case == "audio_first":
            send(b"\0\0" * 320)
        elif case == "not_json":
            send("start please")
        elif case == "other_origin":
            pass  # refused before any message
        else:
            assert client.start()["type"] == "ready"
            send({"text_frame": '{"type": "audio"}', "odd_frame": b"\0" * 641,
                  "big_frame": b"\0" * (MAX_FRAME_BYTES + 2)}[case])
        closed = client.closed()
    expected = {"wrong_key": Close.UNAUTHORIZED, "no_key": Close.UNAUTHORIZED,
                "audio_first": Close.POLICY, "not_json": Close.INVALID,
                "text_frame": Close.UNSUPPORTED, "odd_frame": Close.INVALID,
                "big_frame": Close.TOO_BIG, "other_origin": Close.POLICY}[case]
    assert closed.code == expected, closed
    errors = [e for e in client.events if e["type"] == "error"]
    assert closed.reason and errors[-1]["message"].startswith(closed.reason.rstrip("…")[:40])
    serves_another_session(strict_server)


def test_allowed_origins_and_clients_without_one_are_served(strict_server):
    port = strict_server.url.rsplit(":", 1)[1]
    for origin in (None, "http://allowed.example", f"http://127.0.0.1:{port}"):
        with TalkClient(strict_server.url, origin=origin) as client:
            assert client.start()["type"] == "ready", origin


def test_limits_on_sessions_time_and_silence(strict_server, monkeypatch):
    monkeypatch.setattr(talk_socket, "MAX_SESSIONS", 1)
    with TalkClient(strict_server.url) as first:
        assert first.start()["type"] == "ready"
        with TalkClient(strict_server.url) as second:
            second.start()
            assert second.closed().code == Close.TRY_LATER
    serves_another_session(strict_server)  # the slot came back when the first left

    monkeypatch.setattr(talk_socket, "START_TIMEOUT_S", 0.2)
    with TalkClient(strict_server.url) as idle:
        assert idle.closed().code == Close.POLICY

    monkeypatch.setattr(talk_socket, "MAX_SESSION_S", 0.5)
    with TalkClient(strict_server.url) as long:
        assert long.start()["type"] == "ready"
        assert long.closed().code == Close.SESSION_OVER


def test_sessions_wait_for_the_models(collection):
    app = create_app(sharing_store(collection))  # no lifespan: the models never load
    with TestClient(app).websocket_connect("/v1/talk") as ws:
        ws.send_json({"type": "start"})
        error = ws.receive_json()
        closing = ws.receive()
    assert error["type"] == "error" and error["code"] == "loading"
    assert closing["code"] == Close.TRY_LATER


def test_a_connection_dropped_mid_answer_stops_the_model(collection, fake, speak):
    fake.script.append(Step(text=HELD, hold_after=5))
    fake.default = Step(text=ANSWER)
    with RunningServer(collection, llm_url=fake.url, api_key=KEY) as server, \
            TalkClient(server.url) as other:
        assert other.start()["type"] == "ready"
        dropped = TalkClient(server.url)
        dropped.start()
        dropped.send_audio(spoken(speak(QUESTION)))
        dropped.until("delta")
        dropped.connection.socket.shutdown(socket.SHUT_RDWR)  # no close handshake: a lost link
        dropped.connection.socket.close()
        assert fake.aborted.wait(GUARD_S), "the model kept generating for a client that left"
        other.send_audio(spoken(speak(QUESTION)))
        assert other.until("answer_done")["text"] == ANSWER


@pytest.fixture(scope="module")
def span_server(collection):
    with RunningServer(collection, api_key=KEY) as server:
        yield server


def get_span(server: RunningServer, key: str = KEY, **params) -> httpx.Response:
    return httpx.get(server.url + SPAN_PATH, params=params, timeout=GUARD_S,
                     headers={"Authorization": f"Bearer {key}"})


def test_the_span_endpoint_returns_exactly_the_cited_samples(span_server):
    retrieved = httpx.post(span_server.url + "/v1/retrieve", timeout=GUARD_S,
                           headers={"Authorization": f"Bearer {KEY}"},
                           json={"query": "where coffee was first grown", "kind": "audio"})
    hit = retrieved.json()["hits"][0]
    assert hit["source"] == str(RECORDING) and hit["end"] > hit["start"]
    whole = decode_audio(RECORDING)
    for start, end in ((hit["start"], hit["end"]), (0.0, 0.25), (1.2345, 2.5)):
        response = get_span(span_server, source=str(RECORDING), start=start, end=end)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/wav"
        got = decode_audio(response.content)
        want = whole[round(start * SAMPLE_RATE):round(end * SAMPLE_RATE)]
        assert len(got) == len(want)
        assert np.abs(got - want).max() <= 2 / 32767  # PCM16 rounding only
    last = len(whole) / SAMPLE_RATE
    assert get_span(span_server, source=str(RECORDING), start=last - 0.5,
                    end=round(last, 3)).status_code == 200  # up to the last millisecond


def test_the_span_endpoint_refuses_what_it_must_not_serve(span_server, collection):
    last = len(decode_audio(RECORDING)) / SAMPLE_RATE
    text = next(s for s in collection.store.sources() if s.endswith(".md"))
    cases = [
        (dict(source=str(RECORDING), start=0, end=last + 1), 416, "range_not_satisfiable"),
        (dict(source=str(RECORDING), start=last + 1, end=last + 2), 416,
         "range_not_satisfiable"),
        (dict(source=str(RECORDING), start=2, end=1), 400, "invalid_range"),
        (dict(source=str(RECORDING), start=-1, end=1), 400, "invalid_range"),
        (dict(source=str(RECORDING), start=0, end=MAX_SPAN_S + 1), 400, "span_too_long"),
        (dict(source="/etc/passwd", start=0, end=1), 404, "source_not_found"),
        (dict(source=str(RECORDING) + "x", start=0, end=1), 404, "source_not_found"),
        (dict(source=str(RECORDING), start=0), 422, "invalid_value"),
        (dict(source=text, start=0, end=1), 404, "not_a_recording"),
    ]
    for params, status, code in cases:
        response = get_span(span_server, **params)
        assert response.status_code == status, (params, response.text)
        assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    denied = get_span(span_server, key="nope", source=str(RECORDING), start=0, end=1)
    assert denied.status_code == 401


def test_the_page_is_behind_the_key_and_self_contained(span_server, collection):
    url = span_server.url
    form = httpx.get(url + "/")
    assert form.status_code == 401 and 'name="key"' in form.text
    assert httpx.get(url + "/?key=nope").status_code == 401
    for response in (httpx.get(url + "/", params={"key": KEY}),
                     httpx.get(url + "/", headers={"Authorization": f"Bearer {KEY}"})):
        assert response.status_code == 200 and "/v1/talk" in response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert not re.search(r"""(src|href|import|url)\s*[=(]\s*["']?(https?:)?//""", page)
    assert "echoCancellation: true" in page and "getUserMedia" in page
    with RunningServer(collection, ui=False) as bare:
        assert httpx.get(bare.url + "/").status_code == 404
        assert httpx.get(bare.url + "/healthz").status_code == 200


def test_serve_has_a_no_ui_switch():
    from assistant.interfaces.cli import build_parser

    assert build_parser().parse_args(["serve", "--no-ui"]).no_ui is True
    assert build_parser().parse_args(["serve"]).no_ui is False
