"""Does the sound leg (``S2R_SOUND_KEYS``: BM25 over the words' Metaphone keys) help?  Each
query of a tuning set (train-split queries only; never choose on the eval split) runs every
system twice, with and without the leg, in alternating order, through the real query paths;
the table gives both MRR@10s, their paired difference with its standard error, the difference
on each kind of question, and both median latencies.  A second table gives the MRR@10 had
only questions of at most G words (as heard) used the leg (``S2R_SOUND_MAX_WORDS``).

    python benchmarks/tune_sound.py bench-data/tune600/clean bench-data/tune600/phone \
        --out benchmarks/results/tune-sound.json

The corpus is indexed once with sound vectors (a collection of its own under the cache
directory); the "without" runs simply leave that leg out of the query.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.audio import decode_audio
from assistant.bench_format import load_benchmark
from assistant.evaluate import open_index, ranked_documents, system_runner
from assistant.metrics import reciprocal_rank
from assistant.retrieval import Retriever
from assistant.runtime import Runtime
from assistant.settings import Settings

VARIANTS = (False, True)  # sound leg off, on


def summary(bench: str, system: str, kinds: list[str | None], heard_words: list[int],
            off: np.ndarray, on: np.ndarray, gates: list[int]) -> dict:
    """One system's paired comparison, and for each gate G the MRR@10 if only questions
    heard as at most G words searched by sound (each query's two searches are independent,
    so a gate just picks one of them per query)."""
    diff, words = on - off, np.array(heard_words)
    se = lambda d: round(float(d.std(ddof=1) / np.sqrt(len(d))), 4)  # noqa: E731
    gated = {g: np.where(words <= g, on, off) for g in gates}
    return {
        "benchmark": bench, "system": system, "n_queries": len(diff),
        "mrr@10_without": round(float(off.mean()), 4),
        "mrr@10_with": round(float(on.mean()), 4),
        "difference": round(float(diff.mean()), 4), "difference_se": se(diff),
        "difference_by_kind": {k: round(float(diff[[q == k for q in kinds]].mean()), 4)
                               for k in sorted({k for k in kinds if k})},
        "median_words_by_kind": {k: float(np.median(words[[q == k for q in kinds]]))
                                 for k in sorted({k for k in kinds if k})},
        "gates": [{"max_words": g, "share": round(float(np.mean(words <= g)), 2),
                   "mrr@10": round(float(gated[g].mean()), 4),
                   "difference": round(float((gated[g] - off).mean()), 4),
                   "difference_se": se(gated[g] - off)} for g in gates],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--systems", default="transcript,s2r,e2e,hybrid")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries")
    parser.add_argument("--gates", default="3,4,5,6,7,8,10,12,15",
                        help="question lengths (words heard) up to which to use the leg")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    runtime = Runtime(Settings.load(sound_keys=True, sound_max_words=0))  # "with": always
    systems = args.systems.split(",")
    gates = [int(g) for g in args.gates.split(",") if g]
    rows = []
    for path in args.benchmarks:
        bench = load_benchmark(path)
        queries = bench.queries[: args.limit or None]
        indexed, _ = open_index(bench, runtime)
        retriever = Retriever(indexed)
        run = {system: system_runner(system, retriever) for system in systems}
        on_settings, off_settings = indexed.settings, indexed.settings.replace(sound_keys=False)
        ranks = {(s, v): [] for s in systems for v in VARIANTS}
        ms = {(s, v): [] for s in systems for v in VARIANTS}
        heard_words = {s: [] for s in systems}  # words of the question as heard (1-best)
        try:
            for i, query in enumerate(tqdm(queries, desc=bench.name, unit="q")):
                audio = decode_audio(query.audio)
                for system in systems:
                    for variant in VARIANTS if i % 2 else VARIANTS[::-1]:
                        indexed.settings = on_settings if variant else off_settings
                        started = time.perf_counter()
                        result, heard = run[system](audio, query.text)
                        ms[system, variant].append((time.perf_counter() - started) * 1e3)
                        ranks[system, variant].append(reciprocal_rank(
                            ranked_documents(result), set(query.relevant), 10))
                    typed = heard is None  # the transcript system hears the typed text
                    heard_words[system].append(len((query.text if typed else heard).split()))
        finally:
            indexed.close()
        for system in systems:
            off, on = (np.array(ranks[system, v]) for v in VARIANTS)
            rows.append(summary(bench.name, system, [q.kind for q in queries],
                                heard_words[system], off, on, gates)
                        | {"p50_ms_without": round(float(np.median(ms[system, False])), 1),
                           "p50_ms_with": round(float(np.median(ms[system, True])), 1)})
            print(rows[-1], flush=True)
    print("| benchmark | system | without | with | difference (SE) | by kind "
          "| p50 without / with |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        kinds = ", ".join(f"{k} {v:+.3f}" for k, v in r["difference_by_kind"].items())
        print(f"| {r['benchmark']} | {r['system']} | {r['mrr@10_without']:.4f} | "
              f"{r['mrr@10_with']:.4f} | {r['difference']:+.4f} ({r['difference_se']:.4f}) | "
              f"{kinds} | {r['p50_ms_without']} / {r['p50_ms_with']} ms |")
    print("\n| benchmark | system | " + " | ".join(f"<= {g} words" for g in gates) + " |")
    print("|---|---|" + "---|" * len(gates))
    for r in rows:
        print(f"| {r['benchmark']} | {r['system']} | " + " | ".join(
            f"{g['mrr@10']:.4f} ({g['difference']:+.4f})" for g in r["gates"]) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
