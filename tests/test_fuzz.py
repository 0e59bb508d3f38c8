"""A short mutation fuzz run over the audio and document entry points.

Valid seed files of every kind are damaged (bytes flipped, inserted, deleted, the file cut
short) and fed to the decoder and the connectors.  Whatever comes in, the only way out is a
result or the documented error that names the file: never a crash, a hang or another exception.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from assistant.index.registry import read_document
from assistant.speech.audio import AudioDecodeError, decode_audio, wav_bytes
from connectors import DocumentError
from tests.pdfs import write_pdf
from tests.test_audio import encode, tone

mutation = st.tuples(st.sampled_from(["flip", "insert", "delete", "truncate"]),
                     st.floats(0, 1, exclude_max=True), st.integers(0, 255))


def mutate(seed: bytes, mutations: list[tuple[str, float, int]]) -> bytes:
    data = bytearray(seed)
    for op, where, value in mutations:
        at = int(where * len(data)) if data else 0
        if op == "flip" and data:
            data[at] ^= value or 1
        elif op == "insert":
            data[at:at] = bytes([value]) * (value % 7 + 1)
        elif op == "delete":
            del data[at : at + value % 64 + 1]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def audio_seeds() -> dict[str, bytes]:
    seeds = {"wav": wav_bytes(tone(0.5, 16_000))}
    with tempfile.TemporaryDirectory() as tmp:
        for ext, codec, fmt in (("flac", "flac", "s16"), ("mp3", "libmp3lame", "fltp"),
                                ("ogg", "libopus", "flt")):
            rate = 48_000 if codec == "libopus" else 16_000
            seeds[ext] = encode(Path(tmp) / f"s.{ext}", tone(0.5, rate), rate, codec,
                                fmt).read_bytes()
    return seeds


def document_seeds() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        pdf = write_pdf(Path(tmp) / "s.pdf", ["Otters sleep holding hands."], "Otters")
        return {
            ".pdf": pdf.read_bytes(),
            ".html": b"<html><head><title>Otters</title></head><body><p>Otters sleep "
                     b"holding hands.</p><script>x()</script></body></html>",
            ".md": "# Otters\n\nOtters *sleep* holding hands. Caf\u00e9.\n".encode(),
            ".txt": b"Otters sleep holding hands.\nSea otters use tools.\n",
        }


AUDIO = audio_seeds()
DOCUMENTS = document_seeds()


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(AUDIO)), mutations=st.lists(mutation, max_size=6))
# found by this test in CI: the damage makes the mp3 decoder switch sample rate part-way
@example(kind="mp3", mutations=[("insert", 0.5, 102), ("delete", 0.5, 21)])
def test_damaged_audio_decodes_or_raises_the_decode_error(kind, mutations):
    try:
        audio = decode_audio(mutate(AUDIO[kind], mutations))
    except AudioDecodeError as exc:
        assert str(exc)
        return
    assert audio.dtype == np.float32 and np.isfinite(audio).all()


@settings(max_examples=200, deadline=None)
@given(suffix=st.sampled_from(sorted(DOCUMENTS)), mutations=st.lists(mutation, max_size=6))
# found by this test: the damage leaves a page whose content refers to itself (pypdf's
# LimitReachedError, outside the PdfReadError family)
@example(suffix=".pdf", mutations=[("flip", 0.5, 0), ("flip", 0.03125, 0)])
def test_damaged_documents_read_or_raise_the_document_error(tmp_path_factory, suffix,
                                                            mutations):
    path = tmp_path_factory.mktemp("fuzz") / f"doc{suffix}"
    path.write_bytes(mutate(DOCUMENTS[suffix], mutations))
    try:
        document = read_document(path, str(path))
    except DocumentError as exc:
        assert path.name in str(exc)
        return
    assert isinstance(document.text, str) and document.source == str(path)
