"""Voice activity detection with WebRTC VAD: one streaming segmenter for two jobs.

Splitting a long recording into utterance-sized chunks and ending a live turn are the same
decision (speech started; enough trailing silence ended it), so both use ``SpeechSegmenter``:
push audio as it arrives, get back every segment that has closed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import webrtcvad

from assistant.speech.audio import SAMPLE_RATE


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = 2  # 0 (lenient) … 3 (strict about what counts as speech)
    frame_ms: int = 30  # webrtcvad accepts 10, 20 or 30 ms frames
    padding_ms: int = 300  # audio kept before the first and after the last voiced frame
    end_silence_ms: int = 600  # trailing silence that closes a segment (endpointing)
    min_speech_ms: int = 250  # voiced time below which a segment is a blip, not speech
    max_segment_s: float = 20.0  # longer speech is cut so a chunk fits one Whisper window

    @classmethod
    def from_settings(cls, settings) -> VadConfig:
        return cls(
            aggressiveness=settings.vad_aggressiveness,
            frame_ms=settings.tuning.vad_frame_ms,
            padding_ms=settings.tuning.vad_padding_ms,
            end_silence_ms=settings.vad_end_silence_ms,
            min_speech_ms=settings.tuning.vad_min_speech_ms,
            max_segment_s=settings.tuning.vad_max_segment_s,
        )


@dataclass(frozen=True)
class SpeechSegment:
    start: float  # seconds from the beginning of the stream
    end: float
    audio: np.ndarray  # float32 16 kHz mono, padding included
    voiced_ms: int
    speech_end: float  # end of the last voiced frame (``end`` minus the trailing padding)


class SpeechSegmenter:
    """Streaming speech segmentation; ``push`` audio, receive closed segments."""

    def __init__(self, config: VadConfig | None = None,
                 voice_gate: Callable[[np.ndarray], bool] | None = None) -> None:
        """``voice_gate(frame)`` can veto a voiced frame (the voice loop uses it to ignore the
        assistant's own voice coming back through the microphone)."""
        self.config = config or VadConfig()
        self._voice_gate = voice_gate
        self._vad = webrtcvad.Vad(self.config.aggressiveness)
        self._frame = SAMPLE_RATE * self.config.frame_ms // 1000
        frames = lambda ms: max(1, -(-ms // self.config.frame_ms))  # noqa: E731 (round up)
        self._pad_frames = frames(self.config.padding_ms)
        self._end_frames = frames(self.config.end_silence_ms)
        self._min_voiced = frames(self.config.min_speech_ms)
        self._max_frames = int(self.config.max_segment_s * 1000 / self.config.frame_ms)
        # Speech starts when most of the last ~150 ms is voiced: one noisy frame is not a turn.
        self._start_window = max(3, 150 // self.config.frame_ms)
        self._start_needed = (self._start_window * 3 + 4) // 5
        self._leftover = np.zeros(0, np.float32)
        self._frame_index = 0
        self._recent: deque[tuple[np.ndarray, bool]] = deque(
            maxlen=max(self._pad_frames, self._start_window)
        )
        self._current: list[tuple[np.ndarray, bool]] | None = None
        self._current_start = 0
        self._silent_run = 0

    @property
    def in_speech(self) -> bool:
        """True while a segment is open (the user is talking)."""
        return self._current is not None

    @property
    def voiced_ms(self) -> int:
        """Voiced time in the open segment so far (0 when none is open)."""
        return sum(v for _, v in self._current) * self.config.frame_ms if self._current else 0

    @property
    def onset_s(self) -> float | None:
        """Stream time of the open segment's first voiced frame."""
        if not self._current:
            return None
        first = next(i for i, (_, voiced) in enumerate(self._current) if voiced)
        return (self._current_start + first) * self.config.frame_ms / 1000

    @property
    def time_s(self) -> float:
        """Stream time of the audio pushed so far, in whole frames."""
        return self._frame_index * self.config.frame_ms / 1000

    @property
    def settled_at(self) -> tuple[float, float] | None:
        """(start, speech end) of the open segment once ``padding_ms`` of silence has followed
        its last voiced frame, else None: from then on its audio is final unless the user
        speaks again (a cheap check before ``settled``)."""
        if not self._current or self._silent_run < self._pad_frames:
            return None
        ms = self.config.frame_ms
        voiced_end = self._current_start + len(self._current) - self._silent_run
        return self._current_start * ms / 1000, voiced_end * ms / 1000

    def settled(self) -> SpeechSegment | None:
        """The open segment exactly as it will close if no more speech comes (``settled_at``),
        so the voice loop can recognise and search it while the endpoint's longer silence
        runs; None before that, or if it holds too little speech to become a segment."""
        if self.settled_at is None:
            return None
        return self._segment(self._current[:self._kept_frames], self._current_start)

    @property
    def _kept_frames(self) -> int:
        """Frames of the open segment kept when silence ends it: its speech and the padding."""
        return len(self._current) - self._silent_run + self._pad_frames

    def push(self, samples: np.ndarray) -> list[SpeechSegment]:
        """Feed float32 16 kHz mono samples; return the segments that closed."""
        data = np.concatenate([self._leftover, np.asarray(samples, np.float32)])
        n = data.size // self._frame
        self._leftover = data[n * self._frame :]
        closed: list[SpeechSegment] = []
        for i in range(n):
            frame = data[i * self._frame : (i + 1) * self._frame]
            segment = self._step(frame, self._is_speech(frame))
            if segment is not None:
                closed.append(segment)
        return closed

    def flush(self) -> list[SpeechSegment]:
        """End of stream: close an open segment, if it holds enough speech."""
        if self._current is None:
            return []
        segment = self._close(len(self._current))
        return [segment] if segment is not None else []

    def _is_speech(self, frame: np.ndarray) -> bool:
        pcm = (np.clip(frame, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        if not self._vad.is_speech(pcm, SAMPLE_RATE):
            return False
        return self._voice_gate is None or self._voice_gate(frame)

    def _step(self, frame: np.ndarray, voiced: bool) -> SpeechSegment | None:
        index = self._frame_index
        self._frame_index += 1
        if self._current is None:
            self._recent.append((frame, voiced))
            recent_voiced = sum(v for _, v in list(self._recent)[-self._start_window :])
            if voiced and recent_voiced >= self._start_needed:
                self._current = list(self._recent)
                self._current_start = index + 1 - len(self._current)
                self._recent.clear()
                self._silent_run = 0
            return None
        self._current.append((frame, voiced))
        self._silent_run = 0 if voiced else self._silent_run + 1
        if self._silent_run >= self._end_frames:
            return self._close(self._kept_frames)
        if len(self._current) >= self._max_frames:
            return self._close(len(self._current))
        return None

    def _close(self, keep: int) -> SpeechSegment | None:
        frames = self._current[:keep] if self._current else []
        self._current = None
        self._silent_run = 0
        return self._segment(frames, self._current_start)

    def _segment(self, frames: list[tuple[np.ndarray, bool]], start: int
                 ) -> SpeechSegment | None:
        """``frames`` from frame ``start`` as a segment, unless they hold too little speech."""
        voiced = sum(v for _, v in frames)
        if not frames or voiced < self._min_voiced:
            return None
        ms = self.config.frame_ms
        last_voiced = max(i for i, (_, v) in enumerate(frames) if v)
        return SpeechSegment(
            start=start * ms / 1000,
            end=(start + len(frames)) * ms / 1000,
            audio=np.concatenate([f for f, _ in frames]),
            voiced_ms=voiced * ms,
            speech_end=(start + last_voiced + 1) * ms / 1000,
        )


def segment_stream(blocks: Iterable[np.ndarray], config: VadConfig | None = None
                   ) -> Iterator[SpeechSegment]:
    """Segment a whole stream of audio blocks (e.g. from ``iter_audio_blocks``)."""
    segmenter = SpeechSegmenter(config)
    for block in blocks:
        yield from segmenter.push(block)
    yield from segmenter.flush()


def contains_speech(audio: np.ndarray, config: VadConfig | None = None) -> bool:
    """Whether any segment of real speech is present: Whisper "hears" words like "you" in
    silence, so a spoken query is gated on this before it is recognised."""
    return next(segment_stream([audio], config), None) is not None


PITCH_LAGS = (40, 200)  # autocorrelation lags in samples: 400 Hz down to 80 Hz at 16 kHz
PERIODIC = 0.5  # normalised autocorrelation peak above which a frame is voiced speech


def periodicity(frame: np.ndarray) -> float:
    """Peak normalised autocorrelation at pitch lags: ~0.8-1.0 for voiced speech, ~0.15 for
    coughs, knocks and noise, which WebRTC VAD can still call speech."""
    if len(frame) <= PITCH_LAGS[1]:
        return 0.0  # too short to hold two pitch periods
    x = frame - frame.mean()
    spectrum = np.fft.rfft(x, 2 * len(x))
    r = np.fft.irfft(spectrum * np.conj(spectrum))[:PITCH_LAGS[1] + 1]
    if r[0] <= 1e-6:
        return 0.0
    lags = np.arange(PITCH_LAGS[0], PITCH_LAGS[1] + 1)
    return float((r[lags] * len(x) / (len(x) - lags)).max() / r[0])


def periodic_ms(audio: np.ndarray, frame_ms: int = 30) -> int:
    """Milliseconds of ``audio`` in frames that carry a pitch (voiced speech)."""
    n = SAMPLE_RATE * frame_ms // 1000
    frames = range(0, len(audio) - n + 1, n)
    return sum(periodicity(audio[i:i + n]) > PERIODIC for i in frames) * frame_ms
