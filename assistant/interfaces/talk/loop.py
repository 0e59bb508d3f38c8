"""``s2r talk``: the voice loop.  Listen, endpoint the turn, retrieve, answer, speak; stop at
once when the user talks over the answer.

Threads: the caller's thread reads audio and runs the VAD (cheap, never blocks); each turn is
answered on a worker thread (S2R retrieval, then the streamed model answer, sentence by
sentence into speech); the player plays on its own.  Everything is timed on one clock that
starts with the input, so input seconds and event times compare directly.

Turn-taking:

- a turn's retrieval starts before its end: once ``vad_padding_ms`` of silence has followed
  the speech, the audio the turn will hold is final unless the user speaks again, so it is
  retrieved on a thread of its own while the endpoint waits out the rest of its silence
  (``Speculation``; ``talk_speculate``).  If the user goes on, that result is dropped.  The
  prompt is built when the turn starts, with the conversation as it is then, and retrievals
  run one at a time;
- the local model starts early too: once that retrieval is done, and no answer is being
  written (so the conversation is the one the turn will have), the model reads the prompt
  the turn will send, and the turn's request finds it in llama.cpp's cache.  If the user goes
  on speaking, that request is closed (``read_early``);
- a turn ends after ``vad_end_silence_ms`` of silence (or at ``talk_max_turn_s``); bursts with
  less than ``vad_min_speech_ms`` of voiced audio, or with no pitch (coughs, knocks, clicks:
  WebRTC VAD calls some of them speech), never become turns;
- barge-in: while a turn is being answered or spoken, ``barge_in_ms`` of voiced, pitched
  audio from the user stops playback and generation, and that speech becomes the next turn.
  Shorter sounds (backchannels, a cough) do not interrupt;
- echo: with a real speaker and no echo cancellation the microphone hears the assistant.  While
  it speaks, a voiced frame counts only if it is ``echo_margin_db`` louder than what is playing
  at that instant (the playback is much quieter at the microphone than a user talking into it).
  ``--half-duplex`` ignores the microphone entirely while the assistant speaks.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.answer.answering import Answer, Answerer, Prepared, Question, QuestionError
from assistant.answer.chat_client import AbortableChatClient, ChatClient, LLMError
from assistant.retrieval.retriever import SearchResult
from assistant.retrieval.store.base import Hit
from assistant.settings import Settings
from assistant.speech.answer_voice import Player, SpeechEngine, rms, speakable
from assistant.speech.audio import SAMPLE_RATE
from assistant.speech.vad import (
    PERIODIC,
    SpeechSegment,
    SpeechSegmenter,
    VadConfig,
    periodic_ms,
    periodicity,
)
from assistant.text import split_sentences

log = logging.getLogger(__name__)
DRAIN_TIMEOUT_S = 120.0
# Voiced (pitched) time a sound needs to be a turn or a barge-in: WebRTC VAD alone takes a
# cough or a knock for speech, but those carry no pitch.
MIN_PITCHED_MS = 90
# A sentence that ends with a citation and a stop ("Smallpox [1]."), closing quotes allowed.
CITED_END = re.compile(r"\[\d{1,2}\][.!?…][\"'”’)]*\s*$")
# Words followed by the opening of a citation ("Smallpox ["): the words are a phrase.
BEFORE_CITATION = re.compile(r"^(.*\w.*?)\s*\[\d{0,2}$", re.DOTALL)


class Screen(Protocol):
    """What the user sees; ``assistant.interfaces.talk.screen`` draws it with rich."""

    def heard(self, transcript: str) -> None: ...

    def sources(self, hits: list[Hit]) -> None: ...

    def delta(self, text: str) -> None: ...

    def answer_done(self, answer: Answer | None, interrupted: bool) -> None: ...

    def note(self, message: str) -> None: ...


class SessionClock:
    """Seconds since the loop started listening: input time and event time on one axis."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def restart(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self._t0


@dataclass
class TurnRecord:
    """One line of ``--log``: a detected turn and what became of it."""

    start: float  # seconds into the input
    end: float
    transcript: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ""
    interrupted: bool = False
    interrupted_at: float | None = None  # seconds into the input: the interrupting speech began
    # ms from the end of speech: retrieved, endpoint, sources, first_token, first_audio; for an
    # interrupted turn also barge_in_stop (ms from the interrupting speech to silence)
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    speculative: bool = False  # its retrieval ran during the endpoint's silence


