"""llama.cpp servers side by side: the prebuilt xllamacpp wheel against llama-server built for
this CPU (``scripts/build_llama_server.sh``), each with and without weight repacking (s2r runs
the wheel repacked, llama.cpp's default, and the build for this CPU without).

All serve the same GGUF on the same OpenAI API.  Each round sends the same grounded prompt
(the system prompt, ``--sources`` sources, a question) to each server in turn, with a distinct
question at its very start so no prompt cache helps, and records the time to the first
streamed token, to the end of the first sentence, and the generation rate.  Prints a Markdown
table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from spoken_turns import provenance

import prompts
from assistant.answer.local_llm import NATIVE_SERVER, _free_port
from assistant.models import resolve_llm_gguf
from assistant.settings import Settings

SOURCE = ("Yoga is a group of physical, mental, and spiritual practices or disciplines which "
          "originated in ancient India and aim to control and still the mind. ")


def start(gguf: Path, threads: int, n_ctx: int, binary: Path | None,
          repack: bool) -> tuple[subprocess.Popen, str]:
    """The server as s2r runs it (``llm_child``), but for the repacking choice."""
    port = _free_port()
    command = [sys.executable, "-m", "assistant.answer.llm_child", "--model", str(gguf),
               "--alias", gguf.stem, "--port", str(port), "--n-ctx", str(n_ctx),
               "--threads", str(threads)]
    command += (["--server", str(binary)] if binary else []) + ([] if repack else ["--no-repack"])
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{' '.join(command)} did not start")


def timed_answer(url: str, question: str, max_tokens: int,
                 n_sources: int) -> tuple[float, float, float]:
    """Seconds to the first token and to the first sentence's end, and tokens per second."""
    sources = "\n\n".join(f"[{i}] Source {i}\n{SOURCE * 2}" for i in range(1, n_sources + 1))
    messages = [{"role": "system", "content": f"({question})\n{prompts.load('system')}"},
                {"role": "user", "content": prompts.render("grounded_answer", sources=sources,
                                                            question=question)}]
    body = {"messages": messages, "stream": True, "max_tokens": max_tokens, "temperature": 0.0,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = sentence = None
    pieces = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as response:
        for line in response.iter_lines():
            if not line.startswith("data:") or "[DONE]" in line:
                continue
            choices = json.loads(line[5:]).get("choices") or [{}]
            text = (choices[0].get("delta") or {}).get("content")
            if text:
                first = first or time.perf_counter()
                if sentence is None and any(mark in text for mark in ".!?"):
                    sentence = time.perf_counter()
                pieces += 1
    end = time.perf_counter()
    return first - t0, (sentence or end) - t0, (pieces - 1) / max(end - first, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", default="qwen", help="bundled model name or GGUF path")
    parser.add_argument("--binary", default=str(NATIVE_SERVER),
                        help="the llama-server built for this CPU (default: setup's build)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sources", type=int, default=5,
                        help="sources in the prompt (5: 535 tokens with Qwen2.5; 1: 275)")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out")
    args = parser.parse_args()
    settings = Settings.load(llm_gguf=args.llm)
    gguf = resolve_llm_gguf(args.llm, settings.cache_dir)
    threads, n_ctx = settings.llm_cpu_threads, settings.tuning.llm_n_ctx
    processes, servers = [], {}
    for name, binary in (("xllamacpp (AVX2 wheel)", None),
                         ("llama-server for this CPU", Path(args.binary))):
        for repack in (True, False):
            process, url = start(gguf, threads, n_ctx, binary, repack)
            processes.append(process)
            servers[f"{name}, {'repacked' if repack else 'not repacked'}"] = url
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in servers}
    try:
        for url in servers.values():  # warm-up: the weights paged in, not counted
            timed_answer(url, "warm up?", 4, args.sources)
        for i in range(args.rounds):
            order = list(servers.items())
            for name, url in order[i % len(order):] + order[:i % len(order)]:
                rows[name].append(timed_answer(url, f"Where did practice number {i} begin?",
                                               args.max_tokens, args.sources))
                print(f"round {i + 1} {name}: {rows[name][-1][0]:.2f} s", file=sys.stderr)
    finally:
        for process in processes:
            process.stdin.close()
            process.wait()
    p50 = lambda values: float(np.median(values))  # noqa: E731
    result = {"model": gguf.name, "threads": threads, "rounds": args.rounds,
              "sources": args.sources, **provenance(), "servers": {
                  name: {"first_token_s_p50": round(p50([r[0] for r in v]), 2),
                         "first_sentence_s_p50": round(p50([r[1] for r in v]), 2),
                         "tokens_per_s_p50": round(p50([r[2] for r in v]), 1),
                         "first_token_s": [round(r[0], 2) for r in v]}
                  for name, v in rows.items()}}
    print(f"{result['model']}, {threads} threads, {args.sources} sources, {args.rounds} rounds "
          "interleaved\n")
    print("| server | first token p50 | first sentence p50 | generation p50 |")
    print("|---|---|---|---|")
    for name, r in result["servers"].items():
        print(f"| {name} | {r['first_token_s_p50']:.2f} s | {r['first_sentence_s_p50']:.2f} s "
              f"| {r['tokens_per_s_p50']:.1f} tok/s |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
