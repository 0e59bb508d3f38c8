"""A probe (tuning set only): rerank the hybrid's top documents by how sure the decoder is after
reading each candidate's names alone.  The idea: the right candidate's names should let the
decoder hear the question with more confidence than a wrong one's.  Each query runs
``search_audio_hybrid``; then, per top document, ``decode_with_context`` with that document's
own title and rare words, and its 1-best's log-probability per word is the fit.  The rows order
the top documents by the hybrid's rank, by fit alone, and by fit times ``w`` minus 0.1 per rank.

    python benchmarks/candidate_rerank.py bench-data/tune600/clean \\
        --out benchmarks/results/candidate-rerank.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm
from tune_hybrid import report

from assistant.audio import decode_audio
from assistant.bench_format import load_benchmark
from assistant.decode_context import candidate_context
from assistant.evaluate import open_index
from assistant.metrics import reciprocal_rank
from assistant.retrieval import Retriever
from assistant.runtime import Runtime
from assistant.settings import Settings

WEIGHTS = (0.5, 1.0, 2.0)


def ordered(documents: list[str], fits: list[float], weight: float | None) -> list[str]:
    """``documents`` by fit (``weight`` None) or by ``weight`` × fit − 0.1 × hybrid rank."""
    scores = np.array(fits) if weight is None else \
        weight * np.array(fits) - 0.1 * np.arange(len(fits))
    return [documents[i] for i in np.argsort(-scores, kind="stable")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", metavar="BENCH_DIR")
    parser.add_argument("--top", type=int, default=8, help="documents to rerank (default 8)")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    runtime = Runtime(Settings.load())
    bench = load_benchmark(args.benchmark)
    indexed, _ = open_index(bench, runtime)
    rows = []
    try:
        retriever, recognizer = Retriever(indexed), indexed.query_recognizer
        orders = {"hybrid": None, "fit alone": None, **{f"{w:g} × fit − 0.1 × rank": w
                                                       for w in WEIGHTS}}
        ranks: dict[str, list[tuple[str, float]]] = {name: [] for name in orders}
        extra_ms = []
        for query in tqdm(bench.queries, desc=bench.name, unit="q"):
            audio = decode_audio(query.audio)
            hits = retriever.search_audio_hybrid(audio, 50).hits
            best = {}  # document → its best chunk
            for hit in hits:
                best.setdefault(hit.payload.get("source"), hit)
            documents = list(best)[: args.top]
            encoder_pass = recognizer.encode(audio, cut=True)
            started = time.perf_counter()
            fits = []
            for document in documents:
                payload = best[document].payload
                heard = recognizer.decode_with_context(audio, encoder_pass, candidate_context(
                    [(payload.get("title") or "", payload.get("text") or "")],
                    recognizer.whisper.hf_tokenizer)) if encoder_pass.covers(audio) else []
                fits.append(heard[0].logprob / max(1, len(heard[0].text.split()))
                            if heard else -99.0)
            extra_ms.append((time.perf_counter() - started) * 1e3)
            for name, weight in orders.items():
                order = documents if name == "hybrid" else \
                    ordered(documents, fits, None if name == "fit alone" else weight)
                ranks[name].append((query.kind or "all",
                                    reciprocal_rank(order, set(query.relevant), 10)))
    finally:
        indexed.close()
    for name, values in ranks.items():
        kinds = sorted({k for k, _ in values})
        rows.append({"benchmark": bench.name, "order": name, "n_queries": len(values),
                     "extra_p50_ms": 0 if name == "hybrid" else round(float(np.median(extra_ms))),
                     "mrr@10_by_kind": {k: round(float(np.mean([r for c, r in values if c == k])),
                                                 4) for k in kinds},
                     "mrr@10": round(float(np.mean([r for _, r in values])), 4)})
    report(rows, {"benchmark": "benchmark", "order": f"top {args.top} ordered by",
                  "extra_p50_ms": "extra p50 ms", "mrr@10_by_kind": "MRR@10 by kind"}, args.out)


if __name__ == "__main__":
    main()
