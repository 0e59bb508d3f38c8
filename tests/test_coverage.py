"""Reordering the fused top hits by how much of the question each one covers."""

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant.index.ingest import Ingestor
from assistant.retrieval.coverage import (
    PassageWords,
    content_words,
    coverage,
    reorder,
    rerank_by_coverage,
)
from assistant.retrieval.retriever import Retriever
from assistant.retrieval.store.base import Hit
from tests.conftest import sharing_store

UMBRELLA = "An umbrella or parasol is a folding canopy supported by wooden or metal ribs."
INEQUALITY = ("Economic inequality: an umbrella term for how income is paid out, and how much "
              "owners of capital hold.")


def test_content_words_leave_out_the_question_frame():
    assert content_words("What is the capital of New York?") == ["capital", "new", "york"]


def test_a_heard_word_matches_its_counterpart_by_spelling_sound_or_run_together():
    words = PassageWords("Moons of Ganymede; Oregon borders New York, founded 1726.")
    assert words.match("oregon") == 1.0
    assert words.match("ganymedes") == 1.0  # an inflection
    assert words.match("newyork") == 1.0  # two words heard as one
    assert words.match("organ") == pytest.approx(0.8)  # the same Metaphone key
    assert 0.3 < words.match("ganymeed") < 1.0  # most 4-grams shared
    assert words.match("piano") == 0.0
    assert words.match("1746") < 0.8  # numbers have no sound key to share


def test_the_passage_holding_every_word_covers_more():
    readings, weights = ["umbrella pedoners", "umbrella paid owners"], [0.6, 0.4]
    assert coverage(readings, weights, INEQUALITY) > coverage(readings, weights, UMBRELLA)
    assert coverage(["umbrella paid owners"], [1.0], INEQUALITY) == 1.0
    assert coverage(["what is it"], [1.0], UMBRELLA) == 0.0  # no content words


def test_reorder_puts_the_covering_hit_first_and_keeps_scores_in_order():
    hits = [Hit("a", 2.0, {"text": UMBRELLA}), Hit("b", 1.8, {"text": INEQUALITY}),
            Hit("c", 1.0, {"text": "A pipe organ."}), Hit("d", 0.5, {"text": "Socks."})]
    reordered = rerank_by_coverage(hits, ["umbrella paid owners"], [1.0], 3.0, depth=3)
    assert [h.id for h in reordered] == ["b", "a", "c", "d"]
    assert reordered[-1].score <= 0  # below the reordered head, on the same scale
    assert rerank_by_coverage(hits, ["umbrella paid owners"], [1.0], 3.0, depth=1) == hits


@given(st.lists(st.floats(-5, 5), min_size=0, max_size=12),
       st.lists(st.floats(0, 1), min_size=0, max_size=12), st.floats(0, 10))
def test_reorder_is_a_permutation_with_descending_scores(scores, coverages, weight):
    hits = [Hit(str(i), s) for i, s in enumerate(sorted(scores, reverse=True))]
    reordered = reorder(hits, coverages[: len(hits)], weight)
    assert sorted(h.id for h in reordered) == sorted(h.id for h in hits)
    assert all(a.score >= b.score for a, b in pairwise(reordered))


@pytest.fixture(scope="module")
def gazelles(models, wiki, tmp_path_factory):
    """"Gazelle" and "Ngorongoro Conservation Area" (whose text has abuts, Maasai and
    gazelles) among 30 other articles, in a real collection."""
    wanted = {"Gazelle", "Ngorongoro Conservation Area"}
    chosen = [a for a in wiki if a["title"] in wanted]
    chosen += [a for a in wiki[::180] if a["title"] not in wanted][:30]
    folder = tmp_path_factory.mktemp("gazelles")
    for article in chosen:
        (folder / (article["title"].replace("/", "_") + ".txt")).write_text(article["extract"])
    runtime = models.with_settings(data_dir=tmp_path_factory.mktemp("gazelles-data"))
    assert Ingestor(runtime).ingest_paths([str(folder)], progress=False).ok
    yield runtime
    runtime.close()


def first_source(runtime, question: str, **settings) -> str:
    result = Retriever(sharing_store(runtime, **settings)).search_text(question, top_k=1)
    return result.hits[0].payload["source"].rsplit("/", 1)[-1]


@pytest.mark.slow
def test_a_misheard_keyword_question_finds_the_article_holding_all_its_words(gazelles):
    heard = "the butts missaw gazelles"  # tiny.en's reading of "abuts maasai gazelles"
    assert first_source(gazelles, heard, coverage_weight=0.0) == "Gazelle.txt"
    assert first_source(gazelles, heard) == "Ngorongoro Conservation Area.txt"
    # a question longer than coverage_max_words is left in the fused order
    assert first_source(gazelles, heard, coverage_max_words=3) == "Gazelle.txt"
    timings = Retriever(gazelles).search_text(heard).timings_ms
    assert timings["coverage"] > 0
