"""The answering benchmark's scoring: what counts as a correct answer, and the abstention
trade-off read off the recorded relevance."""

from __future__ import annotations

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from answering import is_correct, key_words, tradeoff


def test_an_answer_is_correct_when_it_holds_every_content_word_of_the_key_phrase():
    assert key_words("Mercury (planet)") == {"mercury"}
    assert key_words("Battle of Hastings") == {"battle", "hasting"}  # singular, as the answer
    assert is_correct("It was Sir Arthur Conan Doyle [1].", {"Arthur Conan Doyle"})
    assert not is_correct("It was Doyle [1].", {"Arthur Conan Doyle"})
    assert is_correct("The hastings battle.", {"Battle of Hastings"})
    assert is_correct("They were the pterosaurs [1].", {"Pterosaur"})  # a plural names it
    assert is_correct("Monty Python's Flying Circus [1].", {"Monty Python"})  # a possessive
    assert not is_correct("The pterodactyl [1].", {"Pterosaur"})
    assert key_words("Mathematics of Mars") == {"mathematic", "mar"}  # both sides alike
    assert is_correct("Mars and its mathematics.", {"Mathematics of Mars"})


def row(relevance: float, correct: bool, retrieved: bool, idk: bool = False) -> dict:
    return {"relevance": relevance, "correct": correct, "relevant_in_sources": retrieved,
            "i_dont_know": idk}


def test_the_tradeoff_counts_abstentions_below_each_threshold():
    rows = [row(0.8, True, True), row(0.6, False, True), row(0.3, False, False),
            row(0.1, False, False, idk=True)]
    table = {t["threshold"]: t for t in tradeoff(rows)}
    assert table[0.0]["correct"] == 0.25 and table[0.0]["wrong"] == 0.5
    assert table[0.0]["abstained"] == 0.25  # the model's own "I don't know"
    assert table[0.0]["wrong_when_not_retrieved"] == 0.5
    assert table[0.35]["wrong_when_not_retrieved"] == 0.0
    assert table[0.35]["correct_when_retrieved"] == 0.5
