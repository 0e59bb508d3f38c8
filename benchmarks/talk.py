"""Voice-loop benchmark: a long spoken conversation played through ``s2r talk``'s loop.

Spoken questions of a benchmark directory (``s2r bench build``) are joined into one recording,
each followed by a pause, and played through the loop at real-time pace with the real local
model and spoken answers (the default speech-out engine, timed on the silent player).  For
every detected turn the loop logs, in ms from the end of speech: the endpoint decision, sources
shown, first answer token and first audio out.  Prints p50/p95 per stage, and the sources'
latency after the endpoint decision (the goal: within 300 ms), as a Markdown table; writes JSON
(``--out``).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import spoken_turns
from rich.console import Console

from assistant.answer.answering import Answerer
from assistant.interfaces.talk.loop import SessionClock, TalkLoop, TalkOptions
from assistant.interfaces.talk.microphone import FileInput
from assistant.interfaces.talk.screen import RichScreen
from assistant.speech.answer_voice import VirtualPlayer, open_speech_engine
from assistant.speech.audio import SAMPLE_RATE, decode_audio, write_wav

STAGES = ("retrieved", "endpoint", "sources", "first_token", "first_audio")


def conversation(clips: list[np.ndarray], pause_s: float) -> tuple[np.ndarray, list[float]]:
    """The clips joined with pauses; returns the audio and where each question starts."""
    parts, starts, t = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)], [], 0.5
    for clip in clips:
        starts.append(t)
        parts += [clip, np.zeros(int(pause_s * SAMPLE_RATE), np.float32)]
        t += len(clip) / SAMPLE_RATE + pause_s
    return np.concatenate(parts), starts


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench, runtime, base = spoken_turns.open_bench(args)
    queries = random.Random(args.seed).sample(bench.queries, min(args.turns, len(bench.queries)))
    audio, starts = conversation([decode_audio(q.audio) for q in queries], args.pause)
    runtime.warm_up()
    model = runtime.llm.description
    print(f"model: {model}; {len(audio) / SAMPLE_RATE:.0f} s of "
          "conversation, played in real time", file=sys.stderr)
    wav = Path(args.work) / "talk-bench.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    write_wav(wav, audio)
    clock = SessionClock()
    settings = runtime.settings
    loop = TalkLoop(Answerer(runtime), VirtualPlayer(clock), clock,
                    RichScreen(Console(file=io.StringIO())), open_speech_engine(runtime.settings),
                    options=TalkOptions(barge_in_ms=settings.tuning.barge_in_ms,
                                        max_turn_s=settings.tuning.talk_max_turn_s,
                                        speculate=settings.tuning.talk_speculate,
                                        read_ahead=False if args.no_read_ahead else None,
                                        read_early=not args.no_read_early))
    records = loop.run(FileInput(str(wav), clock).blocks())
    runtime.close()
    base.close()
    rows = [r.__dict__ for r in records]
    stages = {}
    for stage in (*STAGES, "sources_after_endpoint"):
        if stage == "sources_after_endpoint":
            values = [r["timings"]["sources"] - r["timings"]["endpoint"] for r in rows
                      if "sources" in r["timings"]]
        else:
            values = [r["timings"][stage] for r in rows if stage in r["timings"]]
        stages[stage] = spoken_turns.percentiles(values)
    return {"benchmark": str(bench.root), "questions": len(queries), "turns": len(rows),
            "interrupted": sum(r["interrupted"] for r in rows), "pause_s": args.pause,
            "speculate": settings.tuning.talk_speculate, "read_ahead": not args.no_read_ahead,
            "read_early": not args.no_read_early,
            "speculative": sum(r["speculative"] for r in rows),
            "model": model, "temperature": settings.tuning.llm_temperature,
            **spoken_turns.provenance(),
            "question_starts_s": [round(s, 2) for s in starts], "stages_ms": stages,
            "turns_log": rows}


def markdown(result: dict[str, Any]) -> str:
    s = result["stages_ms"]
    lines = [f"{result['questions']} spoken questions from `{result['benchmark']}` as one "
             f"conversation ({result['pause_s']:g} s pauses), {result['turns']} turns detected, "
             f"{result['interrupted']} interrupted, {result['speculative']} retrieved before "
             f"the endpoint (`Tuning.talk_speculate={str(result['speculate']).lower()}`); "
             f"{result['machine']}", "",
             "| ms from end of speech | p50 | p95 | turns |", "|---|---|---|---|"]
    names = {"retrieved": "sources retrieved (early when speculative)",
             "endpoint": "endpoint decision", "sources": "sources shown",
             "first_token": "first answer token", "first_audio": "first audio out",
             "sources_after_endpoint": "sources shown − endpoint (goal ≤ 300)"}
    for key, name in names.items():
        lines.append(f"| {name} | {s[key]['p50']:.0f} | {s[key]['p95']:.0f} | {s[key]['n']} |")
    return "\n".join(lines)


def main() -> None:
    parser = spoken_turns.parser(__doc__)
    parser.add_argument("--turns", type=int, default=20, help="spoken questions (default 20)")
    parser.add_argument("--pause", type=float, default=12.0,
                        help="seconds of silence after each question (default 12)")
    parser.add_argument("--work", default="bench-data/talk", help="where the wav is written")
    parser.add_argument("--no-read-ahead", action="store_true",
                        help="the model does not read the conversation before the next turn")
    parser.add_argument("--no-read-early", action="store_true",
                        help="the model does not read a turn's prompt during its endpoint's "
                             "silence")
    args = parser.parse_args()
    spoken_turns.report(run(args), markdown, args.out)


if __name__ == "__main__":
    main()
