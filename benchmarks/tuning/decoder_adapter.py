"""What the decoder adapter (``S2R_DECODER_ADAPTER``) changes: each query through ``s2r`` and
``hybrid`` with the adapted decoder and with the packaged one, alternating which goes first,
on one indexed collection; per system and decoder MRR@10 (also by query kind), the WER of the
transcript and the p50 and mean latency.  Run it on the tuning set to choose, on the eval split
only to report.  ``--baseline`` compares against another adapter instead of the packaged
decoder (e.g. a new adapter against the bundled one).

    python benchmarks/tuning/decoder_adapter.py bench-data/tune600/clean bench-data/tune600/phone \
        --out benchmarks/results/tune-decoder-adapter.json
    S2R_DECODER_ADAPTER=v2.npz python benchmarks/tuning/decoder_adapter.py \
        bench-data/tune600/clean \
        --baseline an-older-adapter.npz
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm
from tune_hybrid import reciprocal_rank_of, report

from assistant.eval.bench_format import load_benchmark
from assistant.eval.evaluate import CHUNK_DEPTH, open_index
from assistant.eval.metrics import word_errors
from assistant.retrieval.retriever import Retriever
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.speech.audio import decode_audio
from assistant.speech.integrated import IntegratedRecognizer
from assistant.speech.whisper import Transcriber

SYSTEMS = {"s2r": Retriever.search_audio, "hybrid": Retriever.search_audio_hybrid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--queries", type=int, default=0, help="first N queries (0 = all)")
    parser.add_argument("--systems", default="s2r,hybrid", help="s2r and/or hybrid")
    parser.add_argument("--baseline", default="none", metavar="ADAPTER",
                        help="the decoder adapter to compare with (default none: packaged)")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    runtime = Runtime(Settings.load())
    baseline = Transcriber(runtime.settings.replace(decoder_adapter=args.baseline))
    baseline_name = "packaged" if baseline.adapter_id == "none" else \
        f"adapted {baseline.adapter_id}"
    adapted_name = f"adapted {runtime.transcriber.adapter_id}"
    rows = []
    for path in args.benchmarks:
        bench = load_benchmark(path)
        indexed, _ = open_index(bench, runtime)
        try:
            adapted = indexed.query_recognizer
            recognizers = {adapted_name: adapted, baseline_name: IntegratedRecognizer(
                baseline, adapted.config, adapted.vocabulary)}
            retriever = Retriever(indexed)
            queries = bench.queries[: args.queries or None]
            runs = [(system, name) for system in args.systems.split(",")
                    for name in recognizers]
            ms = {run: [] for run in runs}
            ranks = {run: [] for run in runs}
            errors = {run: [0, 0] for run in runs}
            for n, query in enumerate(tqdm(queries, desc=bench.name, unit="q")):
                audio = decode_audio(query.audio)
                for system, name in sorted(runs, reverse=n % 2 == 1):
                    indexed._query_recognizer = recognizers[name]
                    if n == 0:  # warm both decoders up before timing
                        SYSTEMS[system](retriever, audio, CHUNK_DEPTH)
                    started = time.perf_counter()
                    result = SYSTEMS[system](retriever, audio, CHUNK_DEPTH)
                    ms[system, name].append((time.perf_counter() - started) * 1e3)
                    ranks[system, name].append(reciprocal_rank_of(result.hits, query))
                    wrong, words = word_errors(query.text, result.transcript or "")
                    errors[system, name][0] += wrong
                    errors[system, name][1] += words
        finally:
            indexed.close()
        kinds = [q.kind or "all" for q in queries]
        for system, name in runs:
            rr = np.array(ranks[system, name])
            rows.append({
                "benchmark": bench.name, "system": system, "decoder": name,
                "n_queries": len(queries),
                "wer": round(errors[system, name][0] / max(1, errors[system, name][1]), 4),
                "p50_ms": round(float(np.median(ms[system, name])), 1),
                "mean_ms": round(float(np.mean(ms[system, name])), 1),
                "mrr@10": round(float(rr.mean()), 4),
                "mrr@10_by_kind": {k: round(float(rr[[c == k for c in kinds]].mean()), 4)
                                   for k in sorted(set(kinds))}})
    report(rows, {"benchmark": "benchmark", "system": "system", "decoder": "decoder",
                  "wer": "WER", "p50_ms": "p50 ms", "mean_ms": "mean ms",
                  "mrr@10_by_kind": "MRR@10 by kind"}, args.out)


if __name__ == "__main__":
    main()
