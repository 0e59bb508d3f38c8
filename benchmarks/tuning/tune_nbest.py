"""Is the decode's n-best list worth searching, or would its 1-best alone do as well?  On
hand-written natural questions `s2r` heard fewer words wrong than the cascade on every voice
family and still ranked a little worse (natural-questions-avx512.md); the n-best list is what
its search adds to the cascade's.  Each query runs `s2r` twice, with ``s2r_n_best`` 1 and at
its default, in alternating order through the real query path (beam width unchanged), and the
table gives both MRR@10s and their paired difference per voice family.  Choose on dev
questions, never on the natural ones (a check).

    python benchmarks/tuning/tune_nbest.py bench-data/dev240/clean bench-data/dev240/phone \
        bench-data/human --out benchmarks/results/nbest-vs-1best.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from paired import VARIANTS, paired_summary, print_paired_table, run_paired, standard_error

from assistant.eval.bench_format import load_benchmark
from assistant.eval.evaluate import open_index
from assistant.retrieval.retriever import Retriever
from assistant.runtime import Runtime
from assistant.settings import Settings


def by_family(families: list[str], ranks: dict) -> dict[str, dict[str, float]]:
    """Both MRR@10s and their paired difference (with its SE) on each voice family."""
    one, listed = (np.array(ranks["s2r", v]) for v in VARIANTS)
    result = {}
    for family in sorted(set(families)):
        keep = np.array([f == family for f in families])
        diff = listed[keep] - one[keep]
        result[family] = {"n": int(keep.sum()), "mrr@10_1best": round(float(one[keep].mean()), 4),
                          "mrr@10_nbest": round(float(listed[keep].mean()), 4),
                          "difference": round(float(diff.mean()), 4),
                          "difference_se": standard_error(diff)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    runtime = Runtime(Settings.load())
    rows = []
    for path in args.benchmarks:
        bench = load_benchmark(path)
        indexed, _ = open_index(bench, runtime)
        recognizer = indexed.query_recognizer  # built once: its decode config is swapped
        listed = recognizer.config

        def switch(variant: bool, recognizer=recognizer, listed=listed) -> None:
            recognizer.config = listed if variant else replace(listed, n_best=1)

        try:
            runs = run_paired(Retriever(indexed), ["s2r"], bench.queries, bench.name,
                              indexed.settings, indexed.settings, switch=switch)
        finally:
            indexed.close()
        families = [q.family or "-" for q in bench.queries]
        rows.append(paired_summary(bench.name, "s2r", bench.queries, runs)
                    | {"by_family": by_family(families, runs.ranks)})
    print("without: the 1-best alone; with: the n-best list (the default)\n")
    print_paired_table(rows)
    print("\n| benchmark | family | n | 1-best | n-best | difference (SE) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        for family, f in r["by_family"].items():
            print(f"| {r['benchmark']} | {family} | {f['n']} | {f['mrr@10_1best']:.4f} | "
                  f"{f['mrr@10_nbest']:.4f} | {f['difference']:+.4f} ({f['difference_se']:.4f}) |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
