"""The embedded answer model: resolving the bundled GGUF files and running llama.cpp's
OpenAI-compatible server (the xllamacpp wheel, or the llama-server that setup built for this
CPU) as a child process that never outlives s2r."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.answer.chat_client import ChatClient, ChatConfig
from assistant.answer.local_llm import (
    NATIVE_SERVER,
    NATIVE_SERVER_ARGS,
    LocalLLMError,
    LocalLLMServer,
    resolve_llm_server,
)
from assistant.models import ModelNotFoundError, _join_checked, resolve_llm_gguf
from assistant.settings import Settings

GUARD_S = 240  # only keeps a test that fails from hanging: no passing test waits this long
CPU_HAS_AVX512 = "avx512f" in Path("/proc/cpuinfo").read_text().split()
# setup builds llama-server for CPUs with AVX-512 (scripts/build_llama_server.sh) unless told not to
NATIVE_EXPECTED = CPU_HAS_AVX512 and os.environ.get("S2R_LLAMA_BUILD", "auto") != "no"
# the servers s2r can run: "" is the default choice, the build for this CPU where there is one
SERVERS = ["xllamacpp", pytest.param("", marks=pytest.mark.skipif(
    not NATIVE_EXPECTED, reason="no llama-server build for this CPU (it has no AVX-512)"))]


def test_the_server_for_this_cpu_is_the_default_where_setup_builds_one():
    if NATIVE_EXPECTED:  # with prompt-lookup drafting
        assert resolve_llm_server("") == (NATIVE_SERVER, list(NATIVE_SERVER_ARGS)), \
            "setup did not build llama-server"
    else:
        assert resolve_llm_server("") == (None, [])
    assert resolve_llm_server("xllamacpp") == (None, [])
    assert resolve_llm_server("/bin/true -ngl '9 9'") == (Path("/bin/true").resolve(),
                                                         ["-ngl", "9 9"])


def test_a_server_that_is_not_a_program_is_a_clear_error(tmp_path):
    with pytest.raises(LocalLLMError, match="S2R_LLM_SERVER=.*missing is not an executable"):
        resolve_llm_server(f"{tmp_path / 'missing'} -ngl 99")
    (tmp_path / "notes.txt").write_text("not a program")
    with pytest.raises(LocalLLMError, match="not an executable file"):
        resolve_llm_server(str(tmp_path / "notes.txt"))


def test_bundled_models_resolve(tmp_path):
    assert resolve_llm_gguf("none", tmp_path) is None
    small = resolve_llm_gguf("smollm2", tmp_path)
    assert small.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with small.open("rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_bad_model_paths_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve_llm_gguf(str(tmp_path / "missing.gguf"), tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelNotFoundError, match="not a GGUF"):
        resolve_llm_gguf(str(tmp_path / "notes.txt"), tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not NATIVE_EXPECTED, reason="no llama-server build for this CPU")
def test_server_arguments_reach_the_llama_server_binary(cache_dir):
    settings = Settings(cache_dir=cache_dir, llm_gguf="smollm2",
                        llm_server=f"{NATIVE_SERVER} --no-such-option 1")
    server = LocalLLMServer.from_settings(settings)
    with pytest.raises(LocalLLMError, match="exited while starting") as failure:
        server.start(timeout_s=60)
    assert "--no-such-option" in str(failure.value)  # llama-server's own complaint


@pytest.mark.slow
@pytest.mark.parametrize("llm_server", SERVERS)
def test_a_corrupt_model_fails_to_start_with_the_server_output(tmp_path, llm_server):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    server = LocalLLMServer.from_settings(Settings(cache_dir=tmp_path, llm_gguf=str(broken),
                                                   llm_server=llm_server))
    with pytest.raises(LocalLLMError, match="exited while starting") as failure:
        server.start(timeout_s=60)
    assert "failed to load model" in str(failure.value)  # llama.cpp's own reason
    assert not server.healthy()


def test_a_damaged_split_model_is_refused_by_its_checksum(tmp_path):
    parts = [tmp_path / "part01.bin", tmp_path / "part02.bin"]
    parts[0].write_bytes(b"GGUF" + bytes(10))
    parts[1].write_bytes(bytes(6))
    problem = _join_checked(parts, tmp_path / "joined.gguf", 20, "0" * 64)
    assert "20 bytes" in problem and "expected 20 bytes with sha256 0000" in problem


@pytest.mark.slow
@pytest.mark.parametrize("llm_server", SERVERS)
def test_local_server_answers_and_stops(cache_dir, llm_server):
    server = LocalLLMServer.from_settings(Settings(cache_dir=cache_dir, llm_gguf="smollm2",
                                                   llm_max_tokens=8, llm_server=llm_server))
    assert (server.server_binary is None) == (llm_server == "xllamacpp")
    # setup's build drafts from the prompt (NATIVE_SERVER_ARGS), and answers with it
    assert server.server_args == ([] if llm_server == "xllamacpp" else list(NATIVE_SERVER_ARGS))
    with server:
        assert server.url.startswith("http://127.0.0.1:") and server.healthy()
        chat = ChatClient(ChatConfig(url=server.url, model=server.model, max_tokens=8))
        answer = chat.complete([{"role": "user", "content": "Say hello."}])
        assert answer.text.strip() and answer.finish_reason in ("stop", "length")
        chat.close()
    assert not server.healthy()


@pytest.mark.slow
def test_the_small_qwen_is_assembled_from_its_parts_and_answers(cache_dir):
    gguf = resolve_llm_gguf("qwen-0.5b", cache_dir)
    assert gguf.parent == cache_dir / "llm" and gguf.stat().st_size == 491_400_064
    server = LocalLLMServer(gguf, threads=2, n_ctx=1024)
    with server:
        chat = ChatClient(ChatConfig(url=server.url, model=server.model, max_tokens=12,
                                     temperature=0.0))
        answer = chat.complete([{"role": "user", "content": "What is the capital of France?"}])
        chat.close()
    assert "Paris" in answer.text
    assert not server.healthy()


def descendants_of(pid: int) -> list[int]:
    """``pid``'s live children, their children, and so on."""
    found = []
    for child in children_of(pid):
        found += [child, *descendants_of(child)]
    return found


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc, as ps would see them)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
        except OSError:  # the process ended while we looked
            continue
        if fields.get("PPid", "").strip() == str(pid) and not fields.get(
                "State", "").startswith("Z"):
            found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its reaping is left


