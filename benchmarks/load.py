"""Load benchmark: concurrent clients with spoken questions against a real `s2r serve`.

`s2r serve` runs as its own process on 127.0.0.1 over the dev benchmark's indexed corpus
(10,033 passages, the embedded store).  N clients send the benchmark's spoken questions for a
fixed time (and at most a fixed number of requests), each waiting for its answer before the
next.  Three paths are loaded one after the other, each on a fresh server:

* ``health``   - ``GET /healthz``: the HTTP stack alone;
* ``retrieve`` - ``POST /v1/retrieve`` with the recording: S2R decode + embedded store, no LLM;
* ``chat``     - ``POST /v1/chat/completions`` with the recording as ``input_audio``: the same
  retrieval plus a grounded answer from the bundled local model.

For each it reports throughput, latency p50/p95/p99, errors (any non-2xx or failed request),
and the server's resident memory sampled every second: at the start, the end, the peak, and
its trend over the second half of the run (MB/min; ~0 means no growth).  Prints a Markdown
table and writes JSON (``--out``).

    python benchmarks/load.py --clients 4 --seconds 60 --out benchmarks/results/load.json
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spoken_turns
from foundation import machine_info, md_table

from assistant.models import resolve_llm_gguf

PATHS = ("health", "retrieve", "chat")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`s2r serve` in a child process; ready once /healthz answers 200."""

    def __init__(self, env: dict[str, str], startup_s: float = 300.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"s2r serve exited: {self.process.stderr.read()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1)
        self.close()
        raise RuntimeError(f"s2r serve not ready after {startup_s:g} s")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def request_for(path: str, clip: bytes) -> dict[str, Any]:
    if path == "health":
        return {"method": "GET", "url": "/healthz"}
    if path == "retrieve":
        return {"method": "POST", "url": "/v1/retrieve", "data": {"top_k": "5"},
                "files": {"file": ("q.flac", clip, "audio/flac")}}
    part = {"type": "input_audio", "input_audio": {
        "data": base64.b64encode(clip).decode(), "format": "flac"}}
    return {"method": "POST", "url": "/v1/chat/completions",
            "json": {"messages": [{"role": "user", "content": [part]}]}}


async def load(server: Server, path: str, clips: list[bytes], clients: int, seconds: float,
               max_requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    memory: list[tuple[float, float]] = []
    started = time.monotonic()
    stop_at = started + seconds
    issued = 0

    async def client(index: int) -> None:
        nonlocal issued
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as http:
            turn = index
            while time.monotonic() < stop_at and issued < max_requests:
                issued += 1
                t0 = time.perf_counter()
                try:
                    response = await http.request(**request_for(path, clips[turn % len(clips)]))
                    if response.status_code >= 300:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                    else:
                        latencies.append((time.perf_counter() - t0) * 1000)
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                turn += clients

    async def sample_memory() -> None:
        while time.monotonic() < stop_at:
            memory.append((time.monotonic() - started, rss_mb(server.process.pid)))
            await asyncio.sleep(1.0)

    await asyncio.gather(sample_memory(), *(client(i) for i in range(clients)))
    elapsed = time.monotonic() - started
    ms = np.array(latencies) if latencies else np.array([np.nan])
    t, rss = np.array([m[0] for m in memory]), np.array([m[1] for m in memory])
    half = t >= t[-1] / 2
    slope = float(np.polyfit(t[half], rss[half], 1)[0] * 60) if half.sum() > 2 else float("nan")
    return {
        "path": path, "clients": clients, "seconds": round(elapsed, 1),
        "requests": len(latencies) + len(errors), "ok": len(latencies), "errors": len(errors),
        "error_samples": errors[:5],
        "throughput_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "rss_start_mb": round(float(rss[0]), 1), "rss_end_mb": round(float(rss[-1]), 1),
        "rss_peak_mb": round(float(rss.max()), 1),
        "rss_trend_mb_per_min": round(slope, 2),
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    rows = [[r["path"], r["clients"], r["requests"], r["errors"], r["throughput_per_s"],
             r["p50_ms"], r["p95_ms"], r["p99_ms"],
             f"{r['rss_start_mb']:.0f} → {r['rss_end_mb']:.0f} (peak {r['rss_peak_mb']:.0f})",
             r["rss_trend_mb_per_min"]] for r in result["runs"]]
    return (f"## s2r load benchmark - {m['cpu']}, {m['cores']} cores, {m['date']}\n\n"
            f"`s2r serve` on loopback over {result['corpus']}; {result['seconds']:g} s per path; "
            f"model: {result['model']}.\n\n"
            + md_table(["path", "clients", "requests", "errors", "req/s", "p50 ms", "p95 ms",
                        "p99 ms", "server RSS MB", "RSS trend MB/min (2nd half)"], rows)
            + f"\n\nCommand: `{result['command']}`\n")


def main() -> None:
    p = spoken_turns.parser(__doc__)
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    p.add_argument("--seconds", type=float, default=60.0, help="load time per path")
    p.add_argument("--max-requests", type=int, default=5000, help="cap per path")
    p.add_argument("--paths", default=",".join(PATHS), help="which of " + ", ".join(PATHS))
    p.add_argument("--questions", type=int, default=40, help="distinct spoken questions")
    args = p.parse_args()
    bench, runtime, base = spoken_turns.open_bench(args)
    settings = runtime.settings
    gguf = resolve_llm_gguf(args.llm, settings.cache_dir) if "chat" in args.paths else None
    model = gguf.name if gguf else "none (extractive answers)"
    runtime.close()  # the embedded store admits one process: the server's
    base.close()
    clips = [Path(q.audio).read_bytes() for q in bench.queries[: args.questions]]
    env = {**os.environ, "S2R_DATA_DIR": str(settings.data_dir),
           "S2R_COLLECTION": settings.collection, "S2R_QDRANT_URL": "",
           "S2R_LLM_URL": "", "S2R_LLM_GGUF": args.llm}
    runs = []
    for path in args.paths.split(","):
        server = Server(env)
        try:
            print(f"loading {path} with {args.clients} clients for {args.seconds:g} s …",
                  file=sys.stderr)
            runs.append(asyncio.run(load(server, path, clips, args.clients, args.seconds,
                                         args.max_requests)))
            print(json.dumps(runs[-1]), file=sys.stderr)
        finally:
            server.close()
    result = {"machine": machine_info(), "command": " ".join(sys.argv),
              "corpus": f"{bench.root} ({len(bench.passages)} passages)", "model": model,
              "seconds": args.seconds, "runs": runs}
    spoken_turns.report(result, markdown, args.out)


if __name__ == "__main__":
    main()
