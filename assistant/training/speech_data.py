"""Training speech for the e2e head: train-split text, voiced by training voices, augmented,
run once through the Whisper encoder and cached as shards of frames.

Caching the encoder output makes training cheap (the encoder is frozen) and the data step
resumable: a shard is complete when its ``.json`` exists (written last), and shard ``i`` is
drawn from its own seed, so an interrupted run redoes only missing shards, identically.
Nothing here touches the eval split or the eval voices (``bench_build.EVAL_VOICES``).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.eval.bench_build import (
    EVAL_VOICES,
    add_noise,
    babble,
    description_query,
    keyword_query,
    keyword_words,
    lead_question,
)
from assistant.eval.wiki_corpus import in_eval_split
from assistant.speech.audio import SAMPLE_RATE
from assistant.speech.e2e import FRAMES_PER_S, normalize_text
from assistant.speech.tts import TTSError, espeak_command, synthesize
from assistant.text import split_sentences

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4",
            "+f5", "+klatt", "+klatt2", "+klatt3", "+klatt4")
# Other engines: flite's kal (awb, rms and slt are held out for evaluation), festival's kal,
# and the MBROLA diphone voices through espeak-ng (contrib/non-free, when installed).
OTHER_VOICES = ("flite:kal", "flite:kal16", "festival:kal_diphone", "espeak-ng:mb-us1",
                "espeak-ng:mb-us2", "espeak-ng:mb-us3", "espeak-ng:mb-en1")
MAX_WORDS = 22  # longer sentences are cut into windows: questions are short
MAX_SECONDS = 12.0
SHARD_SIZE = 500


def espeak_voices() -> list[str]:
    """The espeak-ng training voices, as espeak-ng itself names them."""
    return [f"{a}{v}" for a in ACCENTS for v in VARIANTS]


def training_voices() -> list[str]:
    voices = [f"espeak-ng:{v}" for v in espeak_voices()] + list(OTHER_VOICES)
    assert not set(voices) & set(EVAL_VOICES)
    return voices


def wav_at_16k(wav: Path) -> np.ndarray:
    """A 16-bit mono WAV file as 16 kHz float32, read with the standard library and resampled
    by SciPy: for machines without PyAV (``tts.synthesize`` decodes with it)."""
    import wave

    from scipy.signal import resample_poly

    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    g = math.gcd(SAMPLE_RATE, rate)
    return resample_poly(pcm, SAMPLE_RATE // g, rate // g).astype(np.float32)


def speak_without_pyav(text: str, voice: str, rate_wpm: int, pitch: int, wav: Path,
                       binary: str = "espeak-ng") -> np.ndarray | None:
    """espeak-ng's speech (``voice`` as it names them) through ``wav_at_16k``; None if
    espeak-ng fails.  ``wav`` is where it writes (the text goes beside it), and stays for the
    caller."""
    import subprocess

    source = wav.with_suffix(".txt")
    source.write_text(text, encoding="utf-8")
    done = subprocess.run(espeak_command(source, wav, voice, rate_wpm, pitch, binary),
                          capture_output=True)
    return None if done.returncode else wav_at_16k(wav)


def usable_voices(voices: Sequence[str]) -> list[str]:
    """The voices that speak on this machine (MBROLA and festival are optional packages)."""
    usable = []
    for voice in voices:
        try:
            synthesize("test", voice)
            usable.append(voice)
        except TTSError:
            continue
    return usable


def article_texts(wiki: dict[str, dict[str, str]], exclude_titles: set[str], seed: int
                  ) -> list[tuple[str, str]]:
    """(title, text) pairs: sentences (in windows of at most ``MAX_WORDS`` words),
    descriptions and query-like texts of train-split articles not in ``exclude_titles``,
    shuffled with ``seed``.  The title is the article each text is about (the decoder
    adapter's previous-text prompts are drawn around it)."""
    df: Counter = Counter()
    for entry in wiki.values():
        df.update(set(keyword_words(entry.get("extract", ""))))
    texts: list[tuple[str, str]] = []
    for title, entry in wiki.items():
        if in_eval_split(title) or title in exclude_titles or not entry.get("extract"):
            continue
        sentences = split_sentences(entry["extract"])
        for sentence in sentences:
            words = sentence.split()
            for start in range(0, len(words), MAX_WORDS):
                window = " ".join(words[start : start + MAX_WORDS])
                if len(window.split()) >= 3:
                    texts.append((title, window))
        for extra in (description_query(entry.get("description", "")),
                      keyword_query(title, entry["extract"], df),
                      lead_question(sentences[0]) if sentences else None):
            if extra:
                texts.append((title, extra))
    rng = np.random.default_rng(seed)
    return [texts[i] for i in rng.permutation(len(texts)) if normalize_text(texts[i][1])]


@dataclass(frozen=True)
class Augmentation:
    """Probabilities of each corruption; several may apply to one utterance."""

    noise: float = 0.2  # white/pink noise at 5-30 dB SNR
    babble: float = 0.15  # three other training utterances at 5-20 dB SNR
    phone: float = 0.25  # 300-3400 Hz band
    reverb: float = 0.15  # a synthetic room (exponential decay, RT60 0.2-0.7 s)
    speed: float = 0.3  # 0.88-1.12 by resampling (non-espeak voices get no rate jitter)


def _phone_band(audio: np.ndarray) -> np.ndarray:
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    return np.fft.irfft(spectrum, n=audio.size).astype(np.float32)


def _reverb(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.2, 0.7)
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    impulse = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)
    impulse[0] = 1.0
    wet = np.fft.irfft(np.fft.rfft(audio, audio.size + t.size) * np.fft.rfft(impulse, audio.size
                                                                             + t.size))
    wet = wet[: audio.size]
    return (wet / (np.max(np.abs(wet)) + 1e-9) * 0.9).astype(np.float32)


