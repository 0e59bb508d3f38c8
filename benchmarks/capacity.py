"""Capacity benchmark: how far the embedded store (qdrant-edge) grows on one machine.

For each vector set and quantization setting, one fresh collection is grown through the given
sizes (default 100k, 300k, 1M points).  At each size it reports:

* upsert rate (points/s, batches of ``Tuning.qdrant_upsert_batch``), and the seconds
  ``finish_batch`` (flush + optimize, which builds the HNSW graph) takes;
* query latency p50/p95: plain dense top 10, filtered (``kind=audio``, 10 % of the points),
  and two-vector RRF (dense + BM25 sparse, as every spoken query runs);
* recall@10 of the plain and filtered searches against the engine's exact search;
* resident memory (growth over the process before the store opened, and the peak) and disk.

Vector sets:

* ``random``: a seeded mixture of 1,000 Gaussian clusters on the 384-d unit sphere (cosine to
  the cluster centre ~0.7, like neighbouring MiniLM embeddings), each point with a ~600-character
  text payload and ~10 Zipf-distributed sparse terms.  Queries come from the same clusters.
* ``real``: MiniLM embeddings (the default embedder) of windows of 1 to 8 sentences of the
  10,033 Wikipedia summaries, all 97,200 there are; their BM25 sparse vectors;
  the article descriptions (not in the corpus) as queries.  Embeddings are cached in
  ``<cache_dir>/capacity``.

Each configuration runs in its own subprocess, so memory figures do not leak between them.
Prints a Markdown table and writes everything as JSON (``--out``).

    python benchmarks/capacity.py --out benchmarks/results/capacity.json \\
        > benchmarks/results/capacity.md
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foundation import (
    DIM,
    latency,
    load_wiki,
    machine_info,
    md_table,
    rate,
    recall,
    shard_info,
    temp_dir,
    timed,
)

from assistant.retrieval.chunks import Chunk
from assistant.retrieval.sparse import LexicalEncoder, SparseVector
from assistant.retrieval.store.base import SPARSE_VECTOR, TEXT_VECTOR, StoredPoint
from assistant.retrieval.store.layout import Layout
from assistant.settings import Settings
from assistant.text import split_sentences

CLUSTERS = 1_000
VOCABULARY = 50_000
AUDIO_EVERY = 10  # every 10th point is an audio chunk: the filtered query's 10 %
WORDS = ("coffee transistor river empire theory music protein orbit language harbour "
         "painting election glacier market temple bridge engine poem virus frontier").split()


# -- vector sets --------------------------------------------------------------------------

class RandomSet:
    """Clustered unit vectors, generated batch by batch from the seed (nothing kept in RAM)."""

    name = "random"

    def __init__(self, seed: int, limit: int) -> None:
        self.seed, self.limit = seed, limit
        self.centres = _unit(np.random.default_rng([seed, 0]).standard_normal((CLUSTERS, DIM)))

    def _around_centres(self, rng: np.random.Generator, n: int) -> np.ndarray:
        noise = _unit(rng.standard_normal((n, DIM)))
        return _unit(self.centres[rng.integers(0, CLUSTERS, n)] + noise)

    def batch(self, start: int, stop: int) -> list[StoredPoint]:
        rng = np.random.default_rng([self.seed, 1, start])
        vectors = self._around_centres(rng, stop - start)
        points = []
        for i, vector in zip(range(start, stop), vectors, strict=True):
            terms = np.unique(rng.zipf(1.3, 10) % VOCABULARY)
            text = " ".join(rng.choice(WORDS, 90))
            points.append(_point(i, text, vector, SparseVector(
                tuple(int(t) for t in terms), tuple(1.0 for _ in terms))))
        return points

    def queries(self, n: int) -> tuple[np.ndarray, list[SparseVector]]:
        rng = np.random.default_rng([self.seed, 2])
        terms = [sorted({int(t) for t in rng.zipf(1.3, 3) % VOCABULARY}) for _ in range(n)]
        sparse = [SparseVector(tuple(t), (1.0,) * len(t)) for t in terms]
        return self._around_centres(rng, n), sparse


class RealSet:
    """MiniLM embeddings of Wikipedia sentences; the article descriptions are the queries."""

    name = "real"

    def __init__(self, settings: Settings, limit: int) -> None:
        wiki = load_wiki()
        texts = list(itertools.islice(_wiki_texts(wiki), limit))
        self.texts = texts
        self.limit = len(texts)
        self.descriptions = [a["description"] for a in wiki.values()
                             if len(a.get("description", "").split()) >= 3]
        self.lexical = LexicalEncoder()
        self.vectors = _cached_embeddings(settings, texts, "corpus")
        self._settings = settings

    def batch(self, start: int, stop: int) -> list[StoredPoint]:
        return [_point(i, self.texts[i], self.vectors[i], self.lexical.document(self.texts[i]))
                for i in range(start, stop)]

    def queries(self, n: int) -> tuple[np.ndarray, list[SparseVector]]:
        chosen = self.descriptions[:: max(1, len(self.descriptions) // n)][:n]
        return (_cached_embeddings(self._settings, chosen, f"queries-{n}"),
                [self.lexical.query([q]) for q in chosen])


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _point(i: int, text: str, dense: np.ndarray, sparse: SparseVector) -> StoredPoint:
    kind = "audio" if i % AUDIO_EVERY == 0 else "text"
    chunk = Chunk(kind, f"bench/source-{i // 20}", f"title {i // 20}", text, i, "bench")
    return StoredPoint(chunk, {TEXT_VECTOR: dense, SPARSE_VECTOR: sparse})


def _wiki_texts(wiki: dict[str, dict[str, str]]) -> Iterator[str]:
    """Each summary's windows of 1 to 8 consecutive sentences: 97,200 passages that
    overlap the way s2r's chunks do (62k with windows of 1 and 2 only)."""
    for article in wiki.values():
        sentences = [s for s in split_sentences(article["extract"]) if len(s.split()) >= 4]
        for width in range(1, 9):
            yield from (" ".join(sentences[i : i + width])
                        for i in range(len(sentences) - width + 1))


