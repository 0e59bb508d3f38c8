"""What the answering and voice-loop benchmarks share: their common flags, the dev corpus
opened with the local model, percentiles, and printing plus saving the result."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assistant.eval.bench_format import Benchmark, load_benchmark
from assistant.eval.evaluate import open_index
from assistant.runtime import Runtime
from assistant.settings import Settings


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--bench", default="bench-data/dev/clean",
                   help="benchmark directory from `s2r bench build` (default "
                   "bench-data/dev/clean)")
    p.add_argument("--seed", type=int, default=0, help="seed of the question sample")
    p.add_argument("--llm", default="", help="local model: qwen, smollm2 or a GGUF path "
                   "(default: the best installed)")
    p.add_argument("--temperature", type=float,
                   help="the model's sampling temperature (default: s2r's, 0.2); 0 makes two "
                        "runs comparable answer by answer")
    p.add_argument("--out", help="write the results as JSON")
    return p


def open_bench(args: argparse.Namespace) -> tuple[Benchmark, Runtime, Runtime]:
    """The benchmark, a runtime over its cached index with the local model, and the base
    runtime (close both)."""
    bench = load_benchmark(Path(args.bench))
    base = Runtime(Settings.load(llm_gguf=args.llm, llm_url=""))
    runtime, _ = open_index(bench, base, progress=sys.stderr.isatty())
    if args.temperature is not None:  # before the model's config is made from the settings
        runtime.settings = runtime.settings.replace(llm_temperature=args.temperature)
    return bench, runtime, base


def provenance() -> dict[str, str]:
    """Where, when and how a result was measured, for its JSON."""
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "date": dt.date.today().isoformat(), "command": " ".join(["python", *sys.argv])}


def percentiles(values: list[float]) -> dict[str, Any]:
    """n, p50 and p95 of a stage's values (None for a stage no turn reached)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None}
    return {"n": len(values), "p50": round(float(np.percentile(values, 50)), 1),
            "p95": round(float(np.percentile(values, 95)), 1)}


def report(result: dict[str, Any], markdown: Callable[[dict[str, Any]], str],
           out: str | None) -> None:
    print(markdown(result))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