def _speed(audio: np.ndarray, factor: float) -> np.ndarray:
    n = int(audio.size / factor)
    return np.interp(np.linspace(0, audio.size - 1, n), np.arange(audio.size),
                     audio).astype(np.float32)


def _coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if rng.random() < 0.5:
        return white.astype(np.float32)
    spectrum = np.fft.rfft(white)
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))  # 1/f: pink
    return np.fft.irfft(spectrum, n=n).astype(np.float32)


def augment(audio: np.ndarray, pool: list[np.ndarray], rng: np.random.Generator,
            aug: Augmentation) -> tuple[np.ndarray, list[str]]:
    applied = []
    if rng.random() < aug.speed:
        audio = _speed(audio, rng.uniform(0.88, 1.12))
        applied.append("speed")
    if rng.random() < aug.reverb:
        audio = _reverb(audio, rng)
        applied.append("reverb")
    if pool and len(pool) >= 3 and rng.random() < aug.babble:
        audio = add_noise(audio, babble(pool, audio.size, rng), rng.uniform(5, 20))
        applied.append("babble")
    if rng.random() < aug.noise:
        audio = add_noise(audio, _coloured_noise(audio.size, rng), rng.uniform(5, 30))
        applied.append("noise")
    if rng.random() < aug.phone:
        audio = _phone_band(audio)
        applied.append("phone")
    return audio, applied


def _speak(text: str, voice: str, rng: np.random.Generator) -> np.ndarray:
    if voice.startswith("espeak-ng:") and ":mb-" not in voice:
        return synthesize(text, voice, int(rng.integers(125, 205)), int(rng.integers(25, 75)))
    return synthesize(text, voice)


def shard_complete(out_dir: Path, index: int) -> bool:
    return (out_dir / f"shard-{index:05d}.json").exists()


