"""Answering benchmark: spoken questions of the dev benchmark, answered end to end.

For a seeded sample of queries from a benchmark directory (``s2r bench build``), each spoken
question goes through the whole turn with the real local model: integrated S2R retrieval, the
prompt with numbered sources, streamed generation.  Per query it records, from the end of the
audio (the decoded clip handed over, models loaded and warm):

* ``sources_ms``      - until the ranked sources exist (VAD gate, S2R decode, embed, search);
* ``first_token_ms``  - until the model's first answer token;
* ``total_ms``        - until the answer is complete;

and splits the turn into stages: retrieval, prompt processing (sources → first token) and
generation (first token → end).  Grounding is counted too: whether a relevant passage was among
the sources, and whether the answer cited it.  Several ``--top-k`` values run on the same
queries, so the cost of a longer context is measured side by side.  Prints a Markdown table and
writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import sys
from typing import Any

import numpy as np
import spoken_turns

from assistant.answering import Answerer, Question
from assistant.audio import decode_audio
from assistant.conversation import Conversation

IDK = "don't know"


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench, runtime, base = spoken_turns.open_bench(args)
    queries = random.Random(args.seed).sample(bench.queries, min(args.queries, len(bench.queries)))
    print(f"model: {runtime.llm.description}", file=sys.stderr)
    clips = [decode_audio(q.audio) for q in queries]
    Answerer(runtime, Conversation(0)).answer(Question(text="warm up"))  # load every model
    configs = []
    for top_k in args.top_k:
        answerer = Answerer(runtime, Conversation(0))
        rows = []
        for i, (query, clip) in enumerate(zip(queries, clips, strict=True)):
            deltas: list[str] = []
            answer = answerer.answer(Question(audio=clip), on_delta=deltas.append, top_k=top_k)
            sources = [h.payload.get("source") for h in answer.sources]
            cited = {sources[n - 1] for n in answer.cited}
            t = answer.timings_ms
            rows.append({
                "query": query.id, "heard": answer.transcript, "answer": answer.text,
                "sources_ms": round(t["retrieve"], 1),
                "first_token_ms": round(t.get("first_token", t["total"]), 1),
                "total_ms": round(t["total"], 1), "pieces": len(deltas),
                "relevant_in_sources": bool(query.relevant & set(sources)),
                "cited_relevant": bool(query.relevant & cited),
                "cited_any": bool(answer.cited), "i_dont_know": IDK in answer.text,
                "error": answer.error})
            print(f"top_k {top_k} [{i + 1}/{len(queries)}] {rows[-1]['total_ms']:.0f} ms",
                  file=sys.stderr)
        configs.append(summarise(top_k, rows))
    result = {
        "benchmark": str(bench.root), "queries": len(queries), "seed": args.seed,
        "model": runtime.llm.description, "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} cores", "date": dt.date.today().isoformat(),
        "command": " ".join(["python", *sys.argv]), "configs": configs}
    runtime.close()
    base.close()
    return result


def summarise(top_k: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    sources = [r["sources_ms"] for r in rows]
    first = [r["first_token_ms"] for r in rows]
    total = [r["total_ms"] for r in rows]
    stages = {"retrieval": np.median(sources),
              "prompt processing": np.median(np.subtract(first, sources)),
              "generation": np.median(np.subtract(total, first))}
    share = lambda key: round(float(np.mean([r[key] for r in rows])), 3)  # noqa: E731
    return {
        "top_k": top_k,
        "sources_ms": {"p50": percentile(sources, 50), "p95": percentile(sources, 95)},
        "first_token_ms": {"p50": percentile(first, 50), "p95": percentile(first, 95)},
        "total_ms": {"p50": percentile(total, 50), "p95": percentile(total, 95)},
        "stage_median_ms": {k: round(float(v), 1) for k, v in stages.items()},
        "dominant_stage": max(stages, key=stages.get),
        "relevant_in_sources": share("relevant_in_sources"),
        "cited_relevant": share("cited_relevant"), "cited_any": share("cited_any"),
        "i_dont_know": share("i_dont_know"), "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"{result['queries']} spoken queries from `{result['benchmark']}`, model "
             f"{result['model']}, {result['machine']}", "",
             "| top-k | sources p50 / p95 | first token p50 / p95 | total p50 / p95 | "
             "retrieval / prompt / generation (median) | dominant | relevant in sources | "
             "cites relevant | cites any | \"don't know\" |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["configs"]:
        s = c["stage_median_ms"]
        lines.append(
            f"| {c['top_k']} | {c['sources_ms']['p50']:.0f} / {c['sources_ms']['p95']:.0f} ms | "
            f"{c['first_token_ms']['p50']:.0f} / {c['first_token_ms']['p95']:.0f} ms | "
            f"{c['total_ms']['p50']:.0f} / {c['total_ms']['p95']:.0f} ms | "
            f"{s['retrieval']:.0f} / {s['prompt processing']:.0f} / {s['generation']:.0f} ms | "
            f"{c['dominant_stage']} | {c['relevant_in_sources']:.2f} | "
            f"{c['cited_relevant']:.2f} | {c['cited_any']:.2f} | {c['i_dont_know']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = spoken_turns.parser(__doc__)
    parser.add_argument("--queries", type=int, default=20, help="queries sampled (default 20)")
    parser.add_argument("--top-k", type=lambda s: [int(k) for k in s.split(",")], default=[3],
                        help="comma-separated sources per prompt to compare (default 3)")
    args = parser.parse_args()
    spoken_turns.report(run(args), markdown, args.out)


if __name__ == "__main__":
    main()
