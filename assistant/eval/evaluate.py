"""``s2r eval``: every retrieval system on every spoken query of a benchmark directory.

The corpus is indexed once into a throwaway embedded collection under the cache directory,
keyed by the corpus contents and everything that shapes the vectors, so a second run (or a
second condition of the same corpus) skips indexing.  Queries are decoded before timing:
latency is "decoded audio in, ranked document ids out", models loaded and warmed up.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from assistant.eval.bench_format import Benchmark, BenchmarkError, Query
from assistant.eval.metrics import ndcg_at, recall_at, reciprocal_rank, word_errors
from assistant.index.ingest import Ingestor, sparse_scheme
from assistant.retrieval.retriever import Retriever, SearchResult
from assistant.runtime import Runtime
from assistant.speech.audio import decode_audio
from connectors import TextDocument

SYSTEMS = ("transcript", "cascade", "s2r", "e2e", "hybrid")
NEEDS_E2E = ("e2e", "hybrid")
INDEX_FORMAT = "eval-index-3"  # bump when the way a corpus is indexed changes
RANK_DEPTH = 10
CHUNK_DEPTH = 50  # chunks fetched to fill 10 distinct documents


@dataclass
class QueryOutcome:
    ranked: list[str]
    hypothesis: str | None  # what the system heard (None: no ASR)
    ms: float


def parse_systems(text: str) -> list[str]:
    systems = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise ValueError(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}")
    return systems


def index_key(bench: Benchmark, runtime: Runtime) -> str:
    """Corpus bytes (and spoken passages' bytes) + everything that shapes the stored vectors."""
    s = runtime.settings
    digest = hashlib.sha256(INDEX_FORMAT.encode())
    digest.update(bench.corpus_file.read_bytes())
    for passage in bench.passages:
        if passage.audio is not None:
            digest.update(passage.audio.read_bytes())
    digest.update(f"{runtime.embedder.model_id}|{s.chunk_tokens}|{s.chunk_overlap_tokens}|"
                  f"{s.whisper_model}|{s.tuning.audio_chunk_max_s}|{sparse_scheme(s)}".encode())
    if any(p.audio is not None for p in bench.passages):  # only they get e2e speech vectors
        digest.update(f"|{runtime.e2e.sha256 if runtime.e2e_enabled else 'no-e2e'}".encode())
    return digest.hexdigest()[:20]


def open_index(bench: Benchmark, runtime: Runtime, progress: bool = True
               ) -> tuple[Runtime, bool]:
    """A runtime over the benchmark's cached collection; True when it was already built."""
    key = index_key(bench, runtime)
    data_dir = runtime.settings.cache_dir / "eval" / key
    done = data_dir / "complete"
    indexed = runtime.with_settings(data_dir=data_dir, qdrant_url="", collection="corpus")
    if done.exists():
        return indexed, True
    shutil.rmtree(data_dir, ignore_errors=True)  # a half-built index from an interrupted run
    ingestor = Ingestor(indexed)
    texts = [TextDocument(p.id, p.title, p.text) for p in bench.passages if p.audio is None]
    spoken = [(p.audio, p.id, p.title) for p in bench.passages if p.audio is not None]
    failed = []
    if texts:
        failed += ingestor.ingest_documents(texts, progress=progress).failed
    if spoken:
        failed += ingestor.ingest_recordings(spoken, progress=progress).failed
    if failed:
        indexed.close()
        raise BenchmarkError(f"{bench.corpus_file}: {len(failed)} passage(s) could not be "
                             f"indexed, e.g. {failed[0][0]}: {failed[0][1]}")
    done.write_text(f"{len(bench.passages)} passages\n")
    return indexed, False


def ranked_documents(result: SearchResult) -> list[str]:
    """Chunk hits → distinct document ids in rank order (a document ranks by its best chunk)."""
    ranked: list[str] = []
    for hit in result.hits:
        doc = hit.payload.get("source")
        if doc not in ranked:
            ranked.append(doc)
    return ranked[:RANK_DEPTH]


def system_runner(system: str, retriever: Retriever) -> Callable[[np.ndarray, str], Any]:
    """system → run(audio, reference text) -> (SearchResult, what was heard or None)."""
    if system == "transcript":
        return lambda audio, text: (retriever.search_text(text, CHUNK_DEPTH), None)
    search = {"cascade": retriever.search_audio_cascade, "s2r": retriever.search_audio,
              "e2e": retriever.search_audio_e2e, "hybrid": retriever.search_audio_hybrid}[system]

    def spoken(audio: np.ndarray, text: str):
        result = search(audio, CHUNK_DEPTH)
        return result, result.transcript or ""

    return spoken


def run_system(system: str, bench: Benchmark, retriever: Retriever,
               audios: Sequence[np.ndarray], progress: bool = True) -> list[QueryOutcome]:
    run = system_runner(system, retriever)
    run(audios[0], bench.queries[0].text)  # warm-up, not timed
    outcomes = []
    for query, audio in tqdm(list(zip(bench.queries, audios, strict=True)),
                             desc=f"{bench.name}/{system}", unit="q", disable=not progress):
        started = time.perf_counter()
        result, heard = run(audio, query.text)
        ranked = ranked_documents(result)
        outcomes.append(QueryOutcome(ranked, heard, (time.perf_counter() - started) * 1e3))
    return outcomes


def score(bench: Benchmark, system: str, outcomes: list[QueryOutcome]) -> dict[str, Any]:
    """One result row (the JSON contract of ``s2r eval``)."""
    rel = [q.relevant for q in bench.queries]
    ranked = [o.ranked for o in outcomes]
    mean = lambda f: round(float(np.mean([f(r, s) for r, s in zip(ranked, rel, strict=True)])),  # noqa: E731
                           4)
    pairs = list(zip(bench.queries, outcomes, strict=True))
    wer = _corpus_wer(pairs) if outcomes and outcomes[0].hypothesis is not None else None
    ms = np.array([o.ms for o in outcomes])
    row = {
        "benchmark": bench.name,
        "system": system,
        "n_queries": len(outcomes),
        "mrr@10": mean(lambda r, s: reciprocal_rank(r, set(s), 10)),
        "recall@1": mean(lambda r, s: recall_at(r, set(s), 1)),
        "recall@5": mean(lambda r, s: recall_at(r, set(s), 5)),
        "recall@10": mean(lambda r, s: recall_at(r, set(s), 10)),
        "ndcg@10": mean(lambda r, s: ndcg_at(r, set(s), 10)),
        "wer": wer,
        "latency_p50_ms": round(float(np.percentile(ms, 50)), 1),
        "latency_p95_ms": round(float(np.percentile(ms, 95)), 1),
    }
    # where the misses are: keyword queries suffer most from a misheard name
    row.update(_grouped(pairs, "kind", "mrr@10_by_kind", wer is not None))
    # a decode tuned on some voices must be judged on the others: every family apart
    row.update(_grouped(pairs, "family", "mrr@10_by_family", wer is not None))
    return row


def _corpus_wer(pairs: list[tuple[Query, QueryOutcome]]) -> float:
    """Total word edits over total reference words (corpus-level WER)."""
    errors = [word_errors(q.text, o.hypothesis or "") for q, o in pairs]
    return round(sum(e for e, _ in errors) / max(1, sum(n for _, n in errors)), 4)


def _grouped(pairs: list[tuple[Query, QueryOutcome]], field: str, key: str, with_wer: bool
             ) -> dict[str, dict[str, float]]:
    """MRR@10 (and WER) per value of the query ``field``; nothing when no query has one."""
    groups: dict[str, list[tuple[Query, QueryOutcome]]] = {}
    for q, o in pairs:
        if getattr(q, field):
            groups.setdefault(getattr(q, field), []).append((q, o))
    if not groups:
        return {}
    out = {key: {name: round(float(np.mean([reciprocal_rank(o.ranked, set(q.relevant), 10)
                                             for q, o in group])), 4)
                 for name, group in sorted(groups.items())}}
    if with_wer:
        out[f"wer_by_{field}"] = {name: _corpus_wer(group)
                                  for name, group in sorted(groups.items())}
    return out


def evaluate(benchmarks: Sequence[Benchmark], systems: Sequence[str], runtime: Runtime,
             progress: bool = True) -> dict[str, Any]:
    """Run ``systems`` on every benchmark; returns the JSON document written by ``s2r eval``."""
    rows: list[dict[str, Any]] = []
    info: list[dict[str, Any]] = []
    unavailable = {}
    if not runtime.e2e_enabled:
        unavailable = {s: "off: S2R_E2E_MODEL=none, or the bundled head (made for tiny.en's "
                          "frames) with another Whisper model" for s in systems if s in NEEDS_E2E}
    for bench in benchmarks:
        indexed, cached = open_index(bench, runtime, progress)
        try:
            retriever = Retriever(indexed)
            audios = [decode_audio(q.audio) for q in bench.queries]
            for system in systems:
                if system in unavailable:
                    continue
                rows.append(score(bench, system, run_system(system, bench, retriever, audios,
                                                            progress)))
        finally:
            indexed.close()
        info.append({"benchmark": bench.name, "path": str(bench.root),
                     "passages": len(bench.passages), "queries": len(bench.queries),
                     "skipped_queries": len(bench.skipped), "index_cached": cached})
    return {"rows": rows, "unavailable": unavailable, "benchmarks": info,
            "models": models_used(runtime, systems)}


def models_used(runtime: Runtime, systems: Sequence[str]) -> dict[str, str]:
    """Which weights produced the numbers: the Whisper model, the decoder adapter of the
    integrated decode (``unused`` when no system ran it, so a text-only run does not load
    and merge it just to name it) and the e2e head (``none`` when off)."""
    from assistant.models import resolve_whisper

    s = runtime.settings
    return {"whisper": resolve_whisper(s.whisper_model, s.cache_dir).name,
            "decoder_adapter": runtime.transcriber.adapter_id
            if {"s2r", "hybrid"} & set(systems) else "unused",
            "e2e": runtime.e2e.sha256[:16] if runtime.e2e_enabled else "none",
            "embedder": runtime.embedder.model_id, "spoken_vocabulary": s.tuning.s2r_vocabulary}


def markdown_table(result: dict[str, Any]) -> str:
    header = ("| benchmark | system | queries | MRR@10 | R@1 | R@5 | R@10 | nDCG@10 | WER | "
              "p50 ms | p95 ms |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for r in result["rows"]:
        wer = "–" if r["wer"] is None else f"{r['wer']:.3f}"
        lines.append(f"| {r['benchmark']} | {r['system']} | {r['n_queries']} | {r['mrr@10']:.3f} "
                     f"| {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | "
                     f"{r['ndcg@10']:.3f} | {wer} | {r['latency_p50_ms']:.0f} | "
                     f"{r['latency_p95_ms']:.0f} |")
    for field, title in (("kind", "query kind"), ("family", "voice family")):
        lines += _grouped_table(result["rows"], field, title)
    for system, why in result["unavailable"].items():
        lines.append(f"\n`{system}`: {why}.")
    return "\n".join(lines)


def _grouped_table(rows: list[dict[str, Any]], field: str, title: str) -> list[str]:
    """MRR@10 (with WER beside it where the system heard words) per kind or voice family."""
    names = sorted({k for r in rows for k in r.get(f"mrr@10_by_{field}", {})})
    if not names:
        return []
    lines = ["", f"MRR@10 (WER) by {title}:", "",
             "| benchmark | system | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for r in rows:
        mrr, wer = r.get(f"mrr@10_by_{field}", {}), r.get(f"wer_by_{field}", {})
        cells = [(f"{mrr[n]:.3f}" + (f" ({wer[n]:.3f})" if n in wer else "")) if n in mrr
                 else "–" for n in names]
        lines.append(f"| {r['benchmark']} | {r['system']} | " + " | ".join(cells) + " |")
    return lines


def plot(result: dict[str, Any], path: Path) -> None:
    """MRR@10 per system and benchmark (condition) beside per-query latency."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 's2r[plot]'") from exc
    rows = result["rows"]
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    value = {(r["benchmark"], r["system"]): r for r in rows}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        xs = [b + i * width for b in range(len(benches))]
        left.bar(xs, [value.get((b, system), {}).get("mrr@10", 0) for b in benches], width,
                 label=system)
        right.bar(xs, [value.get((b, system), {}).get("latency_p50_ms", 0) for b in benches],
                  width, label=system)
    for ax, title in ((left, "MRR@10"), (right, "latency p50 (ms), audio in → ranked ids")):
        ax.set_xticks([b + 0.4 - width / 2 for b in range(len(benches))], benches)
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
