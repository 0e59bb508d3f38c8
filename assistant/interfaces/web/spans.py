"""Playable citations: exactly the cited span of a stored recording, as WAV.

Only a source the collection holds is read (a recording is on disk at the path it was
ingested from; a relative one from the server's working directory), so the endpoint can never
serve an arbitrary file.  The span is cut from the same decoded 16 kHz timeline that ingest
measured ``start`` and ``end`` on, so it holds exactly the cited samples.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from assistant.retrieval.store.base import Hit, Store
from assistant.speech.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, iter_audio_blocks

SPAN_PATH = "/v1/sources/audio"
# Longest span served: a cited chunk is at most audio_chunk_max_s (20 s) long, and a span is
# held in memory whole (5 minutes: ~10 MB), so a request cannot ask for an hour.
MAX_SPAN_S = 300.0
# Chunk ends are stored rounded to the millisecond, so the last one may lie up to half a
# millisecond past the recording's last sample; that much is clipped, not refused.
END_SLACK_S = 0.001


class SpanError(Exception):
    """A span request that cannot be served: ``status`` and ``code`` for the HTTP error."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


def span_url(hit: Hit) -> str | None:
    """Where the page fetches an audio hit's span; None for text hits."""
    p = hit.payload
    if p.get("kind") != "audio" or p.get("start") is None or p.get("end") is None:
        return None
    return f"{SPAN_PATH}?{urlencode({'source': p['source'], 'start': p['start'], 'end': p['end']})}"


def recording_path(store: Store, source: str) -> Path:
    """The file of ``source``, which must be a recording the collection holds."""
    if not source or store.count(source=source) == 0:
        raise SpanError(404, f"the collection holds no source {source!r}", "source_not_found",
                        "source")
    path = Path(source)
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise SpanError(404, f"source {source!r} is not a recording", "not_a_recording",
                        "source")
    if not path.is_file():
        raise SpanError(404, f"recording {source!r} is in the collection but no longer on disk "
                        "there", "recording_missing", "source")
    return path


def check_range(start: float, end: float) -> None:
    if not 0.0 <= start < end:
        raise SpanError(400, f"want 0 <= start < end, got start={start:g}, end={end:g}",
                        "invalid_range", "start")
    if end - start > MAX_SPAN_S:
        raise SpanError(400, f"a span is at most {MAX_SPAN_S:g} s long; asked for "
                        f"{end - start:g} s", "span_too_long", "end")


def read_span(path: Path, start: float, end: float) -> np.ndarray:
    """Samples ``start``–``end`` seconds of the recording, decoded only as far as ``end``;
    a range that runs past the recording's end is refused with 416."""
    check_range(start, end)
    first, last = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
    pieces, seen = [], 0
    with closing(iter_audio_blocks(path, block_seconds=10.0)) as blocks:
        for block in blocks:
            if first < seen + len(block):
                pieces.append(block[max(first - seen, 0):last - seen])
            seen += len(block)
            if seen >= last:
                break
    if seen < last - END_SLACK_S * SAMPLE_RATE:
        raise SpanError(416, f"{start:g}–{end:g} s lies outside the recording, which is "
                        f"{seen / SAMPLE_RATE:.3f} s long", "range_not_satisfiable", "end")
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
