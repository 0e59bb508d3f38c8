"""Regenerate the README's screenshot of the voice page (docs/browser.png).

The bundled samples are ingested into a throwaway collection (from the repository root, so
sources read ``samples/…``), ``s2r serve`` answers with the bundled local model (or a fixed
answer, ``--answer``), and headless Chromium asks the question through its fake microphone
(espeak-ng), then plays the cited span of the recording with its transcript open, and takes
the screenshot.  The same harness as tests/test_browser.py (tests/browser_harness.py).

    .venv/bin/python scripts/browser_screenshot.py            # writes docs/browser.png
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the page's harness

import numpy as np

from assistant.speech.audio import SAMPLE_RATE, write_wav
from assistant.speech.tts import synthesize
from tests.browser_harness import Browser, ServeProcess
from tests.fake_llm import FakeLLM, Step

ROOT = Path(__file__).resolve().parent.parent
KEY = "screenshot"
WINDOW = (860, 600)
SHOWN_PLAYING_S = 1.5  # the span player shows its progress


def microphone(path: Path, question: str) -> Path:
    """The question spoken by espeak-ng between a second of silence and the pause that ends
    the turn."""
    speech = synthesize(question, "espeak-ng:en-us", rate_wpm=160)
    silence = lambda s: np.zeros(int(s * SAMPLE_RATE), np.float32)  # noqa: E731
    return write_wav(path, np.concatenate([silence(1.0), speech, silence(3.0)]))


def screenshot(args: argparse.Namespace, work: Path) -> Path:
    env = {"S2R_DATA_DIR": str(work / "data"), "S2R_API_KEY": KEY, "S2R_LLM_URL": "",
           "S2R_LLM_GGUF": args.llm}
    subprocess.run([sys.executable, "-m", "assistant", "ingest", "--no-progress",
                    "samples/docs", "samples/speech"], cwd=ROOT, env={**os.environ, **env},
                   check=True, stdout=subprocess.DEVNULL)
    fake = FakeLLM() if args.answer else None
    if fake is not None:
        fake.default = Step(text=args.answer)
        env["S2R_LLM_URL"] = fake.url
    try:
        with ServeProcess(env, work / "serve-output.txt", cwd=ROOT) as server, \
                Browser(microphone(work / "question.wav", args.question), work / "profile",
                        window=WINDOW) as browser:
            browser.open(f"{server.url}/?key={KEY}&auto=1")
            page = browser.wait_for_page(lambda p: bool(p["turns"]) and p["turns"][0]["done"],
                                         "the answered question", timeout_s=args.timeout)
            print(f"heard {page['turns'][0]['heard']!r}; answered {page['turns'][0]['answer']!r}",
                  file=sys.stderr)
            browser.play_span()
            browser.evaluate('document.querySelector(".source.audio details").open = true')
            time.sleep(SHOWN_PLAYING_S)
            return browser.screenshot(Path(args.out))
    finally:
        if fake is not None:
            fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "browser.png"))
    parser.add_argument("--question", default="Where was coffee first grown?")
    parser.add_argument("--llm", default="", help="local model: qwen, smollm2 or a GGUF path "
                        "(default: the best installed)")
    parser.add_argument("--answer", default="",
                        help="answer this instead of asking a model (a scripted server)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for the answer (default 300)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="s2r-screenshot-") as work:
        print(screenshot(args, Path(work)))


if __name__ == "__main__":
    main()
