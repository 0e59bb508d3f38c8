"""The spoken-query decoder pruned to the collection's word pieces: file format, id mapping,
the same transcripts as the full decoder, and a vocabulary that follows the collection."""

import struct

import pytest

from assistant.index.ingest import Ingestor
from assistant.speech.ct2_file import CT2FormatError, read_model, write_model
from assistant.speech.decoder_vocab import (
    COMMON_PIECES,
    FIRST_SPECIAL,
    DecoderVocabulary,
    piece_count,
)
from assistant.speech.integrated import DecodeConfig, IntegratedRecognizer
from assistant.text import normalize_words
from connectors.base import TextDocument
from tests.conftest import sharing_store

pytestmark = pytest.mark.slow

SENTENCES = ["Who painted the ceiling of the Sistine Chapel?",
             "The first coffee house in London opened in the seventeenth century.",
             "What is the highest mountain on Earth?"]


def _pieces(models, text: str) -> list[int]:
    return models.transcriber.model.hf_tokenizer.encode(text, add_special_tokens=False).ids


def test_model_bin_round_trips_byte_for_byte(models, tmp_path):
    source = models.transcriber.model_dir / "model.bin"
    write_model(read_model(source), tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == source.read_bytes()


def test_a_damaged_model_bin_is_refused_with_the_reason(models, tmp_path):
    data = (models.transcriber.model_dir / "model.bin").read_bytes()
    damaged = tmp_path / "model.bin"
    damaged.write_bytes(data[:5000])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_model(damaged)
    damaged.write_bytes(struct.pack("<I", 99) + data[4:5000])
    with pytest.raises(CT2FormatError, match="version 99"):
        read_model(damaged)


def test_the_vocabulary_keeps_the_texts_pieces_and_maps_ids_both_ways(models):
    size = piece_count(models.transcriber.model_dir)
    vocabulary = DecoderVocabulary.from_texts(["Quetzalcoatl, the feathered serpent"],
                                              models.transcriber.model.hf_tokenizer, size)
    kept = set(vocabulary.kept.tolist())
    name = _pieces(models, " Quetzalcoatl")
    assert [i for i in name if i >= COMMON_PIECES]  # the name needs uncommon pieces, kept
    assert set(name) | set(_pieces(models, "Quetzalcoatl")) <= kept
    assert {FIRST_SPECIAL, size - 1} <= kept and set(range(COMMON_PIECES)) <= kept
    assert len(kept) < COMMON_PIECES + (size - FIRST_SPECIAL) + 20
    assert vocabulary.from_pruned(vocabulary.to_pruned(name)) == name
    dropped = next(i for i in range(COMMON_PIECES, FIRST_SPECIAL) if i not in kept)
    with pytest.raises(KeyError):
        vocabulary.to_pruned([dropped])


def test_the_pruned_decoder_hears_collection_words_as_the_full_one_does(models, speak):
    vocabulary = DecoderVocabulary.from_texts(SENTENCES, models.transcriber.model.hf_tokenizer,
                                              piece_count(models.transcriber.model_dir))
    pruned = IntegratedRecognizer(models.transcriber, DecodeConfig(), vocabulary)
    assert pruned.model is not models.recognizer.model
    for sentence in SENTENCES:
        audio = speak(sentence)
        heard = pruned.recognize(audio)
        assert heard.fallback is None
        assert normalize_words(heard.text) == normalize_words(models.recognizer.recognize(
            audio).text)
    # the pruned model is written and loaded once per vocabulary
    assert IntegratedRecognizer(models.transcriber, DecodeConfig(), vocabulary).model is \
        pruned.model


def test_spoken_queries_use_the_collection_vocabulary_and_see_new_documents(runtime):
    ingest = Ingestor(runtime).ingest_documents
    assert ingest([TextDocument("a", "Axolotl", "The axolotl lives in Lake Xochimilco.")],
                  progress=False).ok
    first = runtime.query_recognizer
    assert first is not runtime.recognizer and first.vocabulary is not None
    assert set(_pieces(runtime, " Xochimilco")) <= set(first.vocabulary.kept.tolist())
    assert ingest([TextDocument("b", "Aztecs", "Quetzalcoatl was a feathered serpent.")],
                  progress=False).ok
    second = runtime.query_recognizer
    assert set(_pieces(runtime, " Quetzalcoatl")) <= set(second.vocabulary.kept.tolist())
    full = sharing_store(runtime, s2r_vocabulary="full")
    assert full.query_recognizer is full.recognizer


def test_a_document_replaced_by_one_as_long_gets_its_words_decoded(runtime):
    """The cached vocabulary is keyed by the collection's sources and versions, not only its
    size: another process (here a fresh runtime) sees the replacement."""
    ingest = Ingestor(runtime).ingest_documents
    assert ingest([TextDocument("a", "Axolotl", "The axolotl lives in Lake Xochimilco.")],
                  progress=False).ok
    before = sharing_store(runtime).query_recognizer.vocabulary
    assert ingest([TextDocument("a", "Aztecs", "Quetzalcoatl was a feathered serpent.")],
                  progress=False).ok
    assert runtime.store.count() == 1  # same size as before
    after = sharing_store(runtime).query_recognizer.vocabulary
    assert not set(_pieces(runtime, " Quetzalcoatl")) <= set(before.kept.tolist())
    assert set(_pieces(runtime, " Quetzalcoatl")) <= set(after.kept.tolist())


def test_a_cache_that_cannot_be_written_costs_speed_not_the_query(runtime, tmp_path, caplog):
    assert Ingestor(runtime).ingest_documents(
        [TextDocument("a", "Axolotl", "The axolotl lives in Lake Xochimilco.")],
        progress=False).ok
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    derived = sharing_store(runtime, cache_dir=blocker / "cache")  # mkdir fails under a file
    assert derived.query_recognizer is derived.recognizer
    assert "full decoder vocabulary" in caplog.text
