"""Do faster and slower copies of an unsure question help ``hybrid`` (``S2R_HYBRID_SPEEDS``)?
Each query of a tuning set (train-split queries only; never choose on the eval split) runs
``hybrid`` twice, without and with the copies' n-best lists joined to the first decode's, in
alternating order, through the real query path; the table gives both MRR@10s, their paired
difference with its standard error, the difference on each kind of question, and both
median latencies.

    python benchmarks/tune_speeds.py bench-data/tune600/clean bench-data/tune600/phone \\
        --speeds 0.9,1.1 --out benchmarks/results/tune-speeds.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paired import paired_summary, print_paired_table, run_paired

from assistant.bench_format import load_benchmark
from assistant.evaluate import open_index
from assistant.retrieval import Retriever
from assistant.runtime import Runtime
from assistant.settings import Settings, SettingsError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--speeds", default="0.9,1.1", help="the copies' speeds (default "
                        "0.9,1.1)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    settings = Settings.load(hybrid_speeds="")
    try:
        settings.replace(hybrid_speeds=args.speeds)
    except SettingsError as exc:
        parser.error(str(exc))
    rows = []
    for path in args.benchmarks:
        bench = load_benchmark(path)
        queries = bench.queries[: args.limit or None]
        indexed, _ = open_index(bench, Runtime(settings))
        try:
            runs = run_paired(Retriever(indexed), ["hybrid"], queries, bench.name,
                              indexed.settings, indexed.settings.replace(hybrid_speeds=args.speeds))
        finally:
            indexed.close()
        rows.append(paired_summary(bench.name, "hybrid", queries, runs) | {"speeds": args.speeds})
        print(json.dumps(rows[-1]), flush=True)
    print_paired_table(rows)
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
