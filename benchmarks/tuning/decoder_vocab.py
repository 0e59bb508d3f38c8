"""The spoken-query decoder with the full vocabulary and pruned to the collection's word
pieces (``Tuning.s2r_vocabulary``): the guarded reduced-window decode (fallback included) timed
on the same encoder pass, alternating which goes first, with its WER and how often the 1-best
differs, on a tuning set.  The vocabulary is made from the benchmark's passage titles and texts,
as the collection indexed from them would give it.

    python benchmarks/tuning/decoder_vocab.py bench-data/tune600/phone --clips 150 \
        --out benchmarks/results/decoder-vocab.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.eval.bench_format import load_benchmark
from assistant.eval.metrics import word_errors
from assistant.settings import Settings
from assistant.speech.audio import decode_audio
from assistant.speech.decoder_vocab import COMMON_PIECES, DecoderVocabulary, piece_count
from assistant.speech.integrated import DecodeConfig, IntegratedRecognizer
from assistant.speech.whisper import Transcriber


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", metavar="BENCH_DIR")
    parser.add_argument("--clips", type=int, default=150)
    parser.add_argument("--common", type=int, default=COMMON_PIECES,
                        help="the commonest pieces always kept (default: %(default)s)")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    bench = load_benchmark(args.benchmark)
    settings = Settings.load()
    transcriber = Transcriber(settings)
    texts = [text for p in bench.passages for text in (p.title, p.text) if text]
    vocabulary = DecoderVocabulary.from_texts(texts, transcriber.model.hf_tokenizer,
                                              piece_count(transcriber.model_dir), args.common)
    config = DecodeConfig.from_settings(settings)
    recognizers = {"full": IntegratedRecognizer(transcriber, config),
                   "collection": IntegratedRecognizer(transcriber, config, vocabulary)}
    queries = bench.queries[: args.clips]
    times: dict[str, list[float]] = {name: [] for name in recognizers}
    heard: dict[str, list[str]] = {name: [] for name in recognizers}
    fallbacks = dict.fromkeys(recognizers, 0)
    for n, query in enumerate(tqdm(queries, unit="clip")):
        audio = decode_audio(query.audio)
        encoder_pass = recognizers["full"].encode(audio)  # the same encoder in both
        for name in sorted(recognizers, reverse=n % 2 == 1):
            started = time.perf_counter()
            recognition = recognizers[name].recognize(audio, encoder_pass)
            times[name].append((time.perf_counter() - started) * 1e3)
            heard[name].append(recognition.text)
            fallbacks[name] += recognition.fallback is not None
    rows = []
    for name in recognizers:
        errors = [word_errors(q.text, h) for q, h in zip(queries, heard[name], strict=True)]
        rows.append({
            "decoder": name, "clips": len(queries),
            "pieces": int(vocabulary.kept.size if name == "collection"
                          else piece_count(transcriber.model_dir)),
            "decode_p50_ms": round(float(np.median(times[name])), 1),
            "decode_mean_ms": round(float(np.mean(times[name])), 1),
            "wer": round(sum(e for e, _ in errors) / max(1, sum(n for _, n in errors)), 3),
            "fallbacks": fallbacks[name],
            "same_1best": sum(a == b for a, b in zip(heard[name], heard["full"], strict=True)),
        })
    print("| decoder | word pieces | clips | decode p50 ms | mean ms | WER | fallbacks | "
          "1-best as full |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['decoder']} | {r['pieces']} | {r['clips']} | {r['decode_p50_ms']} | "
              f"{r['decode_mean_ms']} | {r['wer']} | {r['fallbacks']} | {r['same_1best']} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"benchmark": args.benchmark,
                                              "common_pieces": args.common, "rows": rows},
                                             indent=2) + "\n")


if __name__ == "__main__":
    main()
