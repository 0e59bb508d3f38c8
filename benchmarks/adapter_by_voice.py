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
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.asr import Transcriber
from assistant.audio import decode_audio
from assistant.bench_format import load_benchmark
from assistant.metrics import word_errors
from assistant.s2r import IntegratedRecognizer
from assistant.settings import Settings
from assistant.training.speech_data import espeak_voices, speak_without_pyav

AUDIO = ("benchmark audio", "espeak-ng via PyAV", "espeak-ng via SciPy")


def espeak_both_ways(text: str, voices: list[str], rng: np.random.Generator, wav: Path
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One espeak-ng rendering (voice, rate and pitch drawn as ``speech_data`` draws them),
    resampled by PyAV and by SciPy."""
    voice = voices[int(rng.integers(len(voices)))]
    by_scipy = speak_without_pyav(text, voice, int(rng.integers(125, 205)),
                                  int(rng.integers(25, 75)), wav)
    if by_scipy is None:
        raise RuntimeError(f"espeak-ng could not say {text!r} with {voice}")
    return decode_audio(wav), by_scipy


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
    voices = espeak_voices()
    rng = np.random.default_rng(args.seed)
    wav = Path(tempfile.mkstemp(suffix=".wav")[1])
    errors = {(audio, name): [0, 0] for audio in AUDIO for name in recognizers}
    queries = load_benchmark(args.benchmark).queries[: args.queries]
    for query in tqdm(queries, unit="q"):
        heard = (decode_audio(query.audio), *espeak_both_ways(query.text, voices, rng, wav))
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
