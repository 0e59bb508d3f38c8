"""Previous-text prompts for adapter training: candidates are an article's nearest neighbours
by the real embedder, the article itself among them only sometimes, and the prompt is built as
the hybrid's second decode builds its own."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.speech.decode_context import candidate_context, previous_text_prompt
from assistant.training.candidate_prompts import (
    PASSAGE_CHARS,
    CandidatePrompts,
    article_passages,
    nearest_articles,
)

pytestmark = pytest.mark.slow

WIKI = {
    "Rhine": {"extract": "The Rhine is a river that flows from the Swiss Alps through Germany "
                         "and the Netherlands into the North Sea."},
    "Danube": {"extract": "The Danube is a river of Central Europe that flows through Vienna, "
                          "Budapest and Belgrade into the Black Sea."},
    "Elbe": {"extract": "The Elbe is a river of Central Europe that rises in the Krkonose "
                        "mountains and flows through Dresden and Hamburg to the North Sea."},
    "Mona Lisa": {"extract": "The Mona Lisa is a portrait painting by Leonardo da Vinci, kept "
                             "at the Louvre in Paris. " * 12},
    "The Last Supper": {"extract": "The Last Supper is a mural painting by Leonardo da Vinci "
                                   "in the refectory of Santa Maria delle Grazie in Milan."},
    "Green tea": {"extract": "Green tea is a type of tea made from Camellia sinensis leaves "
                             "that have not undergone withering and oxidation."},
}
SPOKEN = {"Which river flows into the North Sea?": "Rhine",
          "Who painted the Mona Lisa?": "Mona Lisa"}


@pytest.fixture(scope="module")
def prompts(models):
    return CandidatePrompts.for_training(WIKI, [*SPOKEN.values(), "Green tea"],
                                         [*SPOKEN, "Green tea comes from China."],
                                         models.embedder.embed,
                                         models.transcriber.model.hf_tokenizer, neighbours=2)


def test_neighbours_are_the_closest_other_articles(models):
    passages = article_passages(WIKI, list(WIKI))
    assert len(passages["Mona Lisa"]) <= PASSAGE_CHARS < len(WIKI["Mona Lisa"]["extract"])
    assert WIKI["Mona Lisa"]["extract"].startswith(passages["Mona Lisa"] + " ")  # at a word
    near = nearest_articles(passages, models.embedder.embed, k=2, block=4)
    assert all(title not in near[title] and len(near[title]) == 2 for title in WIKI)
    assert set(near["Rhine"]) == {"Danube", "Elbe"}  # the other rivers
    assert near["Mona Lisa"][0] == "The Last Supper"


def test_candidates_come_from_the_training_articles_with_the_right_one_sometimes(prompts,
                                                                                 models):
    # only the three training articles are candidates: nothing else of the wiki
    assert set(prompts.passages) == {"Rhine", "Mona Lisa", "Green tea"}
    rng = np.random.default_rng(0)
    drawn = [prompts.candidates("Who painted the Mona Lisa?", rng) for _ in range(400)]
    assert all(len(c) == 2 and len(set(c)) == 2 for c in drawn)
    share = np.mean(["Mona Lisa" in c for c in drawn])
    assert 0.6 < share < 0.8  # include = 0.7
    assert prompts.candidates("A text of no training article.", rng) == []
    alone = CandidatePrompts.for_training(WIKI, ["Rhine"], ["The Rhine."], models.embedder.embed,
                                          models.transcriber.model.hf_tokenizer)
    assert {tuple(alone.candidates("The Rhine.", rng)) for _ in range(50)} == {(), ("Rhine",)}


def test_the_prompt_is_the_one_the_second_decode_reads(prompts, models):
    tokenizer = models.recognizer.tokenizer  # the one decode_with_context encodes with
    rng = np.random.default_rng(3)
    ids = prompts.prompt("Which river flows into the North Sea?", rng)
    titles = prompts.candidates("Which river flows into the North Sea?",
                                np.random.default_rng(3))
    context = candidate_context([(t, prompts.passages[t]) for t in titles],
                                models.transcriber.model.hf_tokenizer)
    assert ids == previous_text_prompt(tokenizer, context)
    assert ids[0] == tokenizer.sot_prev
    assert tokenizer.decode(ids[1:]).strip() == context
    assert context.startswith(", ".join(titles))
