"""llama.cpp servers side by side: xllamacpp (prebuilt, what s2r runs) against llama-cpp-python.

Both serve the same GGUF on the same OpenAI API.  Each round sends the same grounded prompt
(the system prompt, five sources, a question; about 650 tokens) to each server in turn, with a
distinct question at its very start so no prompt cache helps, and records the time to the
first streamed token and the generation rate.  Needs ``pip install 'llama-cpp-python[server]'``
besides s2r's own extras.  Prints a Markdown table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

import prompts
from assistant.answer.local_llm import LocalLLMServer, _free_port
from assistant.models import resolve_llm_gguf
from assistant.settings import Settings

SOURCE = ("Yoga is a group of physical, mental, and spiritual practices or disciplines which "
          "originated in ancient India and aim to control and still the mind. ")


def start_llama_cpp_python(gguf: Path, threads: int, n_ctx: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
         "--n_threads_batch", str(threads), "--verbose", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("llama-cpp-python's server did not start")


def timed_answer(url: str, question: str, max_tokens: int) -> tuple[float, float]:
    """Seconds to the first token, and tokens per second after it."""
    sources = "\n\n".join(f"[{i}] Source {i}\n{SOURCE * 2}" for i in range(1, 6))
    messages = [{"role": "system", "content": f"({question})\n{prompts.load('system')}"},
                {"role": "user", "content": prompts.render("grounded_answer", sources=sources,
                                                            question=question)}]
    body = {"messages": messages, "stream": True, "max_tokens": max_tokens, "temperature": 0.0,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = None
    pieces = 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as response:
        for line in response.iter_lines():
            if not line.startswith("data:") or "[DONE]" in line:
                continue
            choices = json.loads(line[5:]).get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                first = first or time.perf_counter()
                pieces += 1
    end = time.perf_counter()
    return first - t0, (pieces - 1) / max(end - first, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", default="qwen", help="bundled model name or GGUF path")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out")
    args = parser.parse_args()
    settings = Settings.load(llm_gguf=args.llm)
    gguf = resolve_llm_gguf(args.llm, settings.cache_dir)
    threads = settings.llm_cpu_threads
    xl = LocalLLMServer(gguf, threads, settings.tuning.llm_n_ctx)
    xl.start()
    lcp, lcp_url = start_llama_cpp_python(gguf, threads, settings.tuning.llm_n_ctx)
    servers = {"xllamacpp": xl.url, "llama-cpp-python": lcp_url}
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    try:
        for url in servers.values():  # warm-up: the weights paged in, not counted
            timed_answer(url, "warm up?", 4)
        for i in range(args.rounds):
            for name, url in (servers.items() if i % 2 == 0 else reversed(servers.items())):
                rows[name].append(timed_answer(url, f"Where did practice number {i} begin?",
                                               args.max_tokens))
                print(f"round {i + 1} {name}: {rows[name][-1][0]:.2f} s", file=sys.stderr)
    finally:
        xl.stop()
        lcp.terminate()
        lcp.wait()
    result = {"model": gguf.name, "threads": threads, "rounds": args.rounds,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "command": " ".join(["python", *sys.argv]), "servers": {
                  name: {"first_token_s_p50": round(float(np.median([r[0] for r in v])), 2),
                         "tokens_per_s_p50": round(float(np.median([r[1] for r in v])), 1)}
                  for name, v in rows.items()}}
    print(f"{result['model']}, {threads} threads, {args.rounds} rounds interleaved\n")
    print("| server | first token p50 (cold ~650-token prompt) | generation p50 |")
    print("|---|---|---|")
    for name, r in result["servers"].items():
        print(f"| {name} | {r['first_token_s_p50']:.2f} s | {r['tokens_per_s_p50']:.1f} tok/s |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