class Speculation:
    """A retrieval started on a settled segment (``SpeechSegmenter.settled``) during the
    endpoint's trailing silence; the turn that closes with the same audio takes its result.
    ``then``, when given, runs next on the same thread with the result (the early prompt
    reading); a reader it ``attach``es is closed by ``drop``."""

    def __init__(self, segment: SpeechSegment,
                 retrieve: Callable[[SpeechSegment], SearchResult], one_at_a_time: threading.Lock,
                 clock: Callable[[], float],
                 then: Callable[[Speculation, SearchResult], None] | None = None) -> None:
        self.segment = segment
        self.retrieved_at: float | None = None  # on ``clock``: the head start it gave
        self.dropped = threading.Event()  # the user spoke again: not needed any more
        self._retrieve = retrieve
        self._lock = one_at_a_time
        self._clock = clock
        self._then = then
        self._retrieved: SearchResult | None = None
        self._error: Exception | None = None
        self._done = threading.Event()  # the retrieval is over, or was skipped
        self._reader: AbortableChatClient | None = None
        self._reader_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True, name="s2r-speculate")
        self.thread.start()

    def _run(self) -> None:
        try:
            with self._lock:
                if self.dropped.is_set():  # dropped while an earlier retrieval ran
                    return
                try:
                    self._retrieved = self._retrieve(self.segment)
                    self.retrieved_at = self._clock()
                except Exception as exc:  # raised again in the turn that takes the result
                    self._error = exc
        finally:
            self._done.set()
        if self._then is not None and self._retrieved is not None and not self.dropped.is_set():
            self._then(self, self._retrieved)

    def attach(self, reader: AbortableChatClient) -> bool:
        """Let ``drop`` close ``reader``; False (and ``reader`` closed) if already dropped."""
        with self._reader_lock:
            if self.dropped.is_set():
                reader.close()
                return False
            self._reader = reader
            return True

    def drop(self) -> None:
        """Not needed any more: a retrieval not yet started is skipped, one under way
        finishes unused, and a prompt the model is reading early is abandoned."""
        with self._reader_lock:
            self.dropped.set()
            if self._reader is not None:
                self._reader.close()

    def fits(self, segment: SpeechSegment) -> bool:
        """Whether ``segment`` is the audio this retrieval heard (no speech came since)."""
        return (segment.start, segment.speech_end, len(segment.audio)) == (
            self.segment.start, self.segment.speech_end, len(self.segment.audio))

    def result(self) -> SearchResult:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._retrieved is not None
        return self._retrieved


class Turn:
    def __init__(self, segment: SpeechSegment, endpoint: float) -> None:
        self.segment = segment
        self.record = TurnRecord(round(segment.start, 3), round(segment.speech_end, 3))
        self.record.timings["endpoint"] = round((endpoint - segment.speech_end) * 1e3, 1)
        self.cancel = threading.Event()
        self.lock = threading.Lock()  # orders "play this sentence" against "stop everything"
        self.chat: AbortableChatClient | None = None
        self.sources: list[Hit] = []
        self.worker: threading.Thread | None = None
        self.speculation: Speculation | None = None  # its retrieval, started before the endpoint

    def stamp(self, name: str, now: float) -> None:
        self.record.timings.setdefault(name, round((now - self.segment.speech_end) * 1e3, 1))

    @property
    def answering(self) -> bool:
        return self.worker is not None and self.worker.is_alive()


@dataclass(frozen=True)
class TalkOptions:
    barge_in_ms: int = 240  # voiced user speech that interrupts the answer
    echo_gate: bool = False  # on for a real speaker: ignore speech no louder than the playback
    echo_margin_db: float = 10.0
    half_duplex: bool = False  # ignore the microphone entirely while the assistant speaks
    max_turn_s: float = 30.0
    speculate: bool = True  # retrieve once the audio is settled, before the endpoint
    # the model reads the conversation before the next turn: None for the local model only,
    # where it costs CPU time alone; True for an endpoint too, where each is a billed request
    read_ahead: bool | None = None
    read_early: bool = True  # and, where it reads ahead, the turn's prompt before its endpoint

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> TalkOptions:
        """The tuned turn-taking of ``settings``, with what the caller's setup decides."""
        tuning = settings.tuning
        return cls(barge_in_ms=tuning.barge_in_ms, echo_margin_db=tuning.echo_margin_db,
                   max_turn_s=tuning.talk_max_turn_s, speculate=tuning.talk_speculate,
                   **changes)