def _cached_embeddings(settings: Settings, texts: list[str], tag: str) -> np.ndarray:
    key = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    path = settings.cache_dir / "capacity" / f"{tag}-{len(texts)}-{key}.npy"
    if path.exists():
        return np.load(path)
    from tqdm import tqdm

    from assistant.retrieval.embedder import TextEmbedder

    embedder = TextEmbedder(settings)
    step = 512
    parts = [embedder.embed(texts[i : i + step])
             for i in tqdm(range(0, len(texts), step), desc=f"embed {tag}", unit="batch",
                           file=sys.stderr)]
    vectors = np.concatenate(parts).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


# -- measurements ---------------------------------------------------------------------------

def memory_kib() -> dict[str, int]:
    """This process's resident memory (Linux /proc): VmRSS in all, its peak VmHWM, and the
    split into RssAnon (heap: what the store really holds) and RssFile (pages of memory-mapped
    segment files, which the kernel can drop and reread)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0])
    return fields


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def timed_queries(run: Any, n: int) -> tuple[list[list[str]], dict[str, float]]:
    for i in range(min(5, n)):
        run(i)  # warm caches
    ids, ms = [], []
    for i in range(n):
        hits, seconds = timed(lambda i=i: run(i))
        ids.append([h.id for h in hits])
        ms.append(seconds * 1000)
    return ids, latency(np.array(ms))


def exact_ids(store: Any, dense: np.ndarray, kind: str | None = None) -> list[list[str]]:
    """Ground truth: the engine's exact scan over the full vectors (private handle)."""
    import qdrant_edge as qe

    selector = qe.Filter(must=[qe.FieldCondition("kind", match=qe.MatchValue(kind))]) \
        if kind else None
    params = qe.SearchParams(exact=True, quantization=qe.QuantizationSearchParams(ignore=True))
    return [[str(p.id) for p in store._shard.query(qe.QueryRequest(
        limit=10, params=params, filter=selector,
        query=qe.Query.Nearest(q.tolist(), using=TEXT_VECTOR)))] for q in dense]


