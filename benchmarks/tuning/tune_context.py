"""How many of its first search's top hits the hybrid's second decode should read
(``Tuning.hybrid_context_hits``), and whether that decode's n-best list should replace the first
one or join it, and above which sureness of the first decode to skip it
(``Tuning.hybrid_trust_logprob``): MRR@10 on a tuning set (train-split queries only; never choose
on the eval split).

Each query is decoded and spelled once and searched as the hybrid's first search does
(``Retriever.hybrid_legs``).  Each hit count then runs the second decode through
``Retriever.reread``, the code ``search_audio_hybrid`` runs.

    python benchmarks/tuning/tune_context.py bench-data/tune600/clean bench-data/tune600/phone \
        --hits 3,5,8 --out benchmarks/results/tune-context.json
    python benchmarks/tuning/tune_context.py bench-data/tune600/clean bench-data/tune600/phone \
        --hits 5 --trust=-0.2,-0.3,-0.4,-0.5 --out benchmarks/results/tune-trust.json

With ``--trust``, each threshold adds rows (for ``replace`` and ``join``) in which a query whose
first decode scores above it (log-probability per word) keeps its first search, with the share
of queries decoded twice.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from tqdm import tqdm
from tune_hybrid import heard_benchmarks, reciprocal_rank_of, report

from assistant.retrieval.retriever import Retriever
from assistant.retrieval.store.base import Hit
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.speech.audio import decode_audio
from assistant.speech.integrated import Recognition


def hybrid_hits(retriever: Retriever, recognition: Recognition, spelling: str, share: float
                ) -> list[Hit]:
    """The top 50 of the hybrid's search over these readings."""
    legs = retriever.hybrid_legs(recognition, spelling, share)
    runtime = retriever.runtime
    return runtime.store.search_legs(legs, top_k=50, fusion=runtime.settings.tuning.fusion) \
        if legs else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--hits", default="3,5,8", help="top-hit counts to compare")
    parser.add_argument("--trust", default="",
                        help="first-decode log-probabilities per word above which to skip the "
                             "second decode, e.g. -0.3,-0.4")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    counts = [int(k) for k in args.hits.split(",")]
    thresholds = [float(t) for t in args.trust.split(",") if t]
    runtime = Runtime(Settings.load())
    share = runtime.settings.tuning.hybrid_e2e_weight
    rows = []
    for bench, indexed, retriever, heard in heard_benchmarks(args.benchmarks, runtime):
        recognizer = indexed.query_recognizer

        ranks: dict[tuple[int, str], list[float]] = {(0, "first decode only"): []}
        sureness = np.array([recognition.logprob_per_word for _, recognition, _ in heard])
        for query, recognition, spelling in tqdm(heard, desc=f"{bench.name}: second decode",
                                                 unit="q"):
            hits = hybrid_hits(retriever, recognition, spelling, share)
            first = reciprocal_rank_of(hits, query)
            ranks[(0, "first decode only")].append(first)
            audio = decode_audio(query.audio)
            encoder_pass = recognizer.encode(audio, cut=True)
            for count in counts:
                second = []
                if hits and encoder_pass.covers(audio):
                    second = retriever.reread(audio, encoder_pass, hits[:count])
                for mode, hypotheses in (("replace", second),
                                         ("join", recognition.hypotheses + second)):
                    ranks.setdefault((count, mode), []).append(
                        reciprocal_rank_of(hybrid_hits(
                            retriever, replace(recognition, hypotheses=hypotheses), spelling,
                            share), query) if second else first)
        first = np.array(ranks[(0, "first decode only")])
        decoded_twice = {mode: float(count > 0) for count, mode in ranks}
        for threshold in thresholds:
            trusted = sureness > threshold
            for how in ("replace", "join"):
                mode = f"{how}, trusted above {threshold:g}"
                decoded_twice[mode] = float(np.mean(~trusted))
                for count in counts:
                    ranks[(count, mode)] = list(np.where(trusted, first,
                                                         ranks[(count, how)]))
        rows += [{"benchmark": bench.name, "hits": count, "n_best": mode,
                  "decoded_twice": round(decoded_twice[mode], 2),
                  "n_queries": len(values), "mrr@10": round(float(np.mean(values)), 4)}
                 for (count, mode), values in ranks.items()]
    report(rows, {"benchmark": "benchmark", "hits": "top hits read",
                  "n_best": "second n-best", "decoded_twice": "share decoded twice"},
           args.out)


if __name__ == "__main__":
    main()
