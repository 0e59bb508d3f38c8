"""The voice loop, headless: a recorded multi-turn conversation played through the loop on an
injected clock (the input's own time), with spoken answers timed on a silent player; and
`s2r talk --input` end to end.

Nothing is timed on the wall clock: the conversation's clock is the recording's, so where the
loop stops an answer is decided by the audio alone, and the recording waits at fixed points
for the answers it talks over or after (``delivered``), as a user would.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from assistant.interfaces.talk.loop import SentenceBuffer, SessionClock, TalkLoop, TalkOptions
from assistant.speech.answer_voice import VirtualPlayer, speakable
from assistant.speech.audio import SAMPLE_RATE, write_wav
from tests.conftest import ROOT, cough, sharing_store, silence
from tests.fake_llm import GUARD_S, Step

TURNS = [  # (question, voice, seconds of silence before it, the source that answers it)
    ("Who built the first working transistor?", "en-us", 0.5, "transistor.html"),
    ("How do honeybees tell others where food is?", "en-gb", 4.8, "honeybees.md"),
    ("What happens when a volcano erupts?", "en-us", 5.0, "volcanoes.txt"),
]
LONG_ANSWER = " ".join(["The transistor was built at Bell Labs by Bardeen and Brattain [1]."] * 12)
SAID = 18  # words of the long answer the model sends before the barge-in (then it waits)


class InputClock:
    """The loop's clock: seconds of input delivered so far.  It stands still while the loop
    works, so the loop's decisions fall at the same point of the recording on any machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def restart(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingPlayer(VirtualPlayer):
    """The silent player, keeping what it was told and when: ("play" | "stop", input time)."""

    def __init__(self, clock: InputClock) -> None:
        super().__init__(clock)
        self.events: list[tuple[str, float]] = []
        self.played = threading.Event()

    def play(self, samples: np.ndarray) -> None:
        super().play(samples)
        self.events.append(("play", self.clock()))
        self.played.set()

    def stop(self) -> None:
        super().stop()
        self.events.append(("stop", self.clock()))


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_S  # a guard: a broken loop fails instead of hanging
    while not condition():
        assert time.monotonic() < deadline, f"the loop never got to: {what}"
        time.sleep(0.01)


def delivered(path: Path, clock: InputClock,
              waits: list[tuple[float, Callable[[], bool], str]]) -> Iterator[np.ndarray]:
    """The recording in the blocks ``s2r talk --input`` reads, the clock at the end of each;
    at each of ``waits`` (input time, condition, what) the input pauses until the condition
    holds."""
    from assistant.interfaces.talk.microphone import FileInput

    pending = sorted(waits, key=lambda w: w[0])
    samples = 0
    for block in FileInput(str(path), clock, realtime=False).blocks():
        while pending and samples / SAMPLE_RATE >= pending[0][0]:
            _, condition, what = pending.pop(0)
            wait_until(condition, what)
        samples += len(block)
        clock.now = samples / SAMPLE_RATE
        yield block


@pytest.fixture(scope="module")
def conversation(speak, tmp_path_factory):
    """The recording and where each question starts and ends in it; a cough sits in the
    first spoken answer, before the second question barges in."""
    parts, spans, t = [], [], 0.0
    for i, (question, voice, pause, _) in enumerate(TURNS):
        gap = silence(pause)
        if i == 1:  # the cough: 2.6 s into this pause, while answer 1 is being spoken
            gap[int(2.6 * SAMPLE_RATE):int(2.6 * SAMPLE_RATE) + len(cough())] = cough()
        audio = speak(question, voice=voice)
        parts += [gap, audio]
        spans.append((t + pause, t + pause + len(audio) / SAMPLE_RATE))
        t = spans[-1][1]
    parts.append(silence(4.0))
    path = write_wav(tmp_path_factory.mktemp("talk") / "conversation.wav", np.concatenate(parts))
    return path, spans


