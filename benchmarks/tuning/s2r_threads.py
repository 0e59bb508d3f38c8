"""How many CPU threads the integrated S2R pass should run on: the reduced-window encoder and
the guarded decode at beam 1, 2 and 5, the padded fallback's encoder and decode, and the
padded cascade, timed with Whisper loaded at each thread count, interleaved over the same
clips (two rounds), on a tuning set.

    python benchmarks/tuning/s2r_threads.py bench-data/tune600/phone --clips 60 \
        --out benchmarks/results/s2r-threads.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.eval.bench_format import load_benchmark
from assistant.settings import Settings
from assistant.speech.audio import SAMPLE_RATE, decode_audio
from assistant.speech.integrated import MAX_WINDOW_S, DecodeConfig, IntegratedRecognizer
from assistant.speech.whisper import Transcriber

BEAMS = (1, 2, 5)


def since_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", metavar="BENCH_DIR")
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--threads", default="1,2", help="thread counts to compare")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    bench = load_benchmark(args.benchmark)
    audios = [decode_audio(q.audio) for q in bench.queries[: args.clips]]
    transcriber = Transcriber(Settings.load())
    recognizers = {threads: {beam: IntegratedRecognizer(
        transcriber, DecodeConfig(beam_size=beam, n_best=beam, threads=threads))
        for beam in BEAMS} for threads in (int(t) for t in args.threads.split(","))}
    times: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.rounds):
        for threads, by_beam in recognizers.items():
            whisper = transcriber.model_with_threads(threads)
            for audio in tqdm(audios, desc=f"{threads} thread(s)", unit="clip"):
                cap = int(4 * audio.size / SAMPLE_RATE + 10)
                started = time.perf_counter()
                encoded = by_beam[1].encode(audio).encoded
                times.setdefault((threads, "encode"), []).append(since_ms(started))
                for beam, recognizer in by_beam.items():
                    started = time.perf_counter()
                    recognizer._decode(encoded, cap)
                    times.setdefault((threads, f"decode, beam {beam}"), []).append(
                        since_ms(started))
                padded = by_beam[5]._features(audio, MAX_WINDOW_S)
                started = time.perf_counter()
                padded_encoded = by_beam[5]._encode_features(by_beam[5].model, padded)
                times.setdefault((threads, "padded fallback: encode 30 s"), []).append(
                    since_ms(started))
                started = time.perf_counter()
                by_beam[5]._decode(padded_encoded, None)
                times.setdefault((threads, "padded fallback: decode, beam 5"), []).append(
                    since_ms(started))
                started = time.perf_counter()
                list(whisper.transcribe(audio, language="en", beam_size=5,
                                        condition_on_previous_text=False)[0])
                times.setdefault((threads, "cascade (padded, beam 5)"), []).append(
                    since_ms(started))
    rows = [{"threads": threads, "step": step, "clips": len(values),
             "p50_ms": round(float(np.median(values)), 1)}
            for (threads, step), values in sorted(times.items(), key=lambda kv: kv[0][1])]
    print("| step | threads | clips | p50 ms |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['step']} | {row['threads']} | {row['clips']} | {row['p50_ms']} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"benchmark": args.benchmark, "rows": rows},
                                             indent=2) + "\n")


if __name__ == "__main__":
    main()
