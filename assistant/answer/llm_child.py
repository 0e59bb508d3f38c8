"""The local model server process: llama.cpp's OpenAI-compatible server (xllamacpp), in-process.

Run by ``assistant.answer.local_llm`` as ``python -m assistant.answer.llm_child ...``. It lives
exactly as long as its parent: it blocks reading stdin, a pipe whose other end only the parent
holds, so the parent's exit in any form (a clean stop, SIGTERM, SIGINT, SIGKILL, a crash) reaches it
as end-of-file and it stops. ``atexit`` or a signal handler in the parent alone would miss SIGKILL,
and a server left behind holds gigabytes and keeps using the CPU.
"""

from __future__ import annotations

import argparse
import signal
import sys

import xllamacpp


def _params(args: argparse.Namespace) -> xllamacpp.CommonParams:
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.n_ctx
    params.n_parallel = 1  # one conversation's prefix stays in the one slot's cache
    params.cache_prompt = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.verbosity = 1
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--alias", required=True, help="model name the API reports")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    # SIGTERM and SIGINT end the wait below like end-of-file does, so the server is shut down
    # by its destructor rather than torn down mid-request.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit(0))
    try:
        server = xllamacpp.Server(_params(args))
    except RuntimeError as exc:  # llama.cpp has already logged why (a corrupt GGUF …)
        print(f"s2r: the model server did not start: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        while sys.stdin.buffer.read(4096):  # the parent never writes: only EOF ends this
            pass
    finally:
        del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