@pytest.mark.slow
def test_recorded_conversation_through_the_loop(conversation, runtime, fake, tmp_path):
    from rich.console import Console

    from assistant.answer.answering import Answerer
    from assistant.index.ingest import Ingestor
    from assistant.interfaces.talk.screen import RichScreen
    from assistant.speech.answer_voice import open_speech_engine

    path, spans = conversation
    fake.script.extend([Step(text=LONG_ANSWER, hold_after=SAID),  # waits to be talked over
                        Step(text="They perform the waggle dance [1]."),
                        Step(text="Lava and ash pour out [1]."),
                        Step(text="Nothing more to add.")])
    Ingestor(runtime).ingest_paths([str(ROOT / "samples" / "docs")], progress=False)
    talking = sharing_store(runtime, llm_url=fake.url)
    finished: list[bool] = []  # per answer that ended: whether it was interrupted

    class Screen(RichScreen):
        def answer_done(self, answer, interrupted: bool) -> None:
            super().answer_done(answer, interrupted)
            finished.append(interrupted)

    clock = InputClock()
    player = RecordingPlayer(clock)
    screen = Screen(Console(file=io.StringIO(), width=200))
    log = tmp_path / "turns.jsonl"
    loop = TalkLoop(Answerer(talking), player, clock, screen, open_speech_engine(
        talking.settings), log, TalkOptions())
    # a second after each question, the input waits: for answer 1 to be generated (up to
    # the model's pause) and spoken before the cough and question 2 talk over it; for answers
    # 2 and 3 to be complete before the user speaks on
    returned = loop.run(delivered(path, clock, [
        (spans[0][1] + 1, lambda: fake.holding.is_set() and player.played.is_set(),
         "answer 1 generated up to the model's pause and playing"),
        (spans[1][1] + 1, lambda: finished.count(False) >= 1, "answer 2 complete"),
        (spans[2][1] + 1, lambda: finished.count(False) >= 2, "answer 3 complete")]))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records == [asdict(r) for r in returned]

    # three questions, three turns: the cough did not start one
    assert len(records) == 3, [r["transcript"] for r in records]
    for record, (start, end), (_, _, _, source) in zip(records, spans, TURNS, strict=True):
        assert set(record) >= {"start", "end", "transcript", "sources", "answer",
                               "interrupted", "timings"}
        # where the VAD put the speech (input time; espeak pads its clips with silence)
        assert abs(record["start"] - start) < 0.5 and abs(record["end"] - end) < 0.4
        assert record["sources"][0]["source"].endswith(source), record
        assert record["timings"]["endpoint"] > 0
        assert record["timings"]["sources"] >= record["timings"]["endpoint"]
        assert record["timings"]["retrieved"] <= record["timings"]["sources"]
        assert record["timings"]["first_audio"] >= record["timings"]["first_token"]

    # the second question barged in: answer 1 stopped (playback and generation) within
    # 300 ms of input after the interrupting speech began
    first, second, third = records
    assert first["interrupted"] and not second["interrupted"] and not third["interrupted"]
    assert 0 < first["timings"]["barge_in_stop"] <= 300
    # the cough inside answer 1 did not interrupt it: the second question did
    assert abs(first["interrupted_at"] - spans[1][0]) < 0.4, (first["interrupted_at"], spans)
    # playback: answer 1 played until the stop at the barge-in, and nothing of it after
    stopped_at = first["interrupted_at"] + first["timings"]["barge_in_stop"] / 1000
    kinds = [kind for kind, _ in player.events]
    stop = kinds.index("stop")
    assert stop > 0 and set(kinds[:stop]) == {"play"}
    assert player.events[stop][1] == pytest.approx(stopped_at, abs=1e-3)
    assert all(at > second["end"] for kind, at in player.events[stop + 1:] if kind == "play")
    # generation: the model was cut off mid-answer, and the answer kept is what it had said
    assert fake.aborted.wait(GUARD_S), "generation went on after the barge-in"
    assert first["answer"] and LONG_ANSWER.startswith(first["answer"])
    assert len(first["answer"].split()) <= SAID < len(LONG_ANSWER.split())
    assert second["answer"] == "They perform the waggle dance [1]."
    # the conversation memory reached the model: turn 2 saw turn 1's (partial) exchange
    turn2 = fake.requests[1]["body"]["messages"]
    assert [m["role"] for m in turn2] == ["system", "user", "assistant", "user"]
    shown = screen.console.file.getvalue()
    assert "you" in shown and "s2r" in shown  # the screen showed the turns


