"""Speech synthesis with local engines, for building benchmarks and test audio.

A voice is named ``engine:voice``: ``espeak-ng:en-us``, ``espeak-ng:en-gb+f3``, ``flite:slt``,
``festival:kal_diphone``; MBROLA voices go through espeak-ng (``espeak-ng:mb-us1``, from
contrib/non-free).  Each engine is a Debian package run as a subprocess; output is decoded to
16 kHz mono float32.  Piper's voice joe is refused: it speaks s2r's answers and is the project's
held-out evaluation voice, so no training, tuning or dev audio may be made with it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from assistant.speech.audio import decode_audio

ENGINES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}
PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}


class TTSError(RuntimeError):
    """The engine is missing or failed; the message says which and how to install it."""


def check_voice(voice: str) -> tuple[str, str]:
    engine, _, name = voice.partition(":")
    if engine == "piper" or "joe" in voice.lower():
        raise TTSError(f"voice {voice!r}: piper's joe is the held-out evaluation voice (it speaks "
                       "s2r's answers); it never voices training, tuning or dev data")
    if engine not in ENGINES or not name:
        raise TTSError(f"voice {voice!r}: use engine:voice with engine one of {sorted(ENGINES)}")
    if shutil.which(ENGINES[engine]) is None:
        raise TTSError(f"{engine} is not installed: apt-get install {PACKAGES[engine]}")
    return engine, name


def espeak_command(source: Path, wav: Path, name: str, rate_wpm: int = 160,
                   pitch: int | None = None, binary: str = "espeak-ng") -> list[str]:
    """espeak-ng speaking the text in the file ``source`` (so no text is read as an option)
    with voice ``name`` into ``wav``."""
    cmd = [binary, "-v", name, "-s", str(rate_wpm), "-w", str(wav), "-f", str(source)]
    if pitch is not None:
        cmd[1:1] = ["-p", str(pitch)]
    return cmd


def synthesize(text: str, voice: str, rate_wpm: int = 160, pitch: int | None = None
               ) -> np.ndarray:
    """Speak ``text`` with ``voice``; returns float32 16 kHz mono samples.  ``rate_wpm`` and
    ``pitch`` (0-99) apply to espeak-ng voices only."""
    engine, name = check_voice(voice)
    with tempfile.TemporaryDirectory(prefix="s2r-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        source = Path(tmp) / "text.txt"
        source.write_text(text, encoding="utf-8")
        if engine == "espeak-ng":
            cmd = espeak_command(source, wav, name, rate_wpm, pitch)
        elif engine == "festival":
            cmd = ["text2wave", "-eval", f"(voice_{name})", "-o", str(wav), str(source)]
        else:
            cmd = ["flite", "-voice", name, "-f", str(source), "-o", str(wav)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav.exists():
            raise TTSError(f"{voice} failed on {text[:40]!r}: {done.stderr.strip()[:200]}")
        return decode_audio(wav)
