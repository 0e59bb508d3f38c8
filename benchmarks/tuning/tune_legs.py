"""Which legs a search should have and how to fuse them: MRR@10 of every path's readings
(typed reference text, the s2r n-best list, the e2e spelling, the hybrid's readings) under
each fusion (``rrf``, ``dbsf``) and leg set (words = MiniLM + word BM25; chars = character
n-gram BM25; both), on a tuning set (train-split queries only; never run it on the eval split
to choose anything).

Each query is decoded and spelled once; every setting then searches the same readings through
``Retriever.readings_legs``, the code the query paths run.

    python benchmarks/tuning/tune_legs.py bench-data/tune600/clean bench-data/tune600/phone \
        --out benchmarks/results/tune-legs.json
"""

from __future__ import annotations

import argparse

import numpy as np
from tune_hybrid import heard_benchmarks, reciprocal_rank_of, report

from assistant.eval.bench_format import Query
from assistant.retrieval.retriever import hybrid_readings
from assistant.runtime import Runtime
from assistant.settings import FUSIONS, Settings
from assistant.speech.integrated import Recognition, nbest_weights

LEG_SETS = {"words": (True, False), "words+chars": (True, True), "chars": (False, True)}


def readings(path: str, query: Query, recognition: Recognition, spelling: str, share: float
             ) -> tuple[list[str], np.ndarray]:
    """What ``path`` searches with for one query."""
    if path == "text":
        return [query.text], np.ones(1)
    if path == "e2e":
        return ([spelling], np.ones(1)) if spelling else ([], np.zeros(0))
    if path == "hybrid":
        return hybrid_readings(recognition, spelling, share)
    texts = [h.text for h in recognition.hypotheses if h.text]
    return texts, nbest_weights([h for h in recognition.hypotheses if h.text])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--paths", default="text,s2r,e2e,hybrid")
    parser.add_argument("--share", type=float, default=0.1,
                        help="the e2e spelling's share of the 'hybrid' readings (every leg set "
                             "gets the same readings; tune-legs.md was run at 0.1)")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    runtime = Runtime(Settings.load())
    rows = []
    for bench, indexed, retriever, heard in heard_benchmarks(args.benchmarks, runtime):
        for path in args.paths.split(","):
            for legs_name, (words, chars) in LEG_SETS.items():
                for fusion in FUSIONS:
                    ranks = []
                    for query, recognition, spelling in heard:
                        texts, weights = readings(path, query, recognition, spelling,
                                                  args.share)
                        legs = retriever.readings_legs(texts, weights, words=words,
                                                       chars=chars) if texts else []
                        hits = indexed.store.search_legs(legs, top_k=50, fusion=fusion)
                        ranks.append(reciprocal_rank_of(hits, query))
                    rows.append({"benchmark": bench.name, "path": path, "legs": legs_name,
                                 "fusion": fusion, "n_queries": len(ranks),
                                 "mrr@10": round(float(np.mean(ranks)), 4)})
                    print(rows[-1], flush=True)
    report(rows, {"benchmark": "benchmark", "path": "readings", "legs": "legs",
                  "fusion": "fusion"}, args.out)


if __name__ == "__main__":
    main()
