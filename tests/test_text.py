"""The one word normaliser and sentence splitter, as each user of them needs them."""

from assistant.interfaces.talk.loop import SentenceBuffer
from assistant.text import normalize_words, terms


def test_words_count_words_not_formatting():
    assert normalize_words("Don't stop—the well-known Café, O'Brien!") == [
        "don't", "stop", "the", "well", "known", "café", "o'brien"]


def test_index_terms_also_split_at_apostrophes_and_underscores():
    # the split that the stored collections' sparse vectors were made with
    assert terms("Don't snake_case O'Brien's 1990s") == [
        "don", "t", "snake", "case", "o", "brien", "s", "1990s"]


def test_streamed_answer_is_spoken_by_whole_sentences():
    spoken: list[str] = []
    buffer = SentenceBuffer(spoken.append)
    for delta in ["Dr. Smi", "th lives in St. Ives. ", "He is", "  a doctor.\n\n", "Then ",
                  "more!"]:
        buffer.add(delta)
    assert spoken == ["Dr. Smith lives in St. Ives.", "He is a doctor."]  # the last waits
    buffer.flush()
    assert spoken[-1] == "Then more!"
