"""Does reordering the fused top hits by how much of the question each covers help
(``S2R_COVERAGE_WEIGHT``, ``assistant/coverage.py``)?  Each query of a tuning set (train-split
queries only; never choose on the eval split) runs every system twice, without and with the
reorder at the current settings, in alternating order, through the real query paths; the first
table gives both MRR@10s, their paired difference with its standard error, the difference on
each kind of question, and both median latencies.  The second table is a grid over the
weight, the depth and the length gate, computed from the "without" run's hits and readings
(each hit's coverage once): in ``hybrid`` only its final search is reordered there, while
the real path reorders the first search as well, which can change the hits a second decode
reads.

    python benchmarks/tune_coverage.py bench-data/tune600/clean bench-data/tune600/phone \\
        --out benchmarks/results/tune-coverage.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.audio import decode_audio
from assistant.bench_format import load_benchmark
from assistant.coverage import coverage, reorder
from assistant.evaluate import open_index, ranked_documents, system_runner
from assistant.metrics import reciprocal_rank
from assistant.retrieval import Retriever, short_question
from assistant.runtime import Runtime
from assistant.settings import Settings

VARIANTS = (False, True)  # reorder off, on


class RecordingRetriever(Retriever):
    """A retriever that keeps the last search's readings (the grid reorders its hits)."""

    readings: tuple[list[str], np.ndarray] | None = None

    def _search(self, legs, top_k, kind, heard, timings, readings=None):
        self.readings = readings
        return super()._search(legs, top_k, kind, heard, timings, readings)


def se(values: np.ndarray) -> float:
    return round(float(values.std(ddof=1) / np.sqrt(len(values))), 4)


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
            ranked_documents(replace_hits(reordered)), relevant, 10)
    return ranks


def replace_hits(hits):
    """``ranked_documents`` reads a result's hits."""
    return type("Result", (), {"hits": hits})()


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
    if not settings.coverage_weight:
        parser.error("S2R_COVERAGE_WEIGHT is 0: nothing to compare")
    runtime = Runtime(settings)
    systems = args.systems.split(",")
    rows = []
    for path in args.benchmarks:
        bench = load_benchmark(path)
        queries = bench.queries[: args.limit or None]
        indexed, _ = open_index(bench, runtime)
        retriever = RecordingRetriever(indexed)
        run = {system: system_runner(system, retriever) for system in systems}
        on_settings = indexed.settings
        off_settings = on_settings.replace(coverage_weight=0.0)
        ranks = {(s, v): [] for s in systems for v in VARIANTS}
        ms = {(s, v): [] for s in systems for v in VARIANTS}
        grid = {s: [] for s in systems}
        try:
            for i, query in enumerate(tqdm(queries, desc=bench.name, unit="q")):
                audio = decode_audio(query.audio)
                for system in systems:
                    for variant in VARIANTS if i % 2 else VARIANTS[::-1]:
                        indexed.settings = on_settings if variant else off_settings
                        started = time.perf_counter()
                        result, _ = run[system](audio, query.text)
                        ms[system, variant].append((time.perf_counter() - started) * 1e3)
                        ranks[system, variant].append(reciprocal_rank(
                            ranked_documents(result), set(query.relevant), 10))
                        if not variant:
                            grid[system].append(grid_ranks(
                                result.hits, retriever.readings, set(query.relevant),
                                weights, depths, gates))
        finally:
            indexed.close()
        kinds = [q.kind for q in queries]
        for system in systems:
            off, on = (np.array(ranks[system, v]) for v in VARIANTS)
            diff = on - off
            rows.append({
                "benchmark": bench.name, "system": system, "n_queries": len(diff),
                "settings": {"weight": settings.coverage_weight,
                             "depth": settings.coverage_depth,
                             "max_words": settings.coverage_max_words},
                "mrr@10_without": round(float(off.mean()), 4),
                "mrr@10_with": round(float(on.mean()), 4),
                "difference": round(float(diff.mean()), 4), "difference_se": se(diff),
                "difference_by_kind": {k: round(float(diff[[q == k for q in kinds]].mean()), 4)
                                       for k in sorted({k for k in kinds if k})},
                "p50_ms_without": round(float(np.median(ms[system, False])), 1),
                "p50_ms_with": round(float(np.median(ms[system, True])), 1),
                "grid": [{"weight": w, "depth": d, "max_words": g,
                          "mrr@10": round(float(np.mean([r[w, d, g] for r in grid[system]])), 4)}
                         for w, d, g in itertools.product(weights, depths, gates)],
            })
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "grid"}), flush=True)
    print("| benchmark | system | without | with | difference (SE) | by kind "
          "| p50 without / with |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        by_kind = ", ".join(f"{k} {v:+.3f}" for k, v in r["difference_by_kind"].items())
        print(f"| {r['benchmark']} | {r['system']} | {r['mrr@10_without']:.4f} | "
              f"{r['mrr@10_with']:.4f} | {r['difference']:+.4f} ({r['difference_se']:.4f}) | "
              f"{by_kind} | {r['p50_ms_without']} / {r['p50_ms_with']} ms |")
    print("\n| benchmark | system | best (weight, depth, max words) | MRR@10 | at the settings |")
    print("|---|---|---|---|---|")
    for r in rows:
        best = max(r["grid"], key=lambda g: g["mrr@10"])
        current = next((g["mrr@10"] for g in r["grid"] if (g["weight"], g["depth"], g[
            "max_words"]) == tuple(r["settings"].values())), None)
        print(f"| {r['benchmark']} | {r['system']} | {best['weight']}, {best['depth']}, "
              f"{best['max_words']} | {best['mrr@10']:.4f} | {current} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
