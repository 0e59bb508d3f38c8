"""Audio decoding to the one format every model here wants: 16 kHz mono float32.

PyAV (bundled with faster-whisper) reads wav/flac/mp3/ogg/opus/m4a/webm and more.  Long files
are streamed in blocks so an hour of audio never sits in memory at once.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

SAMPLE_RATE = 16_000

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".webm", ".wma"}
)


class AudioDecodeError(ValueError):
    """The input cannot be decoded as audio; the message names the file."""


AudioSource = str | Path | bytes | BinaryIO


def _label(source: AudioSource) -> str:
    return str(source) if isinstance(source, str | Path) else "<audio bytes>"


def iter_audio_blocks(source: AudioSource, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield consecutive float32 16 kHz mono blocks of about ``block_seconds``.

    Raises AudioDecodeError for a missing file, a file with no audio stream, undecodable data,
    or a stream that decodes to zero samples.
    """
    import av  # here, not at the top: training code that only needs SAMPLE_RATE runs without it

    label = _label(source)
    if isinstance(source, str | Path) and not Path(source).is_file():
        raise AudioDecodeError(f"{label}: no such file")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    block = int(block_seconds * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    pending_len = 0
    total = 0
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise AudioDecodeError(f"{label}: not a readable audio file ({exc})") from exc
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{label}: contains no audio stream")
        stream = container.streams.audio[0]
        resampler, frame_shape = None, None

        def keep(frames) -> int:
            arrays = [out.to_ndarray().reshape(-1) for out in frames]
            pending.extend(arrays)
            return sum(array.size for array in arrays)

        try:
            for frame in container.decode(stream):
                shape = (frame.format.name, frame.layout.name, frame.sample_rate)
                if shape != frame_shape:
                    # A stream may change its rate or channels part-way (joined recordings,
                    # a damaged header); a resampler serves one input shape, so start anew.
                    pending_len += keep(resampler.resample(None)) if resampler else 0
                    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                    frame_shape = shape
                pending_len += keep(resampler.resample(frame))
                while pending_len >= block:
                    data = np.concatenate(pending)
                    yield data[:block].copy()
                    total += block
                    pending, pending_len = [data[block:]], data.size - block
            if resampler:
                keep(resampler.resample(None))
        except av.error.FFmpegError as exc:
            raise AudioDecodeError(f"{label}: corrupt audio data ({exc})") from exc
    rest = np.concatenate(pending).astype(np.float32) if pending else np.zeros(0, np.float32)
    if rest.size:
        yield rest
    elif total == 0:
        raise AudioDecodeError(f"{label}: decodes to no audio samples (empty or corrupt file)")


class AudioTooLongError(AudioDecodeError):
    """A spoken question longer than allowed; decoding stopped at the limit."""


def decode_audio(source: AudioSource, max_seconds: float | None = None) -> np.ndarray:
    """Decode a whole (short) input, e.g. a spoken query, to one float32 array.

    With ``max_seconds``, decoding stops as soon as the input proves longer: a small,
    low-bitrate upload can otherwise decode to hours of samples (gigabytes of memory).
    """
    if max_seconds is None:
        return np.concatenate(list(iter_audio_blocks(source)))
    blocks, total = [], 0
    for block in iter_audio_blocks(source, block_seconds=min(max(max_seconds, 1.0), 30.0)):
        blocks.append(block)
        total += block.size
        if total > max_seconds * SAMPLE_RATE:
            raise AudioTooLongError(f"{_label(source)}: longer than {max_seconds:g} s; a spoken "
                                    "question must be shorter (S2R_MAX_AUDIO_S)")
    return np.concatenate(blocks)


def change_speed(samples: np.ndarray, speed: float) -> np.ndarray:
    """``samples`` played ``speed`` times as fast (tempo and pitch together, as a tape would):
    resampled through the spectrum, so a faster copy loses only what it can no longer hold."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, not {speed}")
    n_out = max(1, round(samples.size / speed))
    spectrum = np.fft.rfft(samples)
    bins = n_out // 2 + 1
    if bins <= spectrum.size:
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - spectrum.size, spectrum.dtype)])
    return (np.fft.irfft(spectrum, n_out) * (n_out / samples.size)).astype(np.float32)


def write_wav(path: str | Path | BinaryIO, samples: np.ndarray, rate: int = SAMPLE_RATE
              ) -> str | Path | BinaryIO:
    """Write float32 mono samples as 16-bit PCM WAV (what tools and tests hand to s2r)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(path if hasattr(path, "write") else str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes(pcm.tobytes())
    return path


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """The samples as a WAV file in memory (for uploads and OpenAI ``input_audio`` parts)."""
    buffer = io.BytesIO()
    write_wav(buffer, samples, rate)
    return buffer.getvalue()


def write_flac(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Write float32 mono samples as 16-bit FLAC (lossless, ~half the size of WAV)."""
    import av

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return Path(path)
