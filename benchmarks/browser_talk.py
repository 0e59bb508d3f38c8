"""Voice-page latency benchmark: one spoken conversation through ``s2r talk --input`` and
through the voice page in headless Chromium against ``s2r serve`` on loopback, side by side.

Spoken questions of a benchmark directory (``s2r bench build``) are joined into one recording
(``talk.conversation``), each followed by a pause shorter than its spoken answer, so every
question after the first talks over the previous answer.  The model is a scripted
OpenAI-compatible server (tests/fake_llm.py) that streams the same fixed answer at once to
both systems, so the model's speed is not what is compared; retrieval, turn detection and
speech synthesis are the real ones, configured alike (``S2R_*`` variables) in both processes.

Per turn, in ms:

- ``s2r talk``: its ``--log`` timings from the end of speech (``endpoint``, ``sources``,
  ``first_token``, ``first_audio``) and, for an interrupted answer, ``barge_in_stop`` from
  the onset of the interrupting speech to the player's stop;
- the page (``window.s2rTimeline``, see page.html): the same quantities on the page's clock.
  The page logs when it captured each 40 ms frame it sent, which maps the server's audio
  timeline (seconds of frames received) onto ``performance.now()``: sample ``s`` was in the
  page's hands at ``offset + s``, where ``offset`` is the least, over all frames, of a frame's
  capture time less the audio up to its end (the least delayed frame).  The end of speech is
  the server's ``speech_stopped.speech_end``, the onset of an interruption its
  ``speech_started.at``: the same turn detection ``s2r talk`` times itself from.  Sources
  count as shown once the page has built them, the first audio as started when the page's
  AudioContext is scheduled to start it, playback as stopped when the page stops its sources
  (both as ``s2r talk``'s silent player counts them: no output device latency).

Prints a Markdown table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the page's harness

import spoken_turns
from talk import conversation

from assistant.settings import Settings
from assistant.speech.answer_voice import piper_installed
from assistant.speech.audio import SAMPLE_RATE, decode_audio, write_wav
from tests.browser_harness import Browser, ServeProcess
from tests.fake_llm import FakeLLM, Step
from tests.web_helpers import FRAME_SAMPLES, KEY, TalkClient

# Spoken for longer than --pause, so each answer is still playing when the next question
# comes; its first sentence is short, as a model's often is.
ANSWER = ("Here is what the sources say [1]. The first passage answers the question directly, "
          "and it gives the main facts with the place and the time they come from [1]. The "
          "second passage adds more detail about the same subject and explains why it "
          "mattered then [2]. The third one is related, but it answers a different question "
          "[3].")
FRAME_MS = FRAME_SAMPLES * 1000 / SAMPLE_RATE  # what the page sends up at a time
STAGES = {  # a row of the table: its timing, in s2r talk's log and in page_turns
    "end of speech → endpoint (speech_stopped)": "endpoint",
    "end of speech → sources shown": "sources",
    "end of speech → first answer token": "first_token",
    "end of speech → first answer audio": "first_audio",
    "barge-in onset → playback stopped": "barge_in_stop",
}


def talk_turns(wav: Path, env: dict[str, str], work: Path) -> list[dict[str, Any]]:
    """``s2r talk --input`` on the recording with spoken answers (timed on its silent
    player); its ``--log`` records."""
    log = work / "talk-turns.jsonl"
    log.unlink(missing_ok=True)
    with (work / "talk-output.txt").open("w") as output:
        subprocess.run([sys.executable, "-m", "assistant", "talk", "--input", str(wav),
                        "--speak", "--log", str(log)], env={**os.environ, **env},
                       stdout=output, stderr=subprocess.STDOUT, check=True)
    return [json.loads(line) for line in log.read_text().splitlines()]


def page_timeline(wav: Path, seconds: float, env: dict[str, str], work: Path
                  ) -> list[dict[str, Any]]:
    """The recording as the page's microphone against ``s2r serve``; the page's timeline
    once the recording is over and its last turn answered."""
    with ServeProcess(env, work / "serve-output.txt") as server:
        with TalkClient(server.url) as warm:  # open the speech engine, as s2r talk does first
            assert warm.start(KEY, speak=True)["type"] == "ready"
        with Browser(wav, work / "chromium-profile", timeline=True) as browser:
            browser.open(f"{server.url}/?key={KEY}&auto=1")
            frames = int(seconds * 1000 / FRAME_MS) - 1
            browser.wait_for(  # the whole recording sent
                f'window.s2rTimeline.filter((m) => m.kind === "frame").length >= {frames}',
                bool, "the whole recording sent", timeout_s=seconds + 120)
            browser.wait_for_page(lambda p: bool(p["turns"]) and p["turns"][-1]["done"],
                                  "the last turn answered", timeout_s=120)
            time.sleep(1.0)  # the last answer's audio events
            return browser.timeline()


def page_turns(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each turn the page showed, with its timings (ms, as ``s2r talk``'s) off the page's
    clock."""
    if any(m["kind"] == "dropped" for m in timeline):
        raise RuntimeError("the page dropped frames before its session was ready; the "
                           "mapping of audio to page time needs them all")
    frames = [m["t"] for m in timeline if m["kind"] == "frame"]
    offset = min(t - FRAME_MS * (k + 1) for k, t in enumerate(frames))

    def page_ms(seconds: float) -> float:  # page time of a second of the server's audio
        return offset + 1000 * seconds

    turns: list[dict[str, Any]] = []  # the marks of each turn
    unclaimed: dict[str, Any] | None = None  # a speech_stopped no turn has taken yet
    onset: float | None = None  # of the latest speech
    last_stop: dict[str, Any] | None = None  # the page's latest "stopped" mark
    for mark in timeline:
        kind = mark["kind"]
        if kind == "speech_started":
            onset = mark["at"]
        elif kind == "speech_stopped":
            if turns and turns[-1]["stopped"] is None:  # its transcript came first
                turns[-1]["stopped"] = mark
            else:
                unclaimed = mark
        elif kind == "transcript":
            turns.append({"stopped": unclaimed})
            unclaimed = None
        elif kind == "sources" and turns:
            turns[-1].setdefault("sources", mark["t"])
        elif kind == "delta" and turns:
            turns[-1].setdefault("first_token", mark["t"])
        elif kind == "play" and turns:
            turns[-1].setdefault("first_audio", mark["starts"])
        elif kind == "stopped":
            last_stop = mark
        elif kind == "interrupted" and turns and last_stop is not None and onset is not None:
            turns[-1]["barge_in"] = (page_ms(onset), last_stop)
    rows = []
    for turn in turns:
        stopped = turn["stopped"]
        end = page_ms(stopped["speech_end"])
        timings = {"endpoint": stopped["t"] - end}
        timings.update({k: turn[k] - end for k in ("sources", "first_token", "first_audio")
                        if k in turn})
        row: dict[str, Any] = {"speech_end_s": stopped["speech_end"], "interrupted": False}
        if "barge_in" in turn:
            started, stop = turn["barge_in"]
            timings["barge_in_stop"] = stop["t"] - started
            row.update(interrupted=True, stopped_chunks=stop["chunks"])
        rows.append({**row, "timings": {k: round(v, 1) for k, v in timings.items()}})
    return rows


