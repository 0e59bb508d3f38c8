"""The character-n-gram leg: grams, stable ids, BM25 weights, n-best query weights."""

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.retrieval.sparse import (
    BM25_K1,
    CharGramEncoder,
    SoundKeyEncoder,
    char_grams,
    gram_id,
    sound_keys,
    word_grams,
)


def test_grams_mark_word_edges_and_ignore_case_and_punctuation():
    grams = char_grams("Jonny, CASH!")
    assert grams[" cas"] == 1 and grams["ash "] == 1  # a word's start and end are grams
    assert grams["y ca"] == 1  # across the edge: a split or run-together name still shares most
    assert char_grams("jonny cash") == grams
    assert all(len(g) == 4 for g in grams)
    assert not char_grams("  ?! ")
    # the one-word shortcut coverage uses makes the same grams
    assert word_grams("cash") == set(char_grams("cash"))
    assert word_grams("jonnycash") == set(char_grams("jonnycash"))


def test_gram_ids_are_the_same_in_another_process():
    """Documents and queries are encoded by different processes: ids must not be salted."""
    other = subprocess.run([sys.executable, "-c", "from assistant.retrieval.sparse import gram_id; "
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


def test_sound_keys_match_words_that_sound_alike_but_share_few_letters():
    """"organ" for "Oregon": no character 4-gram in common, the same Metaphone key."""
    assert not set(char_grams("oregon")) & set(char_grams("organ"))
    assert sound_keys("Oregon")["=ORKN"] == 1 and sound_keys("organ")["=ORKN"] == 1
    assert sound_keys("Xavier") == sound_keys("zavier")
    assert not sound_keys("  ?! ")


def test_sound_grams_run_across_words_so_a_split_name_still_matches():
    whole, split = sound_keys("Mozambique"), sound_keys("mozam beak")
    assert "=MSMBK" in whole and "=MSMBK" not in split  # the word keys differ …
    grams = lambda keys: {k for k in keys if not k.startswith("=")}  # noqa: E731
    assert grams(whole) <= grams(split)  # … but every key n-gram of the name is heard


def test_sound_encoder_weighs_keys_by_the_readings_that_hold_them():
    query = SoundKeyEncoder().query(["organ", "oregon"], [0.7, 0.3])
    weights = dict(zip(query.indices, query.values, strict=True))
    assert weights[gram_id("=ORKN")] == pytest.approx(1.0)
    document = SoundKeyEncoder().document("Oregon is a state")
    assert gram_id("=ORKN") in document.indices


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gets_sound_terms_without_error(text):
    """Every chunk's text goes through ``sound_keys`` at ingest: no text may break it."""
    vector = SoundKeyEncoder().document(text)
    assert list(vector.indices) == sorted(set(vector.indices))
    assert all(0 < w < BM25_K1 + 1 for w in vector.values)
