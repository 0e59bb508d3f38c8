"""Sentence-aware text chunking with overlap, measured in embedder tokens.

Chunks end on sentence boundaries where possible, so a chunk's embedding covers whole thoughts;
consecutive chunks share their last sentences (the overlap) so a fact that straddles a boundary
is still found whole in one of them.  A sentence longer than a chunk is split on word boundaries.
"""

from __future__ import annotations

from collections.abc import Callable

from assistant.text import split_sentences


def chunk_text(text: str, count_tokens: Callable[[str], int], max_tokens: int = 200,
               overlap_tokens: int = 40) -> list[str]:
    """Pack sentences into chunks of at most ``max_tokens``, overlapping by whole sentences."""
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("overlap_tokens must be >= 0 and < max_tokens")
    pieces: list[tuple[str, int]] = []
    for sentence in split_sentences(text):
        n = count_tokens(sentence)
        if n <= max_tokens:
            pieces.append((sentence, n))
        else:
            pieces.extend(_split_long(sentence, count_tokens, max_tokens))
    chunks: list[str] = []
    current: list[tuple[str, int]] = []
    size = 0
    for piece, n in pieces:
        if current and size + n > max_tokens:
            chunks.append(" ".join(p for p, _ in current))
            current, size = _overlap_tail(current, overlap_tokens, max_tokens - n)
        current.append((piece, n))
        size += n
    if current:
        chunks.append(" ".join(p for p, _ in current))
    return chunks


def _overlap_tail(pieces: list[tuple[str, int]], overlap: int, room: int
                  ) -> tuple[list[tuple[str, int]], int]:
    """The trailing sentences to repeat at the start of the next chunk."""
    tail: list[tuple[str, int]] = []
    size = 0
    for piece, n in reversed(pieces):
        if size + n > min(overlap, room):
            break
        tail.insert(0, (piece, n))
        size += n
    return tail, size


def _split_long(sentence: str, count_tokens: Callable[[str], int], max_tokens: int
                ) -> list[tuple[str, int]]:
    """Split an over-long sentence on word boundaries (inside a word only if it must).

    Word-piece counts add up across whitespace, so each word is counted once: linear even for
    a megabyte-long line.
    """
    out: list[tuple[str, int]] = []
    words: list[str] = []
    size = 0
    for word in sentence.split():
        n = count_tokens(word)
        while n > max_tokens:  # a single enormous "word", e.g. base64
            cut = max(1, len(word) * max_tokens // (n + 1))
            if words:
                out.append((" ".join(words), size))
                words, size = [], 0
            out.append((word[:cut], count_tokens(word[:cut])))
            word = word[cut:]
            n = count_tokens(word)
        if words and size + n > max_tokens:
            out.append((" ".join(words), size))
            words, size = [], 0
        words.append(word)
        size += n
    if words:
        out.append((" ".join(words), size))
    return out
