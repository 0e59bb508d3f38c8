"""The one word normaliser and the one sentence splitter that every part of s2r uses.

Word error rates, index terms, coverage, benchmark keywords and training transcripts all count
the same words; chunking, the model's focused sources and spoken answers all cut text at the
same sentence ends ("Dr. Smith" and "J. S. Bach" are not two sentences anywhere).
"""

from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w\s']")
_TERM_BREAK = re.compile(r"[_']+")


def normalize_words(text: str) -> list[str]:
    """Lowercase words without punctuation (hyphens split, apostrophes kept), so a word error
    rate counts words, not formatting."""
    return _PUNCT.sub(" ", text.lower().replace("-", " ")).split()


def terms(text: str) -> list[str]:
    """The words of ``text`` split at apostrophes too: what the sparse legs index
    ("don't" is the terms "don" and "t", as the stored collections have them)."""
    return [part for word in normalize_words(text) for part in _TERM_BREAK.split(word) if part]


_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "fig", "no",
    "vol", "approx", "inc", "ltd", "co", "corp", "u.s", "u.k", "a.m", "p.m", "ca", "cf", "al",
}
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_PARAGRAPH = re.compile(r"\n\s*\n+")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences; paragraphs always break, abbreviations don't."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        start = 0
        for match in _SENTENCE_END.finditer(paragraph):
            candidate = paragraph[start : match.start()].rstrip()
            last_word = candidate.rsplit(" ", 1)[-1].rstrip(".").lower()
            if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word):
                continue  # "Dr. Smith", "J. S. Bach": not a sentence end
            sentences.append(paragraph[start : match.end()].strip())
            start = match.end()
        if paragraph[start:].strip():
            sentences.append(paragraph[start:].strip())
    return sentences
