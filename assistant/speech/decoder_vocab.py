"""A Whisper decoder that only speaks the word pieces of the collection it searches.

Each beam step of the reduced-window decode ends in the output projection: for tiny.en, 5 beams
× 51,864 word pieces × 384, more work than the 4 decoder layers before it.  A spoken query is
only worth decoding into words the collection can match, and a collection's text uses far fewer
pieces (the 10,033 benchmark passages: 34,000).  So queries are decoded by a copy of the model
whose embedding/projection keeps only the collection's pieces, the 10,000 commonest pieces
(GPT-2's merges are ranked by frequency, so the lowest ids; they start with all 256 bytes, so
any word can still be spelled) and the special tokens.  On 200 tuning clips per condition
this cut the decode p50 by 16-20 % at the same MRR@10 (benchmarks/results/decoder-vocab.md).
Documents are still transcribed with the full model: their words are not in the collection
yet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.speech.ct2_file import CT2FormatError, cached_model_dir, read_model, write_model

COMMON_PIECES = 10_000
FIRST_SPECIAL = 50_256  # <|endoftext|>; every id from here on (specials, timestamps) is kept
_BATCH = 512
# Tensors indexed by word piece; the projection is usually an alias of the embeddings.
_PER_PIECE = ("decoder/embeddings/", "decoder/projection/")
_CONFIG_IDS = ("suppress_ids", "suppress_ids_begin", "lang_ids")


@dataclass(frozen=True)
class DecoderVocabulary:
    """The word-piece ids (of the full model) that the pruned decoder keeps, ascending."""

    kept: np.ndarray

    @classmethod
    def from_texts(cls, texts: Iterable[str], tokenizer, size: int,
                   common: int = COMMON_PIECES) -> DecoderVocabulary:
        """The pieces of ``texts`` (as Whisper's ``tokenizer`` splits them; the first word
        also with a leading space, as it reads mid-sentence) plus the always-kept ones, for a
        model of ``size`` pieces."""
        kept = set(range(min(max(common, 256), size))) | set(range(min(FIRST_SPECIAL, size), size))
        batch: list[str] = []
        for text in texts:
            first_word = text.split(maxsplit=1)[:1]
            batch += [text, *(" " + word for word in first_word)]
            if len(batch) >= _BATCH:
                kept |= _piece_ids(tokenizer, batch)
                batch = []
        kept |= _piece_ids(tokenizer, batch)
        return cls(np.array(sorted(i for i in kept if i < size), np.int32))

    @property
    def key(self) -> str:
        return hashlib.sha256(self.kept.tobytes()).hexdigest()[:16]

    def to_pruned(self, ids: Sequence[int], skip_unknown: bool = False) -> list[int]:
        """The pruned model's ids of ``ids``; a piece it lacks raises KeyError, or with
        ``skip_unknown`` is left out."""
        ids = np.asarray(ids, np.int64)
        positions = np.minimum(np.searchsorted(self.kept, ids), self.kept.size - 1)
        known = self.kept[positions] == ids
        if not skip_unknown and not known.all():
            raise KeyError(f"word pieces {ids[~known].tolist()} are not in the pruned vocabulary")
        return positions[known].tolist()

    def from_pruned(self, ids: Sequence[int]) -> list[int]:
        return self.kept[np.asarray(ids, np.int64)].tolist()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, self.kept)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> DecoderVocabulary:
        return cls(np.load(path).astype(np.int32))


def _piece_ids(tokenizer, texts: list[str]) -> set[int]:
    return {i for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)
            for i in encoding.ids}


def pruned_model_dir(source: Path, vocabulary: DecoderVocabulary, cache_dir: Path) -> Path:
    """A CTranslate2 Whisper directory like ``source`` whose decoder keeps only
    ``vocabulary``; written once into ``cache_dir``."""
    return cached_model_dir(source, vocabulary.key, Path(cache_dir) / "whisper-vocab",
                            lambda src, tmp: _write_pruned(src, vocabulary, tmp))


def _write_pruned(source: Path, vocabulary: DecoderVocabulary, target: Path) -> None:
    kept = vocabulary.kept
    pieces = _read_pieces(source)
    model = read_model(source / "model.bin")
    pruned = 0
    for name, value in model.variables.items():
        if name.startswith(_PER_PIECE) and value.ndim and value.shape[0] == len(pieces):
            model.variables[name] = value[kept]
            pruned += 1
    if not pruned:
        raise CT2FormatError(f"{source}/model.bin has no decoder embedding of "
                             f"{len(pieces)} word pieces to prune")
    write_model(model, target / "model.bin")
    (target / "vocabulary.json").write_text(json.dumps([pieces[i] for i in kept]))
    config_path = source / "config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text())
        old_to_new = {int(old): new for new, old in enumerate(kept)}
        for field in _CONFIG_IDS:
            if field in config:
                config[field] = [old_to_new[i] for i in config[field] if i in old_to_new]
        (target / "config.json").write_text(json.dumps(config))


def piece_count(source: Path) -> int:
    """How many word pieces the model in ``source`` has."""
    return len(_read_pieces(source))


def _read_pieces(source: Path) -> list[str]:
    if (source / "vocabulary.json").exists():
        return json.loads((source / "vocabulary.json").read_text(encoding="utf-8"))
    if (source / "vocabulary.txt").exists():
        return (source / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    raise CT2FormatError(f"{source} has no vocabulary.json or vocabulary.txt")
