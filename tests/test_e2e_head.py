"""The e2e CTC head: the bundled checkpoint's integrity checks, numpy inference matching the
torch model it was exported from, resumable training, and spelling real speech."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from assistant.eval.metrics import edit_distance
from assistant.speech.e2e import (
    DEFAULT_MODEL,
    VOCAB,
    CTCHead,
    E2EModelError,
    greedy_decode,
    normalize_text,
    spell_audio,
)
from assistant.speech.tts import synthesize
from assistant.training import ctc_trainer
from assistant.training.speech_data import Augmentation, build_shard

NO_AUGMENTATION = Augmentation(noise=0, babble=0, phone=0, reverb=0, speed=0)


def test_normalize_text_keeps_what_the_head_can_spell():
    assert normalize_text("Café Zürich's 2nd-best, (really)!") == "cafe zurich's 2nd best really"
    assert normalize_text("  ¿Qué?  ") == "que"
    assert set(normalize_text("Ωmega — 日本 and 123")) <= set(VOCAB[1:])


def test_greedy_decode_merges_repeats_and_drops_blanks():
    path = "hh_e_ll_llo_  w_o"  # "_" is the blank: "ll_l" keeps both l's
    log_probs = np.full((len(path), len(VOCAB)), -10.0)
    for t, c in enumerate(path):
        log_probs[t, VOCAB.index(c)] = 0.0
    assert greedy_decode(log_probs) == "hello wo"


@pytest.fixture
def bundled(tmp_path):
    """A copy of the shipped checkpoint and its card."""
    for suffix in (".npz", ".json"):
        shutil.copy(DEFAULT_MODEL.with_suffix(suffix), tmp_path / f"head{suffix}")
    return tmp_path / "head.npz"


@pytest.mark.slow
def test_bundled_checkpoint_loads_with_its_checksum(bundled):
    head = CTCHead.load(bundled)
    assert head.sha256 == json.loads(bundled.with_suffix(".json").read_text())["sha256"]
    assert head.width == 384 and head.card["version"]
    log_probs = head.log_probs(np.zeros((20, 384), np.float32))
    assert log_probs.shape == (20, len(VOCAB))
    assert np.allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-4)


def test_missing_or_corrupt_checkpoint_gives_a_clear_error(bundled):
    data = bytearray(bundled.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundled.write_bytes(bytes(data))
    with pytest.raises(E2EModelError, match="corrupt: sha256"):
        CTCHead.load(bundled)
    with pytest.raises(E2EModelError, match="not found: set S2R_E2E_MODEL"):
        CTCHead.load(bundled.parent / "nowhere.npz")
    bundled.with_suffix(".json").write_text("{not json")
    with pytest.raises(E2EModelError, match="card .* is unreadable"):
        CTCHead.load(bundled)
    bundled.with_suffix(".json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(E2EModelError, match="not an s2r-e2e-ctc checkpoint"):
        CTCHead.load(bundled)
    bundled.with_suffix(".json").unlink()
    with pytest.raises(E2EModelError, match="holds the checksum"):
        CTCHead.load(bundled)


@pytest.mark.slow
def test_a_head_for_another_encoder_width_is_refused(bundled):
    with pytest.raises(E2EModelError, match="384-wide"):
        CTCHead.load(bundled).spell(np.zeros((50, 512), np.float32))


@pytest.mark.slow
def test_e2e_runtime_setting(models):
    assert models.e2e.sha256 == CTCHead.load(DEFAULT_MODEL).sha256
    off = models.with_settings(e2e_model="none")
    assert not off.e2e_enabled
    with pytest.raises(E2EModelError, match="off"):
        off.e2e  # noqa: B018


SENTENCES = ["the river flows into the sea", "a bridge crosses the valley",
             "she plays the violin at night", "mountains rise above the clouds",
             "the library opens at nine", "green tea comes from china"]


@pytest.fixture(scope="module")
def shard_dir(models, tmp_path_factory):
    """One real training shard: espeak-ng speech through the Whisper encoder."""
    folder = tmp_path_factory.mktemp("shards")
    kept = build_shard(0, SENTENCES, ["espeak-ng:en-us", "espeak-ng:en-gb+f3"], seed=1,
                       out_dir=folder, recognizer=models.recognizer, aug=NO_AUGMENTATION)
    assert kept == len(SENTENCES)
    return folder


@pytest.mark.slow
def test_shards_hold_encoder_frames_and_normalized_text(shard_dir, models):
    info = json.loads((shard_dir / "shard-00000.json").read_text())
    frames = np.load(shard_dir / "shard-00000.npy")
    assert frames.dtype == np.float16 and frames.shape == (sum(info["lengths"]), 384)
    assert [u["text"] for u in info["utterances"]] == SENTENCES
    # each utterance's frames are its reduced-window pass: speech + margin, 50 frames a second
    for length, utt in zip(info["lengths"], info["utterances"], strict=True):
        assert abs(length - (utt["seconds"] + info["margin_s"]) * 50) <= 1


@pytest.mark.slow
def test_training_is_seeded_and_resumes_where_it_stopped(shard_dir, tmp_path, monkeypatch):
    config = ctc_trainer.TrainConfig(design=ctc_trainer.HeadDesign(1, 32, 3), epochs=2,
                                     batch_frames=400, validation_shards=0, warmup_steps=2,
                                     save_every=1)
    whole = ctc_trainer.train(shard_dir, tmp_path / "whole", config, threads=1, progress=False)
    assert whole["steps"] >= 4 and [h["epoch"] for h in whole["history"]] == [1, 2]

    collate, calls = ctc_trainer._collate, []

    def interrupted(*args):  # the process dies during the third step
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return collate(*args)

    monkeypatch.setattr(ctc_trainer, "_collate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ctc_trainer.train(shard_dir, tmp_path / "resumed", config, threads=1, progress=False)
    monkeypatch.setattr(ctc_trainer, "_collate", collate)
    resumed = ctc_trainer.train(shard_dir, tmp_path / "resumed", config, threads=1,
                                progress=False)
    assert resumed["steps"] == whole["steps"]
    a = torch.load(tmp_path / "whole" / "model.pt")
    b = torch.load(tmp_path / "resumed" / "model.pt")
    for name in a:
        torch.testing.assert_close(a[name], b[name])
    with pytest.raises(ValueError, match="other settings"):
        ctc_trainer.train(shard_dir, tmp_path / "whole",
                          ctc_trainer.TrainConfig(**{**config.__dict__, "lr": 1e-3}),
                          threads=1, progress=False)


@pytest.mark.slow
def test_the_exported_head_matches_the_torch_model(shard_dir, tmp_path):
    corpus = ctc_trainer.FrameCorpus(shard_dir)
    torch.manual_seed(0)
    model = ctc_trainer.CTCHeadModel(corpus.width, ctc_trainer.HeadDesign(2, 48, 5)).eval()
    card = ctc_trainer.export(model, tmp_path / "head.npz", {"version": "test"})
    head = CTCHead.load(tmp_path / "head.npz")
    assert head.sha256 == card["sha256"]
    for utt in corpus.utterances:  # real encoder frames of real speech
        frames = corpus.frames(utt)
        with torch.no_grad():
            expected = model(torch.from_numpy(frames)[None])[0].numpy()
        np.testing.assert_allclose(head.log_probs(frames), expected, atol=1e-4)
        assert head.spell(frames).text == greedy_decode(expected)


@pytest.mark.slow
def test_bundled_head_spells_a_held_out_voice(models):
    """flite's slt is one of the evaluation voices, never used in training."""
    text = "which planet has the largest moons"
    spelling = spell_audio(models.recognizer, models.e2e, synthesize(text, "flite:slt"))
    assert spelling.confidence > 0.5
    cer = edit_distance(list(spelling.text), list(text)) / len(text)
    assert cer < 0.25, spelling.text