@pytest.mark.slow
def test_talk_without_an_input_device_is_a_clear_error(tmp_path):
    env = {**os.environ, "S2R_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "assistant", "talk"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no audio input device" in done.stderr
    listed = subprocess.run([sys.executable, "-m", "assistant", "talk", "--list-devices"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "input devices: none" in listed.stdout


@pytest.mark.slow
def test_echo_gate_ignores_speech_no_louder_than_the_playback(answer_runtime):
    from assistant.answer.answering import Answerer

    clock = InputClock()  # stands still: the playback is where the test puts it
    player = VirtualPlayer(clock)
    loop = TalkLoop(Answerer(answer_runtime), player, clock, screen=None,
                    options=TalkOptions(echo_gate=True, echo_margin_db=10))
    frame = np.full(480, 0.05, np.float32)
    assert loop._not_echo(frame)  # nothing playing: everything counts
    player.play(np.full(SAMPLE_RATE, 0.05, np.float32))  # the assistant speaks at 0.05 RMS
    clock.now = 0.5  # half-way through it
    assert not loop._not_echo(frame)  # its echo at the same level is ignored
    assert loop._not_echo(frame * 4)  # a user 12 dB louder still barges in
    half = TalkLoop(Answerer(answer_runtime), player, clock, screen=None,
                    options=TalkOptions(half_duplex=True))
    assert not half._not_echo(frame * 4)
    clock.now = 1.0  # it has ended: everything counts again
    assert loop._not_echo(frame) and half._not_echo(frame)


def test_answers_are_spoken_sentence_by_sentence_without_citation_marks():
    spoken = []
    buffer = SentenceBuffer(spoken.append)
    for delta in ["Bees ", "dance [1]. They", " share food [2]! And", " more"]:
        buffer.add(delta)
    assert spoken == ["Bees dance [1].", "They share food [2]!"]
    buffer.flush()
    assert spoken[-1] == "And more"
    cited: list[str] = []
    buffer = SentenceBuffer(cited.append)
    for delta in ["Smallpox", " ["]:  # the answer's first words go at their citation
        buffer.add(delta)
    assert cited == ["Smallpox"]
    for delta in ["1", "]."]:  # a cited stop ends a sentence: no abbreviation does
        buffer.add(delta)
    assert cited == ["Smallpox", "[1]."] and speakable("[1].") == ""
    buffer.add(" It was eradicated in 1980 [1")  # only the first words go early
    assert cited == ["Smallpox", "[1]."]
    buffer.flush()
    assert cited[-1] == "It was eradicated in 1980 [1"
    cited.clear()
    buffer = SentenceBuffer(cited.append)
    for delta in ["Punk rock", " [", "1", "] began", " in 1974 [", "2", "]."]:
        buffer.add(delta)
    assert [speakable(s) for s in cited] == ["Punk rock", "began in 1974."]
    assert speakable("Bees dance [1][2].") == "Bees dance."
    assert speakable("Bees dance. Source [1]") == "Bees dance."


def test_openai_speech_endpoint_engine(fake):
    from assistant.speech.answer_voice import OpenAISpeechEngine

    audio = OpenAISpeechEngine(fake.url + "/v1", voice="nova").synthesize("Hello there.")
    assert abs(len(audio) - SAMPLE_RATE // 2) < 50
    assert fake.requests[0]["body"] == {"model": "tts-1", "voice": "nova",
                                        "response_format": "wav", "input": "Hello there."}


@pytest.mark.slow
def test_talk_reads_a_recording_from_standard_input(speak, tmp_path):
    from assistant.speech.audio import wav_bytes

    env = {**os.environ, "S2R_DATA_DIR": str(tmp_path / "data")}
    cli = [sys.executable, "-m", "assistant"]
    subprocess.run([*cli, "ingest", "--no-progress", str(ROOT / "samples" / "docs")], env=env,
                   check=True, capture_output=True)
    recording = wav_bytes(np.concatenate([silence(0.3), speak(TURNS[0][0]), silence(0.5)]))
    log = tmp_path / "turns.jsonl"
    done = subprocess.run([*cli, "talk", "--input", "-", "--no-llm", "--log", str(log)],
                          env=env, input=recording, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["sources"][0]["title"] == "The transistor"
    assert "Bardeen" in record["answer"] and not record["interrupted"]


def _turns(runtime, audio: np.ndarray, speculate: bool):
    """The loop's turns over ``audio``, and the length in seconds of each clip retrieved."""
    from rich.console import Console

    from assistant.answer.answering import Answerer
    from assistant.interfaces.talk.screen import RichScreen

    clock = SessionClock()
    loop = TalkLoop(Answerer(runtime), VirtualPlayer(clock), clock,
                    RichScreen(Console(file=io.StringIO())),
                    options=TalkOptions(speculate=speculate))
    retrieved, retrieve = [], loop.answerer.retrieve

    def recorded(question, top_k=None):
        retrieved.append(round(len(question.audio) / SAMPLE_RATE, 2))
        return retrieve(question, top_k)

    loop.answerer.retrieve = recorded
    n = SAMPLE_RATE * 30 // 1000
    return loop.run(audio[i:i + n] for i in range(0, audio.size, n)), retrieved


@pytest.mark.slow
def test_a_turn_is_retrieved_before_its_endpoint(answer_runtime, speak):
    """With speculation the turn takes the retrieval started on its settled audio: the same
    transcript and sources as retrieving after the endpoint."""
    audio = np.concatenate([silence(0.5), speak("How do honeybees tell others where food is?"),
                            silence(1.5)])
    (early,), retrieved_early = _turns(answer_runtime, audio, speculate=True)
    (late,), retrieved_late = _turns(answer_runtime, audio, speculate=False)
    assert early.speculative and not late.speculative
    assert "retrieved" in early.timings and "retrieved" in late.timings
    assert retrieved_early == retrieved_late  # once each, the same audio
    assert early.error is None and "food" in early.transcript.lower()
    assert early.transcript == late.transcript and early.sources == late.sources
    assert early.sources[0]["source"].endswith("honeybees.md")


@pytest.mark.slow
def test_speech_after_a_pause_drops_the_early_retrieval(answer_runtime, speak):
    """A pause longer than the padding but shorter than the endpoint settles the first part;
    when the user goes on, the turn is the whole question, retrieved again."""
    # espeak-ng ends "How do honeybees" with 0.35 s of silence: 0.45 s of pause in all
    audio = np.concatenate([silence(0.5), speak("How do honeybees"), silence(0.1),
                            speak("tell others where food is?"), silence(1.5)])
    (turn,), retrieved = _turns(answer_runtime, audio, speculate=True)
    # the first part alone (unless dropped before it started), then the whole question,
    # whose retrieval the turn took
    assert len(retrieved) <= 2 and all(r < retrieved[-1] for r in retrieved[:-1]), retrieved
    assert turn.speculative and turn.error is None
    padding = answer_runtime.settings.tuning.vad_padding_ms / 1000  # kept after the speech's end
    assert abs(retrieved[-1] - (turn.end + padding - turn.start)) < 0.04
    assert "food" in turn.transcript.lower(), turn.transcript
    assert turn.sources[0]["source"].endswith("honeybees.md")


@pytest.mark.slow
def test_a_barge_in_stops_a_model_still_reading_the_prompt(answer_runtime, speak, fake,
                                                           tmp_path):
    """The user speaks again before the model's first token: its request is closed then (a
    blocking client would stay in its read until that token, the model's single slot busy),
    and the new question is answered."""
    from rich.console import Console

    from assistant.answer.answering import Answerer
    from assistant.interfaces.talk.screen import RichScreen

    first, second = speak(TURNS[0][0]), speak(TURNS[1][0], voice="en-gb")
    audio = np.concatenate([silence(0.5), first, silence(1.5), second, silence(2.0)])
    path = write_wav(tmp_path / "impatient.wav", audio)
    asks_again = 0.5 + len(first) / SAMPLE_RATE + 1.5
    never = threading.Event()  # the first answer's model never gets past its prompt
    fake.script.extend([Step(until=never), Step(text="They perform the waggle dance [1].")])
    clock = InputClock()
    loop = TalkLoop(Answerer(sharing_store(answer_runtime, llm_url=fake.url)),
                    RecordingPlayer(clock), clock, RichScreen(Console(file=io.StringIO())))
    records = loop.run(delivered(path, clock, [
        (asks_again, fake.holding.is_set, "the model reading the first question's prompt")]))

    assert fake.left.wait(GUARD_S), "the model went on reading after the barge-in"
    interrupted, answered = records
    assert interrupted.interrupted and interrupted.answer == "" and interrupted.error is None
    assert "first_token" not in interrupted.timings
    assert answered.answer == "They perform the waggle dance [1]."
    assert answered.sources[0]["source"].endswith("honeybees.md")


def _trimmed(audio: np.ndarray) -> np.ndarray:
    """A clip without espeak-ng's leading and trailing silence, so pauses are exact."""
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    return audio[loud[0]:loud[-1] + 1]


@pytest.mark.slow
def test_speech_after_a_pause_drops_the_prompt_read_early(answer_runtime, speak, fake, tmp_path):
    """The model starts reading a turn's prompt during the endpoint's silence; when the user
    goes on after a pause that is not an endpoint, that request is closed, the whole
    question's prompt is read early instead, and the turn sends the very same messages."""
    from rich.console import Console

    from assistant.answer.answering import Answerer
    from assistant.interfaces.talk.screen import RichScreen

    first = _trimmed(speak("Who built the first working transistor"))
    rest = _trimmed(speak("and what did it replace?"))
    pause = 0.45  # beyond the 300 ms that settle the first part, short of the 600 ms endpoint
    audio = np.concatenate([silence(0.5), first, silence(pause), rest, silence(1.5)])
    path = write_wav(tmp_path / "paused.wav", audio)
    resumes = 0.5 + len(first) / SAMPLE_RATE + pause
    ends = resumes + len(rest) / SAMPLE_RATE
    never = threading.Event()  # the first part's early read is held until its client leaves
    answer = "Bardeen and Brattain built it; it replaced vacuum tubes [1]."
    fake.script.extend([Step(until=never), Step(text="-"), Step(text=answer)])
    clock = InputClock()
    loop = TalkLoop(Answerer(sharing_store(answer_runtime, llm_url=fake.url)),
                    RecordingPlayer(clock), clock, RichScreen(Console(file=io.StringIO())),
                    options=TalkOptions(read_ahead=True))  # an endpoint: only when asked to
    (turn,) = loop.run(delivered(path, clock, [
        (resumes, fake.holding.is_set, "the model reading the first part's prompt"),
        (ends + 0.45, lambda: len(fake.requests) >= 2, "the whole question's prompt read early")]))

    assert fake.left.wait(GUARD_S), "the first part's early read went on after speech resumed"
    # (a fourth request is the read-ahead of the conversation after the answer)
    early_part, early_whole, answered = (r["body"] for r in fake.requests[:3])
    asked = [body["messages"][-1]["content"] for body in (early_part, early_whole)]
    assert "transistor" in asked[0] and "replace" not in asked[0], asked[0]
    assert "replace" in asked[1]
    assert early_part["max_tokens"] == early_whole["max_tokens"] == 1
    assert answered["max_tokens"] > 1
    assert answered["messages"] == early_whole["messages"]  # what was read is what is asked
    assert turn.speculative and turn.error is None and turn.answer == answer
