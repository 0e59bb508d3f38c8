"""The bad-input suite: odd audio, hostile documents and folders, and malformed API requests.

Each case gets a specific error that names the input, and a batch goes on past it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.index.ingest import Ingestor
from assistant.retrieval.retriever import Retriever
from assistant.speech.audio import SAMPLE_RATE, AudioTooLongError, decode_audio
from tests.conftest import ROOT, silence
from tests.test_audio import encode, tone
from tests.test_http_api import QUESTION, audio_part, call, loaded_app


def write_pcm_wav(path, samples: np.ndarray, rate: int, width: int, channels: int = 1):
    """Integer PCM WAV of any width (1 = unsigned 8-bit, 2, 3 = 24-bit, 4)."""
    data = np.tile(np.clip(samples, -1, 1), (channels, 1)).T.reshape(-1)
    if width == 1:
        raw = ((data * 127) + 128).astype(np.uint8).tobytes()
    else:
        ints = (data * (2 ** (8 * width - 1) - 1)).astype("<i4")
        raw = b"".join(int(v).to_bytes(width, "little", signed=True) for v in ints) \
            if width == 3 else ints.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(channels)
        fh.setsampwidth(width)
        fh.setframerate(rate)
        fh.writeframes(raw)
    return path


# -- audio ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "rate", "make"), [
    ("24bit.wav", 16_000, lambda p, a, r: write_pcm_wav(p, a, r, 3)),
    ("float.wav", 16_000, lambda p, a, r: encode(p, a, r, "pcm_f32le", "flt")),
    ("stereo48k.wav", 48_000, lambda p, a, r: write_pcm_wav(p, a, r, 2, channels=2)),
    ("phone8k.wav", 8_000, lambda p, a, r: write_pcm_wav(p, a, r, 1)),
])
def test_odd_formats_decode_to_the_same_16k_mono_signal(tmp_path, name, rate, make):
    path = make(tmp_path / name, tone(1.0, rate), rate)
    audio = decode_audio(path)
    assert abs(audio.size - SAMPLE_RATE) < 200
    assert abs(np.argmax(np.abs(np.fft.rfft(audio[:SAMPLE_RATE]))) - 440) <= 2


@pytest.mark.slow
def test_clipped_and_tiny_spoken_questions(runtime, speak):
    Ingestor(runtime).ingest_paths([str(ROOT / "samples" / "docs")], progress=False)
    retriever = Retriever(runtime)
    clipped = np.clip(speak(QUESTION) * 20.0, -1.0, 1.0)  # badly overdriven microphone
    result = retriever.search_audio(clipped, top_k=3)
    assert "transistor" in result.transcript.lower()
    assert result.hits[0].payload["title"] == "The transistor"
    blip = speak("Hi")[: int(0.1 * SAMPLE_RATE)]  # a 0.1 s blip is not a question
    assert retriever.search_audio(blip).hits == []
    assert retriever.search_audio(np.zeros(0, np.float32)).hits == []


@pytest.mark.slow  # no model, but it decodes the hour in the end: 230 MB of samples
def test_an_hour_long_question_is_refused_without_decoding_the_hour(tmp_path):
    path = tmp_path / "hour.wav"  # 1 h of 4 kHz 8-bit audio: 14 MB, under the upload limit
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(1)
        fh.setframerate(4000)
        fh.writeframes(b"\x80" * (4000 * 3600))
    with pytest.raises(AudioTooLongError, match="hour.wav: longer than 60 s"):
        decode_audio(path, max_seconds=60)
    assert decode_audio(path, max_seconds=4000).size == 3600 * SAMPLE_RATE


@pytest.mark.slow
def test_an_hour_long_upload_is_413(answer_runtime, tmp_path):
    import io

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(1)
        fh.setframerate(4000)
        fh.writeframes(b"\x80" * (4000 * 3600))
    app = loaded_app(answer_runtime)
    response = call(app, "POST", "/v1/retrieve",
                    files={"file": ("hour.wav", buffer.getvalue(), "audio/wav")})
    assert response.status_code == 413 and response.json()["error"]["code"] == "audio_too_long"


# -- documents and folders ------------------------------------------------------------------

@pytest.mark.slow
def test_hostile_folder_is_reported_file_by_file(runtime, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("The vault code is 4711.")
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "good.txt").write_text("Otters hold hands while they sleep so they do not drift.")
    (root / "huge-line.txt").write_text("Whales sing long songs across the ocean. " * 25_000)
    (root / "binary.md").write_bytes(os.urandom(4096))
    (root / "latin1.txt").write_bytes("na\xefve caf\xe9".encode("latin-1"))
    (root / "empty.txt").write_bytes(b"")
    (root / "leak.txt").symlink_to(outside)  # a link out of the folder
    (root / "sub" / "inside.txt").symlink_to(root / "good.txt")  # a link within it is fine
    (root / "dangling.txt").symlink_to(root / "gone.txt")
    os.mkfifo(root / "pipe.txt")  # opening it would block forever
    (root / "sub" / "loop").symlink_to(root)

    report = Ingestor(runtime).ingest_paths([str(root)], progress=False)
    reasons = dict(report.failed)
    src = lambda name: f"{root}/{name}"  # noqa: E731
    assert set(report.ingested) == {src("good.txt"), src("huge-line.txt"), src("sub/inside.txt")}
    assert "outside the folder being ingested" in reasons[src("leak.txt")]
    assert "binary file" in reasons[src("binary.md")]
    assert "not valid UTF-8" in reasons[src("latin1.txt")]
    assert "contains no text" in reasons[src("empty.txt")]
    assert "no such file" in reasons[src("dangling.txt")]
    assert "not a regular file" in reasons[src("pipe.txt")]
    assert all(source in reason for source, reason in report.failed)
    assert runtime.store.count(source=src("huge-line.txt")) > 100  # a 1 MB line, chunked
    texts = [h.payload["text"] for h in runtime.store.search(
        runtime.embedder.embed_one("vault code"), top_k=50)]
    assert not any("4711" in t for t in texts)  # nothing from outside was read


# The test's ingest, in a child process that reports the failed sources.
INGEST_AND_REPORT = """
import json, sys
from pathlib import Path
from assistant.index.ingest import Ingestor
from assistant.runtime import Runtime
from assistant.settings import Settings

