"""The local model server process: llama.cpp's OpenAI-compatible server, either xllamacpp
in-process or a ``llama-server`` binary (``--server``, e.g. the build for this CPU that
``scripts/build_llama_server.sh`` makes) as this process's own child.

Run by ``assistant.answer.local_llm`` as ``python -m assistant.answer.llm_child ...``. It lives
exactly as long as its parent: it blocks reading stdin, a pipe whose other end only the parent
holds, so the parent's exit in any form (a clean stop, SIGTERM, SIGINT, SIGKILL, a crash) reaches it
as end-of-file and it stops. ``atexit`` or a signal handler in the parent alone would miss SIGKILL,
and a server left behind holds gigabytes and keeps using the CPU. A ``llama-server`` binary is
stopped when that happens, and is asked by the kernel to die with this process
(``PR_SET_PDEATHSIG``) should it be killed outright.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import subprocess
import sys
import threading
from typing import Any

PR_SET_PDEATHSIG = 1


def _params(params: Any, args: argparse.Namespace) -> Any:
    """``params``: a fresh ``xllamacpp.CommonParams``."""
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.n_ctx
    params.n_parallel = 1  # one conversation's prefix stays in the one slot's cache
    params.cache_prompt = True
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.no_extra_bufts = args.no_repack
    params.verbosity = 1
    return params


def _wait_for_parent_exit() -> None:
    while sys.stdin.buffer.read(4096):  # the parent never writes: only EOF ends this
        pass


def _die_with_this_process() -> None:
    """Run in the forked child before exec: the kernel sends it SIGKILL when we die."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_binary(args: argparse.Namespace) -> int:
    """The same server as a ``llama-server`` binary, with the same settings as ``_params``."""
    command = [args.server, "--model", args.model, "--alias", args.alias,
               "--host", "127.0.0.1", "--port", str(args.port), "--ctx-size", str(args.n_ctx),
               "--parallel", "1", "--threads", str(args.threads),
               "--threads-batch", str(args.threads), "--no-webui",
               *(["--no-repack"] if args.no_repack else []), *args.server_args]
    try:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                  preexec_fn=_die_with_this_process)
    except OSError as exc:
        print(f"s2r: the model server {args.server} could not be run: {exc}", file=sys.stderr,
              flush=True)
        return 1

    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()
        server.terminate()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    threading.Thread(target=lambda: (_wait_for_parent_exit(), stop()), daemon=True).start()
    status = server.wait()
    # stopped as asked: a clean exit; otherwise its own status (a crash by signal N is -N)
    return 0 if stopping.is_set() else (status if status >= 0 else 128 - status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--alias", required=True, help="model name the API reports")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--server", help="a llama-server binary to run instead of xllamacpp")
    parser.add_argument("server_args", nargs="*",
                        help="after --: more arguments for the llama-server binary")
    parser.add_argument("--no-repack", action="store_true",
                        help="keep llama.cpp from repacking the weights: slower generation, "
                             "but a build for an AVX-512 CPU reads a prompt faster without it")
    args = parser.parse_args(argv)
    if args.server:
        return _run_binary(args)
    # SIGTERM and SIGINT end the wait below like end-of-file does, so the server is shut down
    # by its destructor rather than torn down mid-request.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sys.exit(0))
    import xllamacpp  # only the in-process server needs the wheel

    try:
        server = xllamacpp.Server(_params(xllamacpp.CommonParams(), args))
    except RuntimeError as exc:  # llama.cpp has already logged why (a corrupt GGUF …)
        print(f"s2r: the model server did not start: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        _wait_for_parent_exit()
    finally:
        del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
