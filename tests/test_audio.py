"""Decoding real encoded audio in every supported container, streaming, and bad input."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from assistant.speech.audio import (
    SAMPLE_RATE,
    AudioDecodeError,
    change_speed,
    decode_audio,
    iter_audio_blocks,
    write_wav,
)

# (extension, codec, sample format, container options)
FORMATS = [
    ("wav", "pcm_s16le", "s16", {}),
    ("flac", "flac", "s16", {}),
    ("mp3", "libmp3lame", "fltp", {}),
    ("ogg", "vorbis", "fltp", {}),
    ("opus", "libopus", "flt", {}),
    ("m4a", "aac", "fltp", {}),
    ("webm", "libopus", "flt", {}),
]


def encode(path: Path, audio: np.ndarray, rate: int, codec: str, fmt: str,
           channels: int = 1) -> Path:
    """Encode with PyAV (FFmpeg's own encoders), the way real recordings are made."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "stereo" if channels == 2 else "mono"
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        frame_size = 960 if "opus" in codec else 1024
        data = np.tile(audio, (channels, 1))
        for i in range(0, audio.size, frame_size):
            part = np.ascontiguousarray(data[:, i : i + frame_size], dtype=np.float32)
            if fmt == "s16":
                part = (part * 32767).astype(np.int16)
            packed = fmt in ("s16", "flt")
            frame = av.AudioFrame.from_ndarray(part.T.reshape(1, -1) if packed else part,
                                               format=fmt, layout=stream.layout.name)
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize(("ext", "codec", "fmt", "_opts"), FORMATS)
def test_every_format_decodes_to_16k_mono(tmp_path, ext, codec, fmt, _opts):
    rate = 48_000 if "opus" in codec else 44_100
    path = encode(tmp_path / f"tone.{ext}", tone(2.0, rate), rate, codec, fmt, channels=2)
    audio = decode_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size / SAMPLE_RATE - 2.0) < 0.1  # codecs add a little priming/padding
    spectrum = np.abs(np.fft.rfft(audio[: SAMPLE_RATE]))
    assert abs(np.argmax(spectrum) - 440) <= 2  # 1 s window: bin = Hz; the tone survived


@pytest.mark.slow
def test_speech_decodes_from_bytes_as_well(speak):
    audio = speak("hello world")
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((audio * 32767).astype("<i2").tobytes())
    again = decode_audio(buf.getvalue())
    assert again.size == audio.size
    assert np.max(np.abs(again - audio)) < 1e-3


def test_long_files_stream_in_blocks(tmp_path):
    path = write_wav(tmp_path / "long.wav", tone(75.0, SAMPLE_RATE, 300.0))
    blocks = list(iter_audio_blocks(path, block_seconds=30.0))
    assert [b.size for b in blocks] == [30 * SAMPLE_RATE, 30 * SAMPLE_RATE, 15 * SAMPLE_RATE]


def test_8k_telephone_audio_is_resampled(tmp_path):
    path = write_wav(tmp_path / "phone.wav", tone(1.0, 8000), rate=8000)
    assert abs(decode_audio(path).size - SAMPLE_RATE) < 100


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.wav", b"", "not a readable audio file|no audio samples"),
        ("text.mp3", b"this is not audio at all " * 100, "not a readable audio file|no audio"),
        ("junk.flac", bytes(range(256)) * 64, "not a readable audio file|corrupt|no audio samples"),
    ],
)
def test_bad_files_raise_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=message) as info:
        decode_audio(path)
    assert name in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(AudioDecodeError, match="no such file"):
        decode_audio(tmp_path / "nope.wav")


def test_truncated_file_keeps_what_decodes_or_fails_clearly(tmp_path):
    path = encode(tmp_path / "cut.flac", tone(3.0, SAMPLE_RATE), SAMPLE_RATE, "flac", "s16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        audio = decode_audio(path)
    except AudioDecodeError as exc:
        assert "cut.flac" in str(exc)
    else:
        assert 0.5 * SAMPLE_RATE < audio.size < 3.0 * SAMPLE_RATE


@pytest.mark.parametrize("speed", [0.8, 1.25])
def test_a_faster_copy_is_shorter_and_higher(speed):
    seconds = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)
    played = change_speed(tone, speed)
    assert played.dtype == np.float32 and played.size == round(SAMPLE_RATE / speed)
    peak_hz = np.abs(np.fft.rfft(played)).argmax() * SAMPLE_RATE / played.size
    assert peak_hz == pytest.approx(440 * speed, abs=2)
    assert played.std() == pytest.approx(tone.std(), rel=0.01)  # as loud as before
    with pytest.raises(ValueError, match="speed must be > 0"):
        change_speed(tone, 0)
