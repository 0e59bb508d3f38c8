"""How much of the e2e spelling the hybrid should take: MRR@10 for several shares, on a tuning
set (train-split queries only; never run it on the eval split to choose anything).

Each query is decoded and spelled once; every share then re-fuses the same readings through
``Retriever.hybrid_legs``, the code ``search_audio_hybrid`` runs for its first search, so
share 0 reproduces ``s2r`` exactly.  (The hybrid's second, context-prompted decode is not run
here: ``Tuning.hybrid_context_hits`` is compared through ``s2r eval``, tune-context.md.)

    python benchmarks/tuning/tune_hybrid.py bench-data/tune600/clean bench-data/tune600/phone \
        --shares 0,0.2,0.4,0.5,0.6,0.7,0.8 --out benchmarks/results/tune-hybrid.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.eval.bench_format import Benchmark, Query, load_benchmark
from assistant.eval.evaluate import open_index, ranked_documents
from assistant.eval.metrics import reciprocal_rank
from assistant.retrieval.retriever import Retriever, SearchResult
from assistant.retrieval.store.base import Hit
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.speech.audio import decode_audio
from assistant.speech.integrated import Recognition


def decode_and_spell(bench: Benchmark, runtime: Runtime
                     ) -> list[tuple[Query, Recognition, str]]:
    """Each query once through the encoder pass, the guarded decode and the e2e head."""
    heard = []
    for query in tqdm(bench.queries, desc=f"{bench.name}: decode + spell", unit="q"):
        audio = decode_audio(query.audio)
        encoder_pass = runtime.query_recognizer.encode(audio, cut=True)
        recognition = runtime.query_recognizer.recognize(
            audio, encoder_pass if encoder_pass.covers(audio) else None)
        spelling = runtime.e2e.spell(encoder_pass.frames(), encoder_pass.seconds).text
        heard.append((query, recognition, spelling))
    return heard


def heard_benchmarks(paths: list[str], runtime: Runtime
                     ) -> Iterator[tuple[Benchmark, Runtime, Retriever, list]]:
    """Each benchmark's indexed runtime, its retriever and its queries decoded and spelled
    once (``decode_and_spell``); the index is closed when the caller moves on."""
    for path in paths:
        bench = load_benchmark(path)
        indexed, _ = open_index(bench, runtime)
        try:
            # the indexed runtime: its collection gives the query decoder's vocabulary
            yield bench, indexed, Retriever(indexed), decode_and_spell(bench, indexed)
        finally:
            indexed.close()


def reciprocal_rank_of(hits: list[Hit], query: Query) -> float:
    """1 / rank of the query's first relevant document within the top 10, else 0."""
    return reciprocal_rank(ranked_documents(SearchResult(hits)), set(query.relevant), 10)


def report(rows: list[dict], columns: dict[str, str], out: str | None) -> None:
    """Print the rows as a Markdown table (``columns``: row key → header, then queries and
    MRR@10) and write them as JSON to ``out``."""
    print("| " + " | ".join([*columns.values(), "queries", "MRR@10"]) + " |")
    print("|" + "---|" * (len(columns) + 2))
    for row in rows:
        cells = [str(row[key]) for key in columns] + [str(row["n_queries"]),
                                                      f"{row['mrr@10']:.4f}"]
        print("| " + " | ".join(cells) + " |")
    if out:
        Path(out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--shares", default="0,0.2,0.4,0.5,0.6,0.7,0.8")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    shares = [float(s) for s in args.shares.split(",")]
    runtime = Runtime(Settings.load())
    rows = []
    for bench, indexed, retriever, heard in heard_benchmarks(args.benchmarks, runtime):
        for share in shares:
            ranks = []
            for query, recognition, spelling in heard:
                legs = retriever.hybrid_legs(recognition, spelling, share)
                fusion = runtime.settings.tuning.fusion
                hits = indexed.store.search_legs(legs, top_k=50, fusion=fusion) if legs else []
                ranks.append(reciprocal_rank_of(hits, query))
            rows.append({"benchmark": bench.name, "share": share, "n_queries": len(ranks),
                         "mrr@10": round(float(np.mean(ranks)), 4)})
    report(rows, {"benchmark": "benchmark", "share": "e2e share"}, args.out)


if __name__ == "__main__":
    main()
