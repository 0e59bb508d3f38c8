"""Two settings compared query by query, for the tune_* scripts that decide a switch: every
system runs each query under both, in alternating order, through the real query paths
(``evaluate.system_runner``), so that machine noise falls on both sides alike; the summary is
the paired difference of MRR@10 with its standard error, by kind of question, and both
median latencies."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from assistant.eval.bench_format import Query
from assistant.eval.evaluate import ranked_documents, system_runner
from assistant.eval.metrics import reciprocal_rank
from assistant.retrieval.retriever import Retriever
from assistant.settings import Settings
from assistant.speech.audio import decode_audio

VARIANTS = (False, True)  # without, with


@dataclass
class PairedRuns:
    """Reciprocal ranks and milliseconds per (system, variant), in query order."""

    ranks: dict[tuple[str, bool], list[float]] = field(default_factory=dict)
    ms: dict[tuple[str, bool], list[float]] = field(default_factory=dict)


# observe(system, variant, query, result, heard): what a script records besides the rank
Observer = Callable[[str, bool, Query, Any, str | None], None]


def run_paired(retriever: Retriever, systems: list[str], queries: list[Query], desc: str,
               without: Settings, with_: Settings, observe: Observer | None = None,
               switch: Callable[[bool], None] | None = None) -> PairedRuns:
    """Each query through every system under ``without`` and ``with_`` (swapped into the
    retriever's runtime), the order alternating from one query to the next.  ``switch``
    (called with the variant) changes what a swap of settings cannot: a part the runtime
    built once from them."""
    run = {system: system_runner(system, retriever) for system in systems}
    runs = PairedRuns({(s, v): [] for s in systems for v in VARIANTS},
                      {(s, v): [] for s in systems for v in VARIANTS})
    for i, query in enumerate(tqdm(queries, desc=desc, unit="q")):
        audio = decode_audio(query.audio)
        for system in systems:
            for variant in VARIANTS if i % 2 else VARIANTS[::-1]:
                retriever.runtime.settings = with_ if variant else without
                if switch:
                    switch(variant)
                started = time.perf_counter()
                result, heard = run[system](audio, query.text)
                runs.ms[system, variant].append((time.perf_counter() - started) * 1e3)
                runs.ranks[system, variant].append(reciprocal_rank(
                    ranked_documents(result), set(query.relevant), 10))
                if observe:
                    observe(system, variant, query, result, heard)
    return runs


def standard_error(values: np.ndarray) -> float:
    return round(float(values.std(ddof=1) / np.sqrt(len(values))), 4)


def paired_summary(bench: str, system: str, queries: list[Query], runs: PairedRuns
                   ) -> dict[str, Any]:
    """One system's comparison: both MRR@10s, the paired difference (SE), by kind, p50s."""
    off, on = (np.array(runs.ranks[system, v]) for v in VARIANTS)
    diff, kinds = on - off, [q.kind for q in queries]
    return {
        "benchmark": bench, "system": system, "n_queries": len(diff),
        "mrr@10_without": round(float(off.mean()), 4),
        "mrr@10_with": round(float(on.mean()), 4),
        "difference": round(float(diff.mean()), 4), "difference_se": standard_error(diff),
        "difference_by_kind": {k: round(float(diff[[q == k for q in kinds]].mean()), 4)
                               for k in sorted({k for k in kinds if k})},
        "p50_ms_without": round(float(np.median(runs.ms[system, False])), 1),
        "p50_ms_with": round(float(np.median(runs.ms[system, True])), 1),
    }


def print_paired_table(rows: list[dict[str, Any]]) -> None:
    print("| benchmark | system | without | with | difference (SE) | by kind "
          "| p50 without / with |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        by_kind = ", ".join(f"{k} {v:+.3f}" for k, v in r["difference_by_kind"].items())
        print(f"| {r['benchmark']} | {r['system']} | {r['mrr@10_without']:.4f} | "
              f"{r['mrr@10_with']:.4f} | {r['difference']:+.4f} ({r['difference_se']:.4f}) | "
              f"{by_kind} | {r['p50_ms_without']} / {r['p50_ms_with']} ms |")