class TalkLoop:
    def __init__(self, answerer: Answerer, player: Player, clock: SessionClock,
                 screen: Screen, engine: SpeechEngine | None = None,
                 log_path: Path | None = None, options: TalkOptions | None = None) -> None:
        self.answerer = answerer
        self.player = player
        self.clock = clock
        self.screen = screen
        self.engine = engine
        self.options = options or TalkOptions()
        self.records: list[TurnRecord] = []
        self._log = log_path.open("a", encoding="utf-8") if log_path else None
        self._turns: list[Turn] = []  # turns not yet logged, oldest first
        self._last: Turn | None = None  # the latest turn (for barge-in and /sources)
        self._quit = threading.Event()
        self._pitched_ms = 0
        self._speculation: Speculation | None = None
        self._reader: threading.Thread | None = None  # the read-ahead after the last answer
        self._retrieval = threading.Lock()  # one retrieval at a time (turns and speculations)
        settings = answerer.runtime.settings
        vad = VadConfig.from_settings(settings)
        self.segmenter = SpeechSegmenter(
            VadConfig(**{**asdict(vad), "max_segment_s": self.options.max_turn_s}),
            voice_gate=self._not_echo)

    # --- the caller's thread -------------------------------------------------------------
    def run(self, blocks: Iterable[np.ndarray]) -> list[TurnRecord]:
        """Process input until it ends (or ``quit``); returns every turn's record."""
        self.clock.restart()
        try:
            for block in blocks:
                closed = self.segmenter.push(block)
                self._count_pitch(block)
                self._step(closed)
                if self._quit.is_set():
                    break
            self._step(self.segmenter.flush())
            self._drain()
        finally:
            self._cancel_all()
            self._flush_log(everything=True)
            if self._log:
                self._log.close()
        return self.records

    def quit(self) -> None:
        self._quit.set()

    def reset(self) -> None:
        self.answerer.conversation.clear()

    def last_sources(self) -> list[Hit]:
        return self._last.sources if self._last is not None else []

    def _count_pitch(self, block: np.ndarray) -> None:
        """Pitched time of the speech now open (for the barge-in decision)."""
        if not self.segmenter.in_speech:
            self._pitched_ms = 0
        elif periodicity(block) > PERIODIC:
            self._pitched_ms += round(len(block) * 1000 / SAMPLE_RATE)

    def _step(self, closed: list[SpeechSegment]) -> None:
        now = self.clock()
        active = self._active()
        if (active is not None and not active.cancel.is_set() and self.segmenter.in_speech
                and self.segmenter.voiced_ms >= self.options.barge_in_ms
                and self._pitched_ms >= MIN_PITCHED_MS):
            self._barge_in(active, self.segmenter.onset_s or now)
        for segment in closed:
            if periodic_ms(segment.audio) >= MIN_PITCHED_MS:
                self._start_turn(segment, now)
        self._speculate()
        self._flush_log()

    def _speculate(self) -> None:
        """Start retrieving the open segment as soon as its audio is settled.  One for
        earlier audio (the user spoke again) is dropped: skipped if it has not started yet,
        else finished unused."""
        settled = self.segmenter.settled_at if self.options.speculate else None
        current = self._speculation
        if settled is None or (current is not None and settled == (
                current.segment.start, current.segment.speech_end)):
            return
        if current is not None:
            current.drop()
        segment = self.segmenter.settled()
        then = self._read_early if self.options.read_early and self._reads_ahead() else None
        self._speculation = Speculation(segment, self._retrieve_now, self._retrieval,
                                        self.clock, then) if segment else None

    def _retrieve(self, segment: SpeechSegment) -> SearchResult:
        with self._retrieval:
            return self._retrieve_now(segment)

    def _retrieve_now(self, segment: SpeechSegment) -> SearchResult:
        return self.answerer.retrieve(Question(audio=segment.audio))

    def _active(self) -> Turn | None:
        """The latest turn while it is still being answered or spoken."""
        last = self._last
        return last if last is not None and (last.answering or self.player.busy()) else None

    def _not_echo(self, frame: np.ndarray) -> bool:
        """Voice gate: while the assistant speaks, only speech well above its own level."""
        if not (self.options.echo_gate or self.options.half_duplex):
            return True
        playing = self.player.level()
        if playing <= 0.0:
            return True
        if self.options.half_duplex:
            return False
        return rms(frame) >= playing * 10 ** (self.options.echo_margin_db / 20)

    def _barge_in(self, turn: Turn, onset: float) -> None:
        with turn.lock:
            turn.cancel.set()
            self.player.stop()
        stopped = self.clock()
        if turn.chat is not None:
            turn.chat.close()  # aborts a request still waiting for its first token
        if turn.speculation is not None:
            turn.speculation.drop()  # and the prompt it may still be reading early
        turn.record.interrupted = True
        turn.record.interrupted_at = round(onset, 3)
        turn.record.timings["barge_in_stop"] = round((stopped - onset) * 1e3, 1)
        self.screen.note(f"[interrupted: stopped {turn.record.timings['barge_in_stop']:.0f} ms "
                         "after you started speaking]")

    def _start_turn(self, segment: SpeechSegment, now: float) -> None:
        previous = self._active()
        if previous is not None and not previous.cancel.is_set():
            self._barge_in(previous, segment.start)  # a turn the barge-in check missed
        turn = Turn(segment, now)
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation.fits(segment):
            turn.speculation = speculation
        elif speculation is not None:
            speculation.drop()
        turn.worker = threading.Thread(target=self._answer, args=(turn,), daemon=True,
                                       name="s2r-turn")
        self._turns.append(turn)
        self._last = turn
        turn.worker.start()

    def _flush_log(self, everything: bool = False) -> None:
        """Write the records of turns that are over (answered, and spoken unless a later turn
        exists), oldest first."""
        while self._turns:
            turn = self._turns[0]
            over = not turn.answering and (turn is not self._last or not self.player.busy())
            if not (over or everything):
                break
            self._turns.pop(0)
            self.records.append(turn.record)
            if self._log:
                self._log.write(json.dumps(asdict(turn.record), ensure_ascii=False) + "\n")
                self._log.flush()

    def _drain(self) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self._active() is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def _cancel_all(self) -> None:
        for turn in self._turns:
            if turn.answering:
                turn.cancel.set()
                if turn.chat is not None:
                    turn.chat.close()
        self.player.stop()
        for turn in self._turns:
            if turn.worker is not None:
                turn.worker.join(10)
        speculations = [t.speculation for t in self._turns] + [self._speculation]
        for speculation in filter(None, speculations):
            speculation.drop()
            speculation.thread.join(10)
        if self._reader is not None:
            self._reader.join(10)

    # --- worker thread, one per turn ------------------------------------------------------
    def _answer(self, turn: Turn) -> None:
        started = time.perf_counter()
        try:
            question = Question(audio=turn.segment.audio)
            if turn.speculation is not None:
                retrieved = turn.speculation.result()
                turn.record.speculative = True
                turn.stamp("retrieved", turn.speculation.retrieved_at or self.clock())
            else:
                retrieved = self._retrieve(turn.segment)
                turn.stamp("retrieved", self.clock())
            prepared = self.answerer.prepare(question, retrieved=retrieved)
            self._show_sources(turn, prepared)
            if turn.cancel.is_set():
                return
            config = self.answerer.runtime.llm.config
            # a barge-in closes it from the caller's thread: abortable even while the model
            # is still reading the prompt, so it stops then, not at its first token
            turn.chat = AbortableChatClient(config) if config is not None else None
            sentences = SentenceBuffer(lambda s: self._speak(turn, s))
            answer = self.answerer.respond(
                prepared, started, turn.chat,
                on_delta=lambda d: self._on_delta(turn, sentences, d),
                cancelled=turn.cancel.is_set)
            if not turn.cancel.is_set():
                sentences.flush()
            turn.record.answer = answer.text
            turn.record.error = answer.error
            self.screen.answer_done(answer, turn.cancel.is_set())
            if answer.mode == "llm" and not turn.cancel.is_set():
                self._start_read_ahead()
        except QuestionError as exc:
            turn.record.error = str(exc)
            self.screen.note(f"(nothing recognised: {exc})")
        except Exception as exc:  # a failed turn must not end the conversation
            if turn.cancel.is_set():
                return  # the barge-in closed the model connection under the request
            log.exception("turn failed")
            turn.record.error = f"{type(exc).__name__}: {exc}"
            self.screen.note(f"(this turn failed: {turn.record.error})")
        finally:
            if turn.chat is not None:
                turn.chat.close()

    def _reads_ahead(self) -> bool:
        llm = self.answerer.runtime.llm
        if llm.config is None or self.options.read_ahead is False:
            return False
        return llm.server is not None or self.options.read_ahead is True

    def _start_read_ahead(self) -> None:
        """Once an answer is complete, the local model reads the conversation so far on a
        thread of its own (not the turn's, which would count as still answering), while the
        answer plays and the user speaks: the next turn then reads only its own sources and
        question."""
        if not self._reads_ahead():
            return
        reader = ChatClient(self.answerer.runtime.llm.config)

        def read() -> None:
            try:
                self.answerer.read_ahead(reader)
            except LLMError as exc:  # the next turn reads the prefix itself
                log.info("read-ahead failed: %s", exc)
            finally:
                reader.close()

        self._reader = threading.Thread(target=read, daemon=True, name="s2r-read-ahead")
        self._reader.start()

    def _read_early(self, speculation: Speculation, retrieved: SearchResult) -> None:
        """On the speculation's thread, once its retrieval is done: the model reads the
        prompt the turn will send, built the same way from the same conversation, so the
        turn's request (queued behind this one in the server's one slot) finds all of it in
        the cache.  Not while an answer is being written: its exchange will join the
        conversation, and the turn's prompt with it."""
        last = self._last
        if last is not None and last.answering:
            return
        prepared = self.answerer.prepare(Question(audio=speculation.segment.audio),
                                         retrieved=retrieved)
        if prepared.abstain:
            return
        reader = AbortableChatClient(self.answerer.runtime.llm.config)
        if not speculation.attach(reader):
            return
        try:
            self.answerer.read_prompt(reader, prepared)
        except LLMError as exc:  # closed by drop(), or failed: the turn reads it itself
            if not speculation.dropped.is_set():
                log.info("reading the prompt early failed: %s", exc)
        finally:
            reader.close()

    def _show_sources(self, turn: Turn, prepared: Prepared) -> None:
        turn.stamp("sources", self.clock())
        turn.sources = prepared.sources
        turn.record.transcript = prepared.question
        turn.record.sources = [{"id": h.id, "title": h.payload.get("title"),
                                "source": h.payload.get("source")} for h in prepared.sources]
        self.screen.heard(prepared.question)
        self.screen.sources(prepared.sources)

    def _on_delta(self, turn: Turn, sentences: SentenceBuffer, delta: str) -> None:
        if turn.cancel.is_set():
            return
        turn.stamp("first_token", self.clock())
        self.screen.delta(delta)
        sentences.add(delta)

    def _speak(self, turn: Turn, sentence: str) -> None:
        text = speakable(sentence)
        if self.engine is None or not text or turn.cancel.is_set():
            return
        try:
            audio = self.engine.synthesize(text)
        except Exception as exc:  # speech is optional: keep answering on screen
            self.screen.note(f"(speech output failed: {exc})")
            self.engine = None
            return
        with turn.lock:
            if turn.cancel.is_set():
                return
            self.player.play(audio)
            turn.stamp("first_audio", self.clock())