runtime = Runtime(Settings(data_dir=Path(sys.argv[1]), cache_dir=Path(sys.argv[2])))
report = Ingestor(runtime).ingest_paths(sys.argv[3:], progress=False)
runtime.close()
print(json.dumps(dict(report.failed)))
"""


def ingest_held_to_file_modes(paths: list[str], data_dir: Path, cache_dir: Path
                              ) -> dict[str, str]:
    """Root reads files whatever their mode, through two capabilities (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH).  The ingest runs in a child process that has neither, so the kernel
    checks file modes for it as for any other user; its failed sources and their reasons.
    (Not as nobody: the virtual environment's interpreter may live under /root, which only
    root may enter.)"""
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) runs the ingest without root's file access"
    done = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search",
                           sys.executable, "-c", INGEST_AND_REPORT, str(data_dir),
                           str(cache_dir), *paths], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_unreadable_file_is_reported(runtime, cache_dir, tmp_path):
    locked, readable = tmp_path / "locked.txt", tmp_path / "readable.txt"
    locked.write_text("private")
    locked.chmod(0)  # no one may read it: as root, only through root's overriding capabilities
    readable.write_text("Otters hold hands while they sleep so they do not drift.")
    paths = [str(locked), str(readable)]
    if os.geteuid() == 0:
        failed = ingest_held_to_file_modes(paths, tmp_path / "child-data", cache_dir)
    else:
        failed = dict(Ingestor(runtime).ingest_paths(paths, progress=False).failed)
    assert set(failed) == {str(locked)}  # the readable file went in, the locked one did not
    assert "Permission denied" in failed[str(locked)]


# -- API --------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("query", [
    "\ud800 lone surrogate", "\u200b\u200b\u200b", "\u202etsiser\u202c transistor",
    "🐝🐝 who dances?", "x" * 100_000, "nul\x00byte", "ﬁ ligature and ＦＵＬＬＷＩＤＴＨ",
])
def test_unicode_edge_cases_in_text_queries(answer_runtime, query):
    app = loaded_app(answer_runtime)
    body = json.dumps({"query": query, "top_k": 2})  # \ud800 stays an escape, as clients send
    response = call(app, "POST", "/v1/retrieve", content=body.encode(),
                    headers={"content-type": "application/json"})
    assert response.status_code in (200, 400, 422), response.text  # never a 500
    if response.status_code == 200:
        assert len(response.json()["hits"]) <= 2
    else:
        assert response.json()["error"]["message"]


@pytest.mark.slow
@pytest.mark.parametrize(("body", "code"), [
    (b'{"messages": [', 422), (b"\xff\xfe not utf-8", 422), (b"[]", 422), (b"null", 422),
    (b'{"messages": "hi"}', 422), (b'{"messages": [{"role": "user"}]}', 400),
    (b'{"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}', 400),
    (b'{"messages": [{"role": "user", "content": 42}]}', 400),
])
def test_malformed_chat_requests(answer_runtime, fake, body, code):
    app = loaded_app(answer_runtime, llm_url=fake.url)
    response = call(app, "POST", "/v1/chat/completions", content=body,
                    headers={"content-type": "application/json"})
    assert response.status_code == code, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert fake.requests == []


@pytest.mark.slow
def test_malformed_base64_audio_is_400(answer_runtime, fake):
    app = loaded_app(answer_runtime, llm_url=fake.url)
    for data in ("not base64!", "QUJD", "=" * 8, ""):
        part = {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
        response = call(app, "POST", "/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": [part]}]})
        assert response.status_code == 400, (data, response.text)
        assert response.json()["error"]["code"] == "invalid_audio"
    silent = call(app, "POST", "/v1/chat/completions", json={"messages": [
        {"role": "user", "content": [audio_part(silence(1.0))]}]})
    assert silent.json()["error"]["code"] == "no_speech"
