import itertools

import pytest

from assistant.index.chunking import chunk_text
from assistant.text import split_sentences


def words(text: str) -> int:
    return len(text.split())


def test_sentences_respect_abbreviations_and_paragraphs():
    text = ("Dr. Smith met J. S. Bach at 5 p.m. in St. Louis. They talked! Did it rain?\n\n"
            "A new paragraph starts here")
    assert split_sentences(text) == [
        "Dr. Smith met J. S. Bach at 5 p.m. in St. Louis.",
        "They talked!",
        "Did it rain?",
        "A new paragraph starts here",
    ]


def test_chunks_stay_within_budget_and_overlap_by_whole_sentences():
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(30)]
    chunks = chunk_text(" ".join(sentences), words, max_tokens=30, overlap_tokens=8)
    assert all(words(c) <= 30 for c in chunks)
    assert len(chunks) > 5
    for prev, nxt in itertools.pairwise(chunks):
        last = prev.split(". ")[-1].rstrip(".") + "."
        assert nxt.startswith(last)  # the last sentence is repeated: overlap
    joined = " ".join(chunks)
    assert all(s in joined for s in sentences)  # nothing lost


def test_no_overlap_means_disjoint_chunks():
    text = " ".join(f"Fact {i} is here." for i in range(20))
    chunks = chunk_text(text, words, max_tokens=8, overlap_tokens=0)
    assert " ".join(chunks) == text


def test_long_sentences_and_giant_words_are_split():
    long_sentence = " ".join(["word"] * 95)
    giant = "x" * 5000
    letters = lambda t: len(t.replace(" ", ""))  # noqa: E731  (additive, like word pieces)
    chunks = chunk_text(f"{long_sentence} {giant}", letters, max_tokens=100, overlap_tokens=0)
    assert all(letters(c) <= 100 for c in chunks)
    assert "".join(chunks).replace(" ", "") == (long_sentence + giant).replace(" ", "")


def test_empty_text_gives_no_chunks():
    assert chunk_text("  \n\n ", words) == []
    with pytest.raises(ValueError):
        chunk_text("a", words, max_tokens=10, overlap_tokens=10)
