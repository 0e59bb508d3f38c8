"""How long speech out takes to voice an answer's first sentence: piper's joe voice (in-process,
1 and 2 onnxruntime threads) against espeak-ng, side by side.

The voice loop speaks each sentence as soon as the model has written it, so the first
sentence's synthesis is added to end-of-speech → first-audio.  Every round voices each sentence
with every engine in turn, the order rotating, so a noisy machine slows them alike; one warm-up
round is not counted.  Also times loading the piper voice and the real-time factor (synthesis
time / audio duration).  Prints a Markdown table; writes JSON (``--out``).

    python benchmarks/tts_first_sentence.py --rounds 6 \
        --out benchmarks/results/tts-first-sentence.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from assistant.speech.answer_voice import EspeakEngine, PiperEngine, SpeechEngine
from assistant.speech.audio import SAMPLE_RATE

T = TypeVar("T")

# First sentences of the kind the answer model writes, 10-20 words each.
SENTENCES = (
    "Honey bees tell each other where food is with a waggle dance.",
    "The volcano erupted in 1980, and ash fell across eleven states within three days.",
    "You can reset your password from the account settings page under security.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen inside the "
    "leaf.",
    "The report says revenue grew by twelve percent, mostly from the new subscription plan.",
    "According to the manual, the filter should be cleaned every three months.",
    "Mount Everest is the highest mountain above sea level, at about 8,849 meters.",
    "The treaty was signed in Paris and ended the war between the two countries.",
    "To install it, run the setup script and then restart the service once it finishes.",
    "Octopuses have three hearts, blue blood and a brain that wraps around the throat.",
)


def timed(call: Callable[..., T], *args: object) -> tuple[T, float]:
    started = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - started


def percentile_ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1e3, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds after the warm-up")
    parser.add_argument("--loads", type=int, default=3, help="times each piper voice is loaded")
    parser.add_argument("--out", type=Path, metavar="JSON")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    loads: dict[str, list[float]] = {}
    engines: dict[str, SpeechEngine] = {"espeak-ng en-us": EspeakEngine()}
    for _ in range(args.loads):
        for threads in (1, 2):
            name = f"piper joe, {threads} thread{'s' * (threads > 1)}"
            engines[name], seconds = timed(PiperEngine, "", threads)
            loads.setdefault(name, []).append(seconds)

    names = list(engines)
    synth: dict[str, list[float]] = {name: [] for name in names}
    audio_s: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds + 1):
        for i, sentence in enumerate(SENTENCES):
            shift = (round_ + i) % len(names)
            for name in names[shift:] + names[:shift]:
                audio, seconds = timed(engines[name].synthesize, sentence)
                if round_:
                    synth[name].append(seconds)
                    audio_s[name].append(len(audio) / SAMPLE_RATE)
        print(f"round {round_}/{args.rounds} done", file=sys.stderr)

    rows = [{"engine": name, "runs": len(synth[name]),
             "p50_ms": percentile_ms(synth[name], 50), "p90_ms": percentile_ms(synth[name], 90),
             "max_ms": percentile_ms(synth[name], 100),
             "audio_p50_s": round(float(np.median(audio_s[name])), 2),
             "rtf": round(sum(synth[name]) / sum(audio_s[name]), 3),
             "load_p50_ms": percentile_ms(loads[name], 50) if name in loads else None}
            for name in names]
    command = " ".join(["python", *sys.argv])
    load_avg = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    words = [len(sentence.split()) for sentence in SENTENCES]
    print(f"<!-- {command}\n  {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.machine()}, "
          f"{os.cpu_count()} cores, 1-min load average {load_avg[0]} before, {load_avg[1]} "
          f"after; {len(SENTENCES)} sentences of {min(words)}-{max(words)} words, "
          f"{args.rounds} rounds after a warm-up, engines interleaved -->\n")
    print("| engine | first sentence p50 / p90 / max ms | audio p50 s | RTF | voice load p50 ms |"
          "\n|---|---|---|---|---|")
    for row in rows:
        load = "—" if row["load_p50_ms"] is None else row["load_p50_ms"]
        print(f"| {row['engine']} | {row['p50_ms']} / {row['p90_ms']} / {row['max_ms']} | "
              f"{row['audio_p50_s']} | {row['rtf']} | {load} |")
    if args.out:
        args.out.write_text(json.dumps({
            "command": command, "date": dt.datetime.now().isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load_average_before_after": load_avg,
            "sentences": list(SENTENCES), "rounds": args.rounds, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
