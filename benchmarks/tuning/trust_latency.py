"""What trusting a sure first decode (``Tuning.hybrid_trust_logprob``) saves: each query through
``hybrid`` with the chosen threshold and with the second decode always on, alternating which
goes first, on one indexed collection; per setting the p50 and mean latency, MRR@10 and the
share of queries decoded twice.  A timing check, so it may run on the eval split: nothing is
chosen from it.

    python benchmarks/tuning/trust_latency.py bench-data/dev/clean bench-data/dev/phone \
        --queries 300 --out benchmarks/results/trust-latency.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm
from tune_hybrid import reciprocal_rank_of, report

from assistant.eval.bench_format import load_benchmark
from assistant.eval.evaluate import CHUNK_DEPTH, open_index
from assistant.retrieval.retriever import Retriever
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.speech.audio import decode_audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    runtime = Runtime(Settings.load())
    chosen = runtime.settings.tuning.hybrid_trust_logprob
    settings = {f"trust above {chosen:g} (default)": runtime.settings,
                "always twice (0)": runtime.settings.replace(hybrid_trust_logprob=0.0)}
    rows = []
    for path in args.benchmarks:
        bench = load_benchmark(path)
        indexed, _ = open_index(bench, runtime)
        try:
            retriever = Retriever(indexed)
            queries = bench.queries[: args.queries]
            ms = {name: [] for name in settings}
            ranks = {name: [] for name in settings}
            twice = {name: 0 for name in settings}
            retriever.search_audio_hybrid(decode_audio(queries[0].audio), CHUNK_DEPTH)  # warm
            for n, query in enumerate(tqdm(queries, desc=bench.name, unit="q")):
                audio = decode_audio(query.audio)
                for name in sorted(settings, reverse=n % 2 == 1):
                    indexed.settings = settings[name]  # the retriever reads it per query
                    started = time.perf_counter()
                    result = retriever.search_audio_hybrid(audio, CHUNK_DEPTH)
                    ms[name].append((time.perf_counter() - started) * 1e3)
                    ranks[name].append(reciprocal_rank_of(result.hits, query))
                    twice[name] += "asr_context" in result.timings_ms
        finally:
            indexed.close()
        rows += [{"benchmark": bench.name, "setting": name, "n_queries": len(queries),
                  "decoded_twice": round(twice[name] / len(queries), 2),
                  "p50_ms": round(float(np.median(ms[name])), 1),
                  "mean_ms": round(float(np.mean(ms[name])), 1),
                  "mrr@10": round(float(np.mean(ranks[name])), 4)} for name in settings]
    report(rows, {"benchmark": "benchmark", "setting": "second decode",
                  "decoded_twice": "share decoded twice", "p50_ms": "p50 ms",
                  "mean_ms": "mean ms"}, args.out)


if __name__ == "__main__":
    main()
