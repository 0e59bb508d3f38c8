"""The embedded answer model: llama.cpp's OpenAI-compatible server as a child process.

Running the model behind the same HTTP API as a remote endpoint means one client code path for
both.  The server listens on 127.0.0.1 on a free port, is health-checked before use (its
``/v1/models`` answers once the weights are loaded) and is stopped with s2r, however s2r ends:
the child (``assistant.answer.llm_child``) watches a pipe that only this process holds open.
The server is the llama-server that setup built for this CPU when there is one (it reads
prompts about twice as fast as the AVX2-only wheel on an AVX-512 CPU), else xllamacpp.  OpenMP
is told not to spin: spinning threads collapse llama.cpp to ~1 token/s when other work shares
the cores.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from assistant.models import resolve_llm_gguf
from assistant.settings import Settings

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0


NATIVE_SERVER = Path(sys.prefix) / "llama.cpp" / "bin" / "llama-server"
# Prompt-lookup drafting for setup's build: an answer copies phrases from its sources, so the
# model checks drafts taken from the prompt's own 3-grams in one pass.  On 40 dev questions it
# wrote 20 % faster and spoke sooner (p50 -0.17 s, p95 -1.3 s; benchmarks/results/answering.md).
NATIVE_SERVER_ARGS = ("--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3",
                      "--spec-ngram-simple-size-m", "8")


class LocalLLMError(RuntimeError):
    """The local model server could not be started."""


def resolve_llm_server(value: str) -> tuple[Path | None, list[str]]:
    """The llama-server binary to run and its extra arguments; (None, []) for the in-process
    xllamacpp server.  ``value``: "" (the build for this CPU if setup made one, with
    ``NATIVE_SERVER_ARGS``), "xllamacpp", or a command line: a path, then any arguments."""
    if value == "xllamacpp":
        return None, []
    if not value:
        if os.access(NATIVE_SERVER, os.X_OK):
            return NATIVE_SERVER, list(NATIVE_SERVER_ARGS)
        return None, []
    program, *args = shlex.split(value)
    path = Path(program).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise LocalLLMError(f"S2R_LLM_SERVER={value}: {program} is not an executable file (a "
                            "llama-server binary and its arguments, or 'xllamacpp')")
    return path.resolve(), args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalLLMServer:
    """Start with ``start()`` (or ``with``); ``url`` is then the OpenAI base URL."""

    def __init__(self, gguf: Path, threads: int, n_ctx: int,
                 server_binary: Path | None = None, server_args: Sequence[str] = ()) -> None:
        """``server_binary``: a llama-server to run, with ``server_args`` added to its command
        line; None runs xllamacpp in-process (and takes no arguments)."""
        self.gguf = gguf
        self.server_binary = server_binary
        self.server_args = list(server_args)
        self.model = gguf.stem
        self.threads = threads
        self.n_ctx = n_ctx
        self.url = ""
        self._process: subprocess.Popen | None = None
        # the server's output, kept for the error message if it fails to start
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalLLMServer | None:
        """A server for the configured local model, or None when there is none to run."""
        gguf = resolve_llm_gguf(settings.llm_gguf, settings.cache_dir)
        if gguf is None:
            return None
        binary, args = resolve_llm_server(settings.llm_server)
        if binary is None and importlib.util.find_spec("xllamacpp") is None:
            if settings.llm_gguf:
                raise LocalLLMError("a local model is configured but xllamacpp (llama.cpp's "
                                    "server) is not installed: pip install 's2r[llm]'")
            return None
        return cls(gguf, settings.llm_cpu_threads, settings.tuning.llm_n_ctx, binary, args)

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
        if self._process is not None:
            return self.url
        port = _free_port()
        command = [sys.executable, "-m", "assistant.answer.llm_child", "--model", str(self.gguf),
                   "--alias", self.model, "--port", str(port), "--n-ctx", str(self.n_ctx),
                   "--threads", str(self.threads)]
        if self.server_binary is not None:
            # unrepacked weights: the build for an AVX-512 CPU reads a prompt 1.3x as fast
            # (to the first word, that outweighs its slower writing); the AVX2 wheel gains
            # nothing from it (benchmarks/results/llm-servers.md)
            command += ["--server", str(self.server_binary), "--no-repack", "--",
                        *self.server_args]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        log.info("starting local model %s on port %d (%s)", self.gguf.name, port,
                 self.server_binary or "xllamacpp")
        # stdin is the lifeline: the child stops when this end closes (see llm_child)
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.PIPE, env=env)
        atexit.register(self.stop)
        self.url = f"http://127.0.0.1:{port}"
        self._wait_healthy(timeout_s)
        return self.url

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.output_tail()
                self._process.stdin.close()
                self._process = None
                raise LocalLLMError(f"local model server exited while starting:\n{tail}")
            try:
                if httpx.get(self.url + "/v1/models", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise LocalLLMError(f"local model server not ready after {timeout_s:g} s")

    def healthy(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            return False
        try:
            return httpx.get(self.url + "/v1/models", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def output_tail(self, lines: int = 20) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.stdin.close()
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
