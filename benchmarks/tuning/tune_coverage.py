"""Does reordering the fused top hits by how much of the question each covers help
(``Tuning.coverage_weight``, ``assistant/retrieval/coverage.py``)? Each query of a tuning set
(train-split queries only; never choose on the eval split) runs every system twice, without and with
the reorder at the current settings, in alternating order, through the real query paths; the first
table gives both MRR@10s, their paired difference with its standard error, the difference on each
kind of question, and both median latencies. The second table is a grid over the weight, the depth
and the length gate, computed from the "without" run's hits and readings (each hit's coverage once):
in ``hybrid`` only its final search is reordered there, while the real path reorders the first
search as well, which can change the hits a second decode reads.

    python benchmarks/tuning/tune_coverage.py bench-data/tune600/clean bench-data/tune600/phone \\
        --out benchmarks/results/tune-coverage.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from paired import paired_summary, print_paired_table, run_paired

from assistant.eval.bench_format import load_benchmark
from assistant.eval.evaluate import open_index, ranked_documents
from assistant.eval.metrics import reciprocal_rank
from assistant.retrieval.coverage import coverage, reorder
from assistant.retrieval.retriever import Retriever, SearchResult, short_question
from assistant.runtime import Runtime
from assistant.settings import Settings


class RecordingRetriever(Retriever):
    """A retriever that keeps the last search's readings (the grid reorders its hits)."""

    readings: tuple[list[str], np.ndarray] | None = None

    def _search(self, legs, top_k, kind, heard, timings, readings=None):
        self.readings = readings
        return super()._search(legs, top_k, kind, heard, timings, readings)


def grid_ranks(hits, readings, relevant, weights, depths, gates) -> dict[tuple, float]:
    """Reciprocal rank of the hits reordered at each (weight, depth, gate)."""
    texts, reading_weights = readings or ([], [])
    coverages = [coverage(texts, reading_weights, h.payload.get("text") or "")
                 for h in hits[:max(depths)]]
    ranks = {}
    for weight, depth, gate in itertools.product(weights, depths, gates):
        reordered = reorder(hits, coverages[:depth], weight) \
            if readings and short_question(texts, gate) else hits
        ranks[weight, depth, gate] = reciprocal_rank(
            ranked_documents(SearchResult(reordered)), relevant, 10)
    return ranks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--systems", default="transcript,s2r,e2e,hybrid")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries")
    parser.add_argument("--weights", default="1,2,3,4,6")
    parser.add_argument("--depths", default="5,10,20")
    parser.add_argument("--gates", default="4,6,8,10,0", help="0 = any length")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    depths = [int(d) for d in args.depths.split(",")]
    gates = [int(g) for g in args.gates.split(",")]
    settings = Settings.load()
    if not settings.tuning.coverage_weight:
        parser.error("Tuning.coverage_weight is 0: nothing to compare")
    tuning = settings.tuning
    chosen = (tuning.coverage_weight, tuning.coverage_depth, tuning.coverage_max_words)
    systems = args.systems.split(",")
    rows = []
    for path in args.benchmarks:
        bench = load_benchmark(path)
        queries = bench.queries[: args.limit or None]
        indexed, _ = open_index(bench, Runtime(settings))
        retriever = RecordingRetriever(indexed)
        grid: dict[str, list[dict]] = {s: [] for s in systems}

        def reorder_grid(system, variant, query, result, heard, ranks=grid,
                         recorder=retriever) -> None:
            if not variant:  # the fused order, reordered every way
                ranks[system].append(grid_ranks(result.hits, recorder.readings,
                                                set(query.relevant), weights, depths, gates))

        try:
            runs = run_paired(retriever, systems, queries, bench.name,
                              indexed.settings.replace(coverage_weight=0.0), indexed.settings,
                              reorder_grid)
        finally:
            indexed.close()
        for system in systems:
            rows.append(paired_summary(bench.name, system, queries, runs) | {
                "settings": dict(zip(("weight", "depth", "max_words"), chosen, strict=True)),
                "grid": [{"weight": w, "depth": d, "max_words": g,
                          "mrr@10": round(float(np.mean([r[w, d, g] for r in grid[system]])),
                                          4)}
                         for w, d, g in itertools.product(weights, depths, gates)]})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "grid"}), flush=True)
    print_paired_table(rows)
    print("\n| benchmark | system | best (weight, depth, max words) | MRR@10 | at the settings |")
    print("|---|---|---|---|---|")
    for r in rows:
        best = max(r["grid"], key=lambda g: g["mrr@10"])
        current = next((f"{g['mrr@10']:.4f}" for g in r["grid"]
                        if (g["weight"], g["depth"], g["max_words"]) == chosen), "not in grid")
        print(f"| {r['benchmark']} | {r['system']} | {best['weight']}, {best['depth']}, "
              f"{best['max_words']} | {best['mrr@10']:.4f} | {current} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