def gone(pid: int) -> bool:
    """Whether ``pid`` ends: waits for it, with a guard so a survivor fails the test instead
    of hanging it."""
    deadline = time.monotonic() + GUARD_S
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.slow
@pytest.mark.parametrize("llm_server", SERVERS)
def test_the_model_server_dies_when_its_owner_is_killed_outright(cache_dir, llm_server):
    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from assistant.answer.local_llm import LocalLLMServer, resolve_llm_server\n"
         "from assistant.models import resolve_llm_gguf\n"
         "from pathlib import Path\n"
         "server = LocalLLMServer(resolve_llm_gguf('smollm2', Path(sys.argv[1])), 1, 512,\n"
         "                        *resolve_llm_server(sys.argv[2]))\n"
         "server.start()\n"
         "print(server._process.pid, flush=True)\n"
         "time.sleep(600)\n", str(cache_dir), llm_server],
        stdout=subprocess.PIPE, text=True)
    child = int(owner.stdout.readline())
    serving = [child, *descendants_of(child)]  # a llama-server binary is the child's child
    assert alive(child)  # serving (start() returned once it answered its health check)
    owner.send_signal(signal.SIGKILL)  # no atexit, no finally: only the pipe tells the child
    owner.wait()
    for pid in serving:
        assert gone(pid), "the model server outlived a SIGKILLed owner"


@pytest.mark.slow
@pytest.mark.skipif(not NATIVE_EXPECTED, reason="no llama-server build for this CPU")
def test_a_llama_server_binary_dies_with_its_keeper_killed_outright(cache_dir):
    server = LocalLLMServer(resolve_llm_gguf("smollm2", cache_dir), 1, 512, NATIVE_SERVER)
    with server:
        keeper = server._process.pid
        binaries = children_of(keeper)
        assert len(binaries) == 1
        os.kill(keeper, signal.SIGKILL)  # the keeper cannot stop it: the kernel must
        assert gone(binaries[0]), "llama-server outlived the process that ran it"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_sigterm_to_s2r_serve_leaves_no_model_server(cache_dir, tmp_path):
    port = _free_port()
    env = {**os.environ, "S2R_DATA_DIR": str(tmp_path / "data"), "S2R_CACHE_DIR": str(cache_dir),
           "S2R_QDRANT_URL": "", "S2R_LLM_URL": "", "S2R_LLM_GGUF": "smollm2"}
    serve = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port",
                              str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + GUARD_S
        ready = False
        while not ready and time.monotonic() < deadline:
            assert serve.poll() is None, serve.stderr.read()
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.TransportError:
                time.sleep(0.5)
        assert ready, "s2r serve did not become ready"
        children = descendants_of(serve.pid)
        assert children, "s2r serve runs the local model server as its child"
        serve.send_signal(signal.SIGTERM)
        serve.wait(GUARD_S)
        for child in children:
            assert gone(child), "the model server outlived s2r serve"
    finally:
        if serve.poll() is None:
            serve.kill()
