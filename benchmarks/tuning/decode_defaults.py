"""Every default of the integrated decode judged by one rule: per voice family, its 1-best WER
beside the padded cascade's, with the same Whisper model, on the same clips.

A variant may become a default only if it raises WER against the cascade on no family, above
all the families it was not trained or tuned on (benchmarks/README.md).  Each clip is decoded
by the cascade and by every variant in turn, so the timings are paired on one loaded machine.

    python benchmarks/tuning/decode_defaults.py bench-data/dev/clean bench-data/dev/phone \
        bench-data/human --queries 240 --out benchmarks/results/decode-defaults.json

Variants (``--variants``, comma-separated names of ``VARIANTS``) change one thing from the
shipped config, so each row reads as "what this one choice does"; "a+b" combines them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.eval.bench_format import load_benchmark
from assistant.eval.metrics import word_errors
from assistant.settings import Settings
from assistant.speech.audio import decode_audio
from assistant.speech.integrated import DecodeConfig, IntegratedRecognizer

# name → (DecodeConfig changes, decoder adapter setting or None for the configured one)
VARIANTS: dict[str, tuple[dict, str | None]] = {
    "shipped": ({}, None),
    "adapter-v2": ({}, "bundled"),
    "no-adapter": ({}, "none"),
    "no-repeat-0": ({"no_repeat_ngram_size": 0}, None),
    "no-repeat-5": ({"no_repeat_ngram_size": 5}, None),
    "penalty-1.0": ({"repetition_penalty": 1.0}, None),
    "margin-1": ({"margin_s": 1.0}, None),
    "margin-3": ({"margin_s": 3.0}, None),
    "beam-3": ({"beam_size": 3}, None),
    "min-window-5": ({"min_window_s": 5.0}, None),
    "min-window-8": ({"min_window_s": 8.0}, None),
    "min-window-10": ({"min_window_s": 10.0}, None),
    "min-window-12": ({"min_window_s": 12.0}, None),
    "min-window-14": ({"min_window_s": 14.0}, None),
    "stock": ({"no_repeat_ngram_size": 0, "repetition_penalty": 1.0}, "none"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", type=Path)
    parser.add_argument("--queries", type=int, default=0, help="first N queries of each; 0 = all")
    parser.add_argument("--variants", default="shipped,no-adapter,no-repeat-0,penalty-1.0,stock")
    parser.add_argument("--whisper", default="", help="S2R_WHISPER_MODEL for every system")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if v]
    unknown = {part for name in names for part in name.split("+")} - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    settings = Settings.load().replace(whisper_model=args.whisper)
    from assistant.speech.whisper import Transcriber

    base = Transcriber(settings)
    transcribers = {None: base}
    recognizers = {}
    for name in names:
        changes, adapter = combine(name)
        if adapter is not None and adapter not in transcribers:
            transcribers[adapter] = Transcriber(settings.replace(decoder_adapter=adapter))
        config = dataclasses.replace(DecodeConfig.from_settings(settings), **changes)
        recognizers[name] = IntegratedRecognizer(transcribers[adapter], config)

    rows = []
    for bench_dir in args.benchmarks:
        bench = load_benchmark(bench_dir)
        queries = bench.queries[: args.queries or None]
        systems = ["cascade", *names]
        results = {s: [] for s in systems}  # (family, errors, words, ms, fallback)
        for q in tqdm(queries, desc=bench.name, unit="q"):
            audio = decode_audio(q.audio)
            family = q.family or "all"
            for system in systems:
                started = time.perf_counter()
                if system == "cascade":
                    text, fallback = base.transcribe(audio).text, False
                else:
                    recognition = recognizers[system].recognize(audio)
                    text, fallback = recognition.text, recognition.fallback is not None
                ms = (time.perf_counter() - started) * 1e3
                results[system].append((family, *word_errors(q.text, text), ms, fallback))
        for system, outcomes in results.items():
            rows.append(summarise(bench.name, system, outcomes))
    document = {"whisper": base.location.name, "variants": {n: combine(n) for n in names},
                "rows": rows}
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


def combine(name: str) -> tuple[dict, str | None]:
    """A variant or several joined by "+": their changes together (the last adapter wins)."""
    changes: dict = {}
    adapter = None
    for part in name.split("+"):
        more, part_adapter = VARIANTS[part]
        changes |= more
        adapter = part_adapter if part_adapter is not None else adapter
    return changes, adapter


def summarise(bench: str, system: str, outcomes: list[tuple]) -> dict:
    families = sorted({o[0] for o in outcomes})

    def wer(selected):
        return round(sum(o[1] for o in selected) / max(1, sum(o[2] for o in selected)), 4)

    return {"benchmark": bench, "system": system, "n": len(outcomes),
            "wer": wer(outcomes),
            "wer_by_family": {f: wer([o for o in outcomes if o[0] == f]) for f in families},
            "p50_ms": round(float(np.median([o[3] for o in outcomes])), 1),
            "fallback_rate": round(float(np.mean([o[4] for o in outcomes])), 4)}


def table(rows: list[dict]) -> str:
    families = sorted({f for r in rows for f in r["wer_by_family"]})
    lines = ["| benchmark | system | n | WER | " + " | ".join(families) +
             " | p50 ms | fallback |", "|---|---|---|---|" + "---|" * len(families) + "---|---|"]
    for r in rows:
        cells = [f"{r['wer_by_family'].get(f, float('nan')):.3f}" for f in families]
        lines.append(f"| {r['benchmark']} | {r['system']} | {r['n']} | {r['wer']:.3f} | "
                     + " | ".join(cells) + f" | {r['p50_ms']:.0f} | {r['fallback_rate']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
