"""Does the sound leg (``Tuning.sound_keys``: BM25 over the words' Metaphone keys) help?  Each
query of a tuning set (train-split queries only; never choose on the eval split) runs every
system twice, with and without the leg, in alternating order, through the real query paths;
the table gives both MRR@10s, their paired difference with its standard error, the difference
on each kind of question, and both median latencies.  A second table gives the MRR@10 had
only questions of at most G words (as heard) used the leg (``Tuning.sound_max_words``).

    python benchmarks/tuning/tune_sound.py bench-data/tune600/clean bench-data/tune600/phone \
        --out benchmarks/results/tune-sound.json

The corpus is indexed once with sound vectors (a collection of its own under the cache
directory); the "without" runs simply leave that leg out of the query.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from paired import PairedRuns, paired_summary, print_paired_table, run_paired, standard_error

from assistant.eval.bench_format import Query, load_benchmark
from assistant.eval.evaluate import open_index
from assistant.retrieval.retriever import Retriever
from assistant.runtime import Runtime
from assistant.settings import Settings


def gates_summary(system: str, heard_words: list[int], runs: PairedRuns, queries: list[Query],
                  gates: list[int]) -> dict:
    """For each gate G the MRR@10 if only questions heard as at most G words searched by
    sound (each query's two searches are independent, so a gate just picks one of them per
    query), and the median length of each kind of question."""
    off, on = (np.array(runs.ranks[system, v]) for v in (False, True))
    words, kinds = np.array(heard_words), [q.kind for q in queries]
    gated = {g: np.where(words <= g, on, off) for g in gates}
    return {
        "median_words_by_kind": {k: float(np.median(words[[q == k for q in kinds]]))
                                 for k in sorted({k for k in kinds if k})},
        "gates": [{"max_words": g, "share": round(float(np.mean(words <= g)), 2),
                   "mrr@10": round(float(gated[g].mean()), 4),
                   "difference": round(float((gated[g] - off).mean()), 4),
                   "difference_se": standard_error(gated[g] - off)} for g in gates],
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
        heard_words: dict[str, list[int]] = {s: [] for s in systems}  # of the 1-best

        def count_words(system, variant, query, result, heard, counts=heard_words) -> None:
            if variant:  # once per query; the transcript system hears the typed text
                counts[system].append(len((query.text if heard is None else heard).split()))

        try:
            runs = run_paired(Retriever(indexed), systems, queries, bench.name,
                              indexed.settings.replace(sound_keys=False), indexed.settings,
                              count_words)
        finally:
            indexed.close()
        for system in systems:
            rows.append(paired_summary(bench.name, system, queries, runs)
                        | gates_summary(system, heard_words[system], runs, queries, gates))
            print(rows[-1], flush=True)
    print_paired_table(rows)
    print("\n| benchmark | system | " + " | ".join(f"<= {g} words" for g in gates) + " |")
    print("|---|---|" + "---|" * len(gates))
    for r in rows:
        print(f"| {r['benchmark']} | {r['system']} | " + " | ".join(
            f"{g['mrr@10']:.4f} ({g['difference']:+.4f})" for g in r["gates"]) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