def compare(talk: list[dict[str, Any]], page: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 of each stage in both systems, and the page's p50 beyond s2r talk's."""
    stages = {}
    for stage in STAGES.values():
        t = spoken_turns.percentiles([r["timings"][stage] for r in talk
                                      if stage in r["timings"]])
        p = spoken_turns.percentiles([r["timings"][stage] for r in page
                                      if stage in r["timings"]])
        beyond = None if None in (t["p50"], p["p50"]) else round(p["p50"] - t["p50"], 1)
        stages[stage] = {"talk": t, "page": p, "page_minus_talk_p50": beyond}
    return stages


def targets(stages: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's targets: sources ≤ 150 ms beyond s2r talk's, first audio within 10 % of
    s2r talk's, barge-in → stopped ≤ 300 ms (p50s)."""
    sources, audio = stages["sources"], stages["first_audio"]
    barge = stages["barge_in_stop"]["page"]["p50"]
    return {
        "sources_within_150ms": None if sources["page_minus_talk_p50"] is None
        else sources["page_minus_talk_p50"] <= 150,
        "first_audio_within_10pct": None if audio["page_minus_talk_p50"] is None
        else audio["page_minus_talk_p50"] <= 0.1 * audio["talk"]["p50"],
        "barge_in_within_300ms": None if barge is None else barge <= 300,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench, runtime, base = spoken_turns.open_bench(args)
    settings = runtime.settings
    queries = random.Random(args.seed).sample(bench.queries, min(args.turns, len(bench.queries)))
    audio, starts = conversation([decode_audio(q.audio) for q in queries], args.pause)
    runtime.close()
    base.close()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    wav = write_wav(work / "browser-talk.wav", audio)
    seconds = len(audio) / SAMPLE_RATE
    fake = FakeLLM()
    fake.default = Step(text=ANSWER)
    env = {"S2R_DATA_DIR": str(settings.data_dir), "S2R_COLLECTION": settings.collection,
           "S2R_QDRANT_URL": "", "S2R_CACHE_DIR": str(settings.cache_dir),
           "S2R_LLM_URL": fake.url, "S2R_API_KEY": KEY}
    engine = Settings.load().tts_engine
    if engine == "auto":
        engine = "piper" if piper_installed() else "espeak-ng"
    print(f"{len(queries)} questions, {seconds:.0f} s of conversation played in real time "
          f"through s2r talk, then the page; speech out {engine}", file=sys.stderr)
    try:
        talk = talk_turns(wav, env, work)
        timeline = page_timeline(wav, seconds, env, work)
    finally:
        fake.close()
    (work / "page-timeline.json").write_text(json.dumps(timeline) + "\n")
    page = page_turns(timeline)
    stages = compare(talk, page)
    return {"benchmark": str(bench.root), "questions": len(queries), "pause_s": args.pause,
            "model": "scripted OpenAI-compatible server, one fixed answer (tests/fake_llm.py)",
            "speech_out": engine, "browser": Browser.version(),
            **spoken_turns.provenance(),
            "question_starts_s": [round(s, 2) for s in starts],
            "turns": {"talk": len(talk), "page": len(page)},
            "interrupted": {"talk": sum(r["interrupted"] for r in talk),
                            "page": sum(r["interrupted"] for r in page)},
            "stages_ms": stages, "targets_met": targets(stages),
            "talk_turns": [{k: r[k] for k in ("start", "end", "transcript", "interrupted",
                                              "timings")} for r in talk],
            "page_turns": page}


def markdown(result: dict[str, Any]) -> str:
    s = result["stages_ms"]
    lines = [f"{result['questions']} spoken questions from `{result['benchmark']}` as one "
             f"conversation ({result['pause_s']:g} s pauses); turns detected: s2r talk "
             f"{result['turns']['talk']}, page {result['turns']['page']}; answers interrupted: "
             f"{result['interrupted']['talk']} and {result['interrupted']['page']}; speech out "
             f"{result['speech_out']}; {result['browser']}; {result['machine']}", "",
             "| ms, p50 / p95 (turns) | `s2r talk` | page (headless Chromium) | page − talk "
             "(p50) | target |", "|---|---|---|---|---|"]
    goals = {"sources": "≤ 150 beyond", "first_audio": "≤ 10 % beyond",
             "barge_in_stop": "page ≤ 300", "endpoint": "", "first_token": ""}
    met = {"sources": "sources_within_150ms", "first_audio": "first_audio_within_10pct",
           "barge_in_stop": "barge_in_within_300ms"}

    def cell(p: dict[str, Any]) -> str:
        return "–" if p["p50"] is None else f"{p['p50']:.0f} / {p['p95']:.0f} ({p['n']})"

    for name, stage in STAGES.items():
        row = s[stage]
        beyond = row["page_minus_talk_p50"]
        verdict = result["targets_met"].get(met.get(stage, ""))
        goal = goals[stage] + ("" if verdict is None else (": met" if verdict else ": **not met**"))
        lines.append(f"| {name} | {cell(row['talk'])} | {cell(row['page'])} | "
                     f"{'–' if beyond is None else f'{beyond:+.0f}'} | {goal} |")
    return "\n".join(lines)


def main() -> None:
    parser = spoken_turns.parser(__doc__)
    parser.add_argument("--turns", type=int, default=6, help="spoken questions (default 6)")
    parser.add_argument("--pause", type=float, default=6.0,
                        help="seconds of silence after each question, shorter than an answer "
                        "(default 6)")
    parser.add_argument("--work", default="bench-data/browser-talk",
                        help="where the recording, logs and the page's timeline are written")
    args = parser.parse_args()
    spoken_turns.report(run(args), markdown, args.out)


if __name__ == "__main__":
    main()
