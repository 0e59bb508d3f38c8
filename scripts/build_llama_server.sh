#!/usr/bin/env bash
# Builds llama.cpp's server for this very CPU into .venv/llama.cpp/bin/llama-server.
#
# Why: the prebuilt xllamacpp wheel is compiled for AVX2 only. On a CPU with AVX-512 a build for
# the CPU itself reads a prompt about twice as fast (benchmarks/results/llm-servers.md), and
# reading the prompt is most of the wait for an answer's first word. On other CPUs it would
# match the wheel, so it is skipped there.
#
# S2R_LLAMA_BUILD: auto (default: build when the CPU has AVX-512), yes, or no.
# The source is llama.cpp as vendored in llama-cpp-python's sdist on PyPI, checked by sha256.
# Idempotent: a stamp records what was built. A failed build warns and leaves s2r on the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.3.36  # llama-cpp-python; its vendor/llama.cpp is llama.cpp commit 0c1e570 (2026-10-01)
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
MODE=${S2R_LLAMA_BUILD:-auto}
DEST=.venv/llama.cpp
# Without AMX: its kernels crashed (SIGSEGV in ggml_backend_amx_mul_mat) on a VM that reports
# AMX, and the AVX-512 kernels give the speed-up on their own.
CFLAGS_EXTRA="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
stamp="$DEST/.built"
want="$VERSION $SHA256 $CFLAGS_EXTRA $(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-16)"

case "$MODE" in
  no) exit 0 ;;
  yes) ;;
  auto) grep -qw avx512f /proc/cpuinfo || exit 0 ;;
  *) echo "setup: S2R_LLAMA_BUILD must be auto, yes or no (got '$MODE')"; exit 1 ;;
esac
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$DEST/bin/llama-server" ]; then
  exit 0
fi

echo "setup: building llama.cpp's server for this CPU (once, about 4 min on 2 cores)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$DEST.build.log"
mkdir -p "$(dirname "$log")"
: > "$log"
fail() {
  echo "setup: warning: llama.cpp's server was not built ($1; see $log)."
  echo "setup: s2r will use the prebuilt AVX2 server, which reads prompts about half as fast."
  exit 0
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
  { as_root apt-get -o DPkg::Lock::Timeout=600 update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq cmake g++; } >>"$log" 2>&1 || fail "cmake and g++ could not be installed"
fi
.venv/bin/python -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" \
  -d "$work" >>"$log" 2>&1 || fail "the source could not be downloaded"
archive="$work/llama_cpp_python-$VERSION.tar.gz"
echo "$SHA256  $archive" | sha256sum -c --quiet >>"$log" 2>&1 || fail "the source's checksum differs"
tar -xzf "$archive" -C "$work" "llama_cpp_python-$VERSION/vendor/llama.cpp" >>"$log" 2>&1 \
  || fail "the source could not be unpacked"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  "-DCMAKE_C_FLAGS=$CFLAGS_EXTRA" "-DCMAKE_CXX_FLAGS=$CFLAGS_EXTRA" >>"$log" 2>&1 \
  || fail "cmake could not configure it"
cmake --build "$work/build" --target llama-server -j "$(nproc)" >>"$log" 2>&1 \
  || fail "the compiler failed"
"$work/build/bin/llama-server" --version >>"$log" 2>&1 || fail "the built server does not run"
mkdir -p "$DEST/bin"
install -m 755 "$work/build/bin/llama-server" "$DEST/bin/llama-server"
echo "$want" > "$stamp"
echo "setup: built $DEST/bin/llama-server"