def build_shard(index: int, texts: Sequence[str], voices: Sequence[str], seed: int,
                out_dir: Path, recognizer, aug: Augmentation = Augmentation()) -> int:
    """Voice, augment and encode ``texts``; write shard ``index``; returns utterances kept."""
    rng = np.random.default_rng([seed, index])
    pool: list[np.ndarray] = []
    frames: list[np.ndarray] = []
    meta: list[dict] = []
    for text in texts:
        voice = voices[int(rng.integers(len(voices)))]
        try:
            clean = _speak(text, voice, rng)
        except TTSError:
            continue
        if clean.size / SAMPLE_RATE > MAX_SECONDS or clean.size < SAMPLE_RATE // 4:
            continue
        audio, applied = augment(clean, pool, rng, aug)
        pool = [*pool, clean][-24:]
        encoder_pass = recognizer.encode(audio)
        if encoder_pass is None:
            continue
        # the speech and its margin: a short clip's window is padded further, with silence
        kept = round((encoder_pass.seconds + recognizer.config.margin_s) * FRAMES_PER_S)
        frames.append(encoder_pass.frames()[:kept].astype(np.float16))
        meta.append({"text": normalize_text(text), "spoken": text, "voice": voice, "aug": applied,
                     "seconds": round(audio.size / SAMPLE_RATE, 3)})
    lengths = [f.shape[0] for f in frames]
    stem = out_dir / f"shard-{index:05d}"
    tmp = stem.with_suffix(".tmp.npy")
    np.save(tmp, np.concatenate(frames) if frames else np.zeros((0, 384), np.float16))
    os.replace(tmp, stem.with_suffix(".npy"))
    info = {"lengths": lengths, "utterances": meta, "margin_s": recognizer.config.margin_s}
    tmp_json = stem.with_suffix(".tmp.json")
    tmp_json.write_text(json.dumps(info), encoding="utf-8")
    os.replace(tmp_json, stem.with_suffix(".json"))
    return len(meta)


def shard_count(n_utterances: int) -> int:
    return math.ceil(n_utterances / SHARD_SIZE)


_worker_state: dict = {}


def _init_worker(settings, texts: list[str], voices: list[str], seed: int, out_dir: Path
                 ) -> None:
    from assistant.runtime import Runtime

    _worker_state.update(recognizer=Runtime(settings.replace(threads=1)).recognizer,
                         texts=texts, voices=voices, seed=seed, out_dir=out_dir)


def _run_shard(index: int) -> int:
    s = _worker_state
    texts = s["texts"][index * SHARD_SIZE : (index + 1) * SHARD_SIZE]
    return build_shard(index, texts, s["voices"], s["seed"], s["out_dir"], s["recognizer"])


def build_speech_data(out_dir: Path, texts: list[str], voices: list[str], n_utterances: int,
                      seed: int, settings, workers: int = 1, progress: bool = True) -> int:
    """Make every missing shard for the first ``n_utterances`` texts; returns shards made."""
    from multiprocessing import get_context

    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    n = min(n_utterances, len(texts))
    todo = [i for i in range(shard_count(n)) if not shard_complete(out_dir, i)]
    if not todo:
        return 0
    args = (settings, texts[:n], list(voices), seed, out_dir)
    bar = tqdm(total=len(todo) * SHARD_SIZE, desc="voice + encode", unit="utt",
               disable=not progress)
    if workers <= 1:
        _init_worker(*args)
        for i in todo:
            bar.update(_run_shard(i))
    else:
        with get_context("spawn").Pool(workers, _init_worker, args) as pool:
            for kept in pool.imap_unordered(_run_shard, todo):
                bar.update(kept)
    bar.close()
    return len(todo)


def attach_spoken_texts(out_dir: Path, texts: Sequence[str]) -> int:
    """Give each utterance of shards made before "spoken" was stored its text as written
    (the decoder learns case and punctuation from it): shard ``i`` voiced, in order, those of
    ``texts[i * SHARD_SIZE:]`` that were not skipped, so the normalized texts line up.
    Returns the shards rewritten; raises ValueError if a shard does not match ``texts``."""
    rewritten = 0
    for card in sorted(out_dir.glob("shard-*[0-9].json")):
        info = json.loads(card.read_text(encoding="utf-8"))
        if all("spoken" in utt for utt in info["utterances"]):
            continue
        index = int(card.stem.split("-")[1])
        candidates = iter(texts[index * SHARD_SIZE : (index + 1) * SHARD_SIZE])
        for utt in info["utterances"]:
            utt["spoken"] = next((t for t in candidates if normalize_text(t) == utt["text"]),
                                 None)
            if utt["spoken"] is None:
                raise ValueError(f"{card}: {utt['text']!r} is not among this shard's training "
                                 "texts (made with another seed or --exclude-bench?)")
        tmp = card.with_suffix(".tmp.json")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, card)
        rewritten += 1
    return rewritten
