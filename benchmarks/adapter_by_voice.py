"""Which speech a decoder adapter learnt: the word error rate of the integrated decode, for each
adapter, on a benchmark's question texts heard three ways: the benchmark's own audio (voices
held out from training), espeak-ng training voices resampled to 16 kHz by PyAV (as
``tts.synthesize`` and so ``s2r train`` make them), and the same espeak-ng audio resampled by
SciPy (as ``scripts/adapt_decoder_gpu.py`` makes them, where PyAV is missing).  An adapter that
gains on the training voices and loses on held-out ones has learnt the synthesizer.

    python benchmarks/adapter_by_voice.py bench-data/tune600/clean --queries 200 \
        --adapter v2=assistant/models/whisper-decoder-lora-v2.npz --adapter v3=…/v3.npz
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from assistant.asr import Transcriber
from assistant.audio import SAMPLE_RATE, decode_audio
from assistant.bench_format import load_benchmark
from assistant.metrics import word_errors
from assistant.s2r import IntegratedRecognizer
from assistant.settings import Settings
from assistant.training.speech_data import training_voices

AUDIO = ("benchmark audio", "espeak-ng via PyAV", "espeak-ng via SciPy")


def espeak_both_ways(text: str, rng: np.random.Generator, wav: Path) -> tuple[np.ndarray, ...]:
    """One espeak-ng rendering (training voice, rate and pitch drawn as ``speech_data``
    draws them), resampled by PyAV and by SciPy."""
    voices = [v.split(":", 1)[1] for v in training_voices()
              if v.startswith("espeak-ng:") and ":mb-" not in v]
    voice = voices[int(rng.integers(len(voices)))]
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.integers(125, 205))), "-p",
                    str(int(rng.integers(25, 75))), "-w", str(wav), text],
                   check=True, capture_output=True)
    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    g = math.gcd(SAMPLE_RATE, rate)
    return decode_audio(wav), resample_poly(pcm, SAMPLE_RATE // g, rate // g).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", metavar="BENCH_DIR")
    parser.add_argument("--adapter", action="append", required=True, metavar="NAME=NPZ",
                        help="an adapter to compare (repeatable; NPZ 'none': packaged)")
    parser.add_argument("--queries", type=int, default=200, help="first N queries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    settings = Settings.load()
    recognizers = {name: IntegratedRecognizer(Transcriber(settings.replace(decoder_adapter=npz)))
                   for name, npz in (a.split("=", 1) for a in args.adapter)}
    rng = np.random.default_rng(args.seed)
    wav = Path(tempfile.mkstemp(suffix=".wav")[1])
    errors = {(audio, name): [0, 0] for audio in AUDIO for name in recognizers}
    queries = load_benchmark(args.benchmark).queries[: args.queries]
    for query in tqdm(queries, unit="q"):
        heard = (decode_audio(query.audio), *espeak_both_ways(query.text, rng, wav))
        for audio, samples in zip(AUDIO, heard, strict=True):
            for name, recognizer in recognizers.items():
                wrong, words = word_errors(query.text, recognizer.recognize(samples).text)
                errors[audio, name][0] += wrong
                errors[audio, name][1] += words
    wav.unlink()
    rows = [{"audio": audio, "adapter": name, "queries": len(queries),
             "wer": round(wrong / words, 4)} for (audio, name), (wrong, words) in errors.items()]
    print("| audio | " + " | ".join(f"{name} WER" for name in recognizers) + " |")
    print("|---|" + "---|" * len(recognizers))
    for audio in AUDIO:
        print(f"| {audio} | " + " | ".join(f"{r['wer']:.3f}" for r in rows
                                           if r["audio"] == audio) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
