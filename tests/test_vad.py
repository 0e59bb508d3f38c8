"""WebRTC VAD segmentation and endpointing on real synthesized speech."""

import numpy as np
import pytest

from assistant.speech.audio import SAMPLE_RATE
from assistant.speech.vad import SpeechSegmenter, VadConfig, segment_stream
from tests.conftest import silence


@pytest.mark.slow
def test_utterances_separated_by_pauses_become_segments(speak):
    parts = [speak("The first sentence is about rivers."),
             speak("The second one is about mountains."),
             speak("And the third talks about the sea.")]
    audio = np.concatenate([silence(0.5), parts[0], silence(1.2), parts[1], silence(1.2),
                            parts[2], silence(0.5)])
    segments = list(segment_stream([audio], VadConfig()))
    assert len(segments) == 3
    starts = [0.5, 0.5 + parts[0].size / SAMPLE_RATE + 1.2]
    for seg, expected in zip(segments, starts, strict=False):
        assert abs(seg.start - expected) < 0.45  # includes up to 300 ms of padding
    for seg in segments:
        assert seg.audio.size == round((seg.end - seg.start) * SAMPLE_RATE)
        assert seg.voiced_ms > 500


def test_silence_and_blips_make_no_segments():
    rng = np.random.default_rng(0)
    blip = (0.8 * rng.standard_normal(int(0.09 * SAMPLE_RATE))).astype(np.float32)
    audio = np.concatenate([silence(1.0), blip, silence(1.0)])
    assert list(segment_stream([audio], VadConfig())) == []
    assert list(segment_stream([silence(3.0)], VadConfig())) == []


@pytest.mark.slow
def test_long_speech_is_cut_at_max_segment(speak):
    long = np.concatenate([speak("one two three four five six seven eight nine ten eleven")] * 3)
    segments = list(segment_stream([long], VadConfig(max_segment_s=2.0)))
    assert len(segments) >= 3
    assert all(s.end - s.start <= 2.0 + 1e-6 for s in segments)


@pytest.mark.slow
def test_endpoint_fires_after_trailing_silence_when_streaming(speak):
    utterance = speak("What is the capital of France?")
    audio = np.concatenate([silence(0.4), utterance, silence(2.0)])
    segmenter = SpeechSegmenter(VadConfig(end_silence_ms=600))
    step = int(0.02 * SAMPLE_RATE)  # 20 ms pushes, like a microphone callback
    closed_at = None
    was_in_speech = False
    for i in range(0, audio.size, step):
        done = segmenter.push(audio[i : i + step])
        was_in_speech |= segmenter.in_speech
        if done:
            closed_at = (i + step) / SAMPLE_RATE
            break
    speech_end = 0.4 + utterance.size / SAMPLE_RATE
    assert was_in_speech
    assert closed_at is not None
    # espeak leaves a little silence at the end of its clip, so the end may come a bit early
    assert speech_end + 0.2 < closed_at < speech_end + 1.0
    assert segmenter.flush() == []


@pytest.mark.slow
def test_pitch_tells_speech_from_coughs_and_noise(speak):
    from assistant.speech.vad import periodic_ms
    from tests.conftest import cough

    speech = speak("How do honeybees tell others where food is?")
    assert periodic_ms(speech) > 0.4 * len(speech) / 16
    assert periodic_ms(cough()) == 0
    noise = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    assert periodic_ms(noise) == 0


def _blocks(audio: np.ndarray, ms: int = 30) -> list[np.ndarray]:
    n = SAMPLE_RATE * ms // 1000
    return [audio[i:i + n] for i in range(0, audio.size, n)]


@pytest.mark.slow
def test_a_settled_segment_is_the_one_that_closes(speak):
    """Once the padding's worth of silence follows the speech, ``settled`` is exactly the
    segment the endpoint closes later (the voice loop retrieves it in between)."""
    speech = speak("Who built the first working transistor?")
    segmenter = SpeechSegmenter(VadConfig())
    settled, closed, settled_ms = None, [], None
    for i, block in enumerate(_blocks(np.concatenate([silence(0.5), speech, silence(1.0)]))):
        closed += segmenter.push(block)
        if settled is None and segmenter.settled_at is not None:
            settled, settled_ms = segmenter.settled(), (i + 1) * 30
            assert not closed and segmenter.in_speech  # before the endpoint
    assert len(closed) == 1 and settled is not None
    assert (settled.start, settled.end, settled.speech_end) == (
        closed[0].start, closed[0].end, closed[0].speech_end)
    assert np.array_equal(settled.audio, closed[0].audio)
    # settled 300 ms (the padding) after the last voiced frame, not 600 ms (the endpoint)
    assert abs(settled_ms / 1000 - closed[0].speech_end - 0.3) < 0.031


@pytest.mark.slow
def test_speech_after_a_short_pause_unsettles_the_segment(speak):
    first, second = speak("The first part of it,"), speak("and then the second part.")
    audio = np.concatenate([silence(0.5), first, silence(0.45), second, silence(1.0)])
    segmenter = SpeechSegmenter(VadConfig())
    seen, closed = [], []
    for block in _blocks(audio):
        closed += segmenter.push(block)
        if segmenter.settled_at is not None and segmenter.settled_at not in seen:
            seen.append(segmenter.settled_at)
    assert len(closed) == 1 and len(seen) == 2  # settled after each part; one turn
    assert seen[0][0] == seen[1][0] == closed[0].start
    assert seen[0][1] < seen[1][1] == closed[0].speech_end