def run_config(vector_set: str, quantization: str, sizes: list[int], n_queries: int,
               seed: int, on_disk: bool = False) -> dict[str, Any]:
    from assistant.retrieval.store.edge import EdgeStore

    settings = Settings.load()
    data = RandomSet(seed, max(sizes)) if vector_set == "random" else RealSet(settings, max(sizes))
    dense, sparse = data.queries(n_queries)
    layout = Layout.from_settings(settings.replace(qdrant_quantization=quantization,
                                                   qdrant_on_disk=on_disk))
    sizes = sorted({min(s, data.limit) for s in sizes})
    baseline = memory_kib()
    levels = []
    with temp_dir("capacity") as tmp:
        store = EdgeStore(tmp / "col", DIM, "bench", layout)
        done = 0
        for size in sizes:
            upsert_s = 0.0
            for start in range(done, size, layout.upsert_batch):
                batch = data.batch(start, min(start + layout.upsert_batch, size))
                upsert_s += timed(lambda b=batch: store.upsert(b))[1]
            _, finish_s = timed(store.finish_batch)
            plain, plain_lat = timed_queries(lambda i: store.search(dense[i]), n_queries)
            filtered, filtered_lat = timed_queries(
                lambda i: store.search(dense[i], kind="audio"), n_queries)
            _, fused_lat = timed_queries(
                lambda i: store.search_fused(dense[i], sparse[i]), n_queries)
            mem = memory_kib()
            level = {
                "points": store.count(),
                "upsert_points_per_s": rate(size - done, upsert_s),
                "finish_batch_s": round(finish_s, 1),
                **shard_info(store),
                "plain": {**plain_lat, "recall_at_10": recall(exact_ids(store, dense), plain)},
                "filtered": {**filtered_lat,
                             "recall_at_10": recall(exact_ids(store, dense, "audio"), filtered)},
                "rrf": fused_lat,
                "rss_growth_mib": round((mem["VmRSS"] - baseline["VmRSS"]) / 1024),
                "anon_growth_mib": round((mem["RssAnon"] - baseline["RssAnon"]) / 1024),
                "file_growth_mib": round((mem["RssFile"] - baseline["RssFile"]) / 1024),
                "rss_peak_mib": round(mem["VmHWM"] / 1024),
                "disk_mib": round(disk_bytes(tmp / "col") / 2**20),
            }
            print(json.dumps({"progress": vector_set, "quantization": quantization, **level}),
                  file=sys.stderr, flush=True)
            levels.append(level)
            done = size
        store.close()
    return {"vectors": vector_set, "quantization": quantization, "on_disk": on_disk,
            "queries": n_queries,
            "hnsw_m": layout.hnsw_m, "hnsw_ef_construct": layout.hnsw_ef_construct,
            "hnsw_ef": layout.hnsw_ef, "levels": levels}


# -- report ---------------------------------------------------------------------------------

def print_report(results: list[dict[str, Any]], machine: dict[str, Any]) -> None:
    print(f"## s2r capacity benchmark: embedded store (qdrant-edge) - {machine['cpu']}, "
          f"{machine['cores']} cores, {machine['date']}\n")
    rows = []
    for r in results:
        for lv in r["levels"]:
            rows.append([r["vectors"],
                         r["quantization"] + (", on disk" if r.get("on_disk") else ""),
                         f"{lv['points']:,}",
                         f"{lv['upsert_points_per_s']:,.0f}", lv["finish_batch_s"],
                         f"{lv['plain']['p50_ms']} / {lv['plain']['p95_ms']}",
                         lv["plain"]["recall_at_10"],
                         f"{lv['filtered']['p50_ms']} / {lv['filtered']['p95_ms']}",
                         lv["filtered"]["recall_at_10"],
                         f"{lv['rrf']['p50_ms']} / {lv['rrf']['p95_ms']}",
                         f"{lv['anon_growth_mib']:,} + {lv['file_growth_mib']:,}",
                         f"{lv['rss_peak_mib']:,}", f"{lv['disk_mib']:,}"])
    print(md_table(["vectors", "quant.", "points", "upsert pts/s", "index s",
                    "plain p50 / p95 ms", "recall@10", "filtered p50 / p95 ms", "recall@10",
                    "RRF p50 / p95 ms", "RSS growth MiB (heap + mapped)", "RSS peak MiB",
                    "disk MiB"], rows))
    print(f"\nQueries per cell: {results[0]['queries']}; HNSW m={results[0]['hnsw_m']}, "
          f"ef_construct={results[0]['hnsw_ef_construct']}, search ef={results[0]['hnsw_ef']}. "
          "Recall is against the engine's exact scan. Filtered = kind=audio (10 % of points). "
          "RSS growth is over the process before the store opened: heap (RssAnon) plus pages "
          "of memory-mapped segment files (RssFile, reclaimable by the kernel).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,300000,1000000",
                        help="comma-separated collection sizes to grow through")
    parser.add_argument("--vectors", default="random,real", help="random and/or real")
    parser.add_argument("--quantization", default="none,int8", help="none and/or int8")
    parser.add_argument("--on-disk", action="store_true",
                        help="vectors and payload memory-mapped from disk (S2R_QDRANT_ON_DISK)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # VECTORS:QUANT, in a subprocess
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.one:
        vectors, quantization = args.one.split(":")
        print(json.dumps(run_config(vectors, quantization, sizes, args.queries, args.seed,
                                    args.on_disk)))
        return
    results = []
    for vectors, quantization in itertools.product(args.vectors.split(","),
                                                   args.quantization.split(",")):
        done = subprocess.run(
            [sys.executable, __file__, "--one", f"{vectors}:{quantization}", "--sizes",
             args.sizes, "--queries", str(args.queries), "--seed", str(args.seed),
             *(["--on-disk"] if args.on_disk else [])],
            stdout=subprocess.PIPE, text=True, env=os.environ, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    machine = machine_info()
    print_report(results, machine)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "command": " ".join(sys.argv),
                                        "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
