"""Would espeak-ng's phonemes make a better sound leg than Metaphone keys?  A probe on a tuning
set (train-split queries only; never choose on the eval split).

Metaphone is a handful of English spelling rules; espeak-ng's letter-to-sound rules and
dictionary know far more words ("haakon" → hˈɑːkən).  Here each word's sound key is its
espeak-ng phonemes reduced to a skeleton (stress and length dropped, every vowel one symbol
``a``, affricates one symbol each), and, as in ``sparse.sound_keys``, the n-grams of all keys
run together.  The collection is indexed again with those keys (a cache entry of its own), and
every system runs through the real query paths once per scheme (``evaluate.evaluate``, what
``s2r eval`` runs).  MRR@10 does not depend on
the machine's load (the decode is deterministic), so the schemes need not run side by side;
the latencies are not compared.

    python benchmarks/tune_sound_phonemes.py bench-data/tune600/clean bench-data/tune600/phone \\
        --out benchmarks/results/tune-sound-phonemes.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
from collections import Counter
from dataclasses import replace
from functools import cache
from pathlib import Path

import assistant.evaluate as evaluate
import assistant.sparse as sparse
from assistant.bench_format import load_benchmark
from assistant.runtime import Runtime
from assistant.settings import Settings

VOWELS = frozenset("aeiouæɑɒɔəɚɛɜɝɪʊʌɐᵻɘɵøœyɨʉɤ")
CONSONANTS = {"ɹ": "r", "ɾ": "t", "ɫ": "l", "ɬ": "l", "ʔ": "", "x": "k", "ç": "h", "ɡ": "g",
              "ŋ": "N", "θ": "T", "ð": "D", "ʃ": "S", "ʒ": "Z", "ʲ": "", "ʰ": "", "̩": ""}
SPACING = str.maketrans("", "", "ˈˌːˑ ")
AVG_DOC_PHONEMES = 430.0  # phoneme terms of an average tune600 passage (measured: 429.8)


class Espeak:
    """espeak-ng's text-to-phonemes through its C library (libespeak-ng, which comes with
    the espeak-ng that scripts/setup.sh installs)."""

    SYNCHRONOUS, UTF8, IPA = 0x02, 1, 0x02

    def __init__(self, voice: str = "en-us") -> None:
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p),
                                                   ctypes.c_int, ctypes.c_int]
        if self.lib.espeak_Initialize(self.SYNCHRONOUS, 0, None, 0) <= 0:
            raise RuntimeError("espeak-ng did not start")
        self.lib.espeak_SetVoiceByName(voice.encode())

    def ipa(self, text: str) -> str:
        """IPA phonemes of ``text``, clause by clause (the library moves the pointer on)."""
        pointer = ctypes.pointer(ctypes.c_char_p(text.encode()))
        parts = []
        while pointer.contents.value:
            if out := self.lib.espeak_TextToPhonemes(pointer, self.UTF8, self.IPA):
                parts.append(out.decode())
        return " ".join(parts)


ESPEAK = Espeak()


@cache
def phoneme_key(word: str) -> str:
    """A word's phonemes as a skeleton: "haakon" hˈɑːkən → hakan, "can" kæn → kan."""
    ipa = ESPEAK.ipa(word).translate(SPACING).replace("dʒ", "J").replace("tʃ", "C")
    key: list[str] = []
    for symbol in ipa:
        symbol = "a" if symbol in VOWELS else CONSONANTS.get(symbol, symbol)
        if symbol and not (symbol == "a" and key and key[-1] == "a"):
            key.append(symbol)
    return "".join(key)


def phoneme_terms(text: str, size: int = 3) -> Counter[str]:
    """``sparse.sound_keys`` with phoneme keys: each word's key and the n-grams of all run
    together."""
    keys = [k for k in (phoneme_key(w) for w in sparse.words_of(text)) if k]
    run = "".join(keys)
    return Counter([f"={k}" for k in keys] + [run[i : i + size]
                                               for i in range(len(run) - size + 1)])


class PhonemeKeyEncoder(sparse.TermBm25Encoder):
    def __init__(self, avg_len: float = AVG_DOC_PHONEMES) -> None:
        super().__init__(phoneme_terms, avg_len)


def use_scheme(scheme: str, metaphone: type, index_format: str) -> None:
    """Point the runtime's sound leg (and the cached index's key) at one scheme."""
    phonemes = scheme == "phonemes"
    sparse.SoundKeyEncoder = PhonemeKeyEncoder if phonemes else metaphone
    evaluate.INDEX_FORMAT = index_format + ("-sound-phonemes" if phonemes else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    parser.add_argument("--systems", default="transcript,s2r,hybrid")
    parser.add_argument("--schemes", default="metaphone,phonemes")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries")
    parser.add_argument("--out", metavar="JSON")
    args = parser.parse_args()
    benches = [load_benchmark(path) for path in args.benchmarks]
    if args.limit:
        benches = [replace(b, queries=b.queries[: args.limit]) for b in benches]
    metaphone, index_format = sparse.SoundKeyEncoder, evaluate.INDEX_FORMAT
    rows = []
    for scheme in args.schemes.split(","):
        use_scheme(scheme, metaphone, index_format)
        result = evaluate.evaluate(benches, args.systems.split(","), Runtime(Settings.load()))
        for row in result["rows"]:
            rows.append({"benchmark": row["benchmark"], "scheme": scheme, "system": row["system"],
                         "queries": row["n_queries"], "mrr@10 all": row["mrr@10"]} | {
                f"mrr@10 {kind}": mrr for kind, mrr in row["mrr@10_by_kind"].items()})
            print(json.dumps(rows[-1]), flush=True)
    kinds = sorted(k for k in rows[0] if k.startswith("mrr@10 ") and k != "mrr@10 all")
    print("\n| benchmark | system | scheme | MRR@10 | " + " | ".join(k[7:] for k in kinds) + " |")
    print("|---|---|---|---|" + "---|" * len(kinds))
    for r in sorted(rows, key=lambda r: (r["benchmark"], r["system"])):
        print(f"| {r['benchmark']} | {r['system']} | {r['scheme']} | {r['mrr@10 all']:.4f} | "
              + " | ".join(f"{r[k]:.4f}" for k in kinds) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