class SentenceBuffer:
    """Collects streamed text and hands over each complete sentence, so speech can start
    before the answer is finished."""

    def __init__(self, on_sentence: Callable[[str], None]) -> None:
        self.on_sentence = on_sentence
        self.text = ""
        self.handed = False  # something has gone to the voice

    def add(self, delta: str) -> None:
        """A sentence is complete once the next one has begun: its first letter tells "Dr."
        from an ending (``split_sentences``).  One that ends with a citation ("… [1].") is
        complete at its stop, as no abbreviation ends so: the model's next token (often the
        end of the answer) is not waited for.  The answer's first words go at the opening of
        their citation ("Smallpox ["), as the mark itself is not spoken: only the first,
        since later ones wait for the voice anyway."""
        self.text += delta
        *done, rest = split_sentences(self.text) or [""]
        if done:
            trailing = self.text[len(self.text.rstrip()):]
            self.text = rest + trailing
        if CITED_END.search(rest):
            done.append(rest)
            self.text = ""
        elif not self.handed and not done and (phrase := BEFORE_CITATION.match(rest)):
            done.append(phrase.group(1))
            self.text = rest[len(phrase.group(1)):]
        for sentence in done:
            self.handed = True
            self.on_sentence(sentence)

    def flush(self) -> None:
        if self.text.strip():
            self.on_sentence(self.text.strip())
        self.text = ""
