"""The character-n-gram leg: grams, stable ids, BM25 weights, n-best query weights."""

import subprocess
import sys

import pytest

from assistant.sparse import CharGramEncoder, char_grams, gram_id


def test_grams_mark_word_edges_and_ignore_case_and_punctuation():
    grams = char_grams("Jonny, CASH!")
    assert grams[" cas"] == 1 and grams["ash "] == 1  # a word's start and end are grams
    assert grams["y ca"] == 1  # across the edge: a split or run-together name still shares most
    assert char_grams("jonny cash") == grams
    assert all(len(g) == 4 for g in grams)
    assert not char_grams("  ?! ")


def test_gram_ids_are_the_same_in_another_process():
    """Documents and queries are encoded by different processes: ids must not be salted."""
    other = subprocess.run([sys.executable, "-c", "from assistant.sparse import gram_id; "
                            "print(gram_id(' cas'))"], capture_output=True, text=True, check=True)
    assert int(other.stdout) == gram_id(" cas")


def test_document_weights_saturate_and_shrink_with_length():
    encoder = CharGramEncoder(avg_len=100)

    def weights(text: str) -> dict[int, float]:
        vector = encoder.document(text)
        return dict(zip(vector.indices, vector.values, strict=True))

    short, longer = weights("cash"), weights("cash " + "word " * 60)
    repeated = weights("cash cash cash")
    cas = gram_id(" cas")
    assert longer[cas] < short[cas]  # the same gram counts less in a longer chunk
    assert short[cas] < repeated[cas] < 3 * short[cas]  # more often, but saturating


def test_query_weighs_each_gram_by_the_readings_that_hold_it():
    query = CharGramEncoder().query(["jonny cash", "johnny cash"], [0.6, 0.4])
    weights = dict(zip(query.indices, query.values, strict=True))
    assert weights[gram_id(" cas")] == pytest.approx(1.0)  # in both readings
    assert weights[gram_id("onny")] == pytest.approx(0.6)  # only in the first
    assert weights[gram_id("ohnn")] == pytest.approx(0.4)
    assert not CharGramEncoder().query([""])
