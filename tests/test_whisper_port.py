"""The PyTorch/NumPy port of Whisper's front end and encoder (adapter training where
CTranslate2 is not installed) computes what faster-whisper and CTranslate2 compute, on real
espeak-ng speech, and the int8 weights it carries come back within their rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assistant.audio import SAMPLE_RATE
from assistant.ct2_file import read_model
from assistant.training.whisper_port import SCALE_SUFFIX, WhisperEncoder, compact, expand, log_mel

MARGIN_S = 2.0
QUESTIONS = ["Where does the Rhine flow?",
             "Who painted the ceiling of the Sistine Chapel, and in which years did he work?"]


@pytest.fixture(scope="module")
def windows(speak) -> list[np.ndarray]:
    """Each question plus the integrated decode's margin of silence: two different lengths."""
    clips = []
    for question in QUESTIONS:
        audio = speak(question)
        clip = np.zeros(int((audio.size / SAMPLE_RATE + MARGIN_S) * SAMPLE_RATE), np.float32)
        clip[: audio.size] = audio
        clips.append(clip)
    return clips


def test_log_mel_is_faster_whispers(models, windows):
    extractor = models.transcriber.model.feature_extractor
    for clip in windows:
        np.testing.assert_allclose(log_mel(clip, extractor.mel_filters),
                                   extractor(clip, padding=0), atol=1e-5)


def test_one_batch_of_windows_encodes_each_as_ctranslate2_does_alone(models, windows):
    import ctranslate2

    model_dir = models.transcriber.model_dir
    reference = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    int8 = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="int8")
    variables = read_model(model_dir / "model.bin").variables
    extractor = models.transcriber.model.feature_extractor
    mels = [extractor(clip, padding=0)[:, : clip.size // 160 // 2 * 2] for clip in windows]
    batch = np.zeros((len(mels), mels[0].shape[0], max(m.shape[1] for m in mels)), np.float32)
    for i, mel in enumerate(mels):
        batch[i, :, : mel.shape[1]] = mel
    lengths = torch.tensor([m.shape[1] for m in mels])
    with torch.no_grad():
        ours = WhisperEncoder(variables).eval()(torch.from_numpy(batch), lengths).numpy()
        carried = WhisperEncoder(expand(compact(variables))).eval()(torch.from_numpy(batch),
                                                                    lengths).numpy()
    assert mels[0].shape[1] < mels[1].shape[1]  # the short one is padded in the batch
    for i, mel in enumerate(mels):
        alone = np.asarray(reference.encode(ctranslate2.StorageView.from_array(
            np.ascontiguousarray(mel)[None])))[0]
        frames = ours[i, : mel.shape[1] // 2]
        assert frames.shape == alone.shape
        np.testing.assert_allclose(frames, alone, atol=2e-3)
        # int8 weights move the frames a little: less than the int8 runtime s2r hears with
        runtime = np.asarray(int8.encode(ctranslate2.StorageView.from_array(
            np.ascontiguousarray(mel)[None])))[0]
        kept = cosine(carried[i, : mel.shape[1] // 2], alone)
        assert kept > 0.999 and kept > cosine(runtime, alone)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of corresponding frames."""
    return float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1)
                         / np.linalg.norm(b, axis=1)))


def test_compact_weights_come_back_within_half_a_step():
    rng = np.random.default_rng(0)
    variables = {"matrix": rng.standard_normal((300, 400)).astype(np.float16),
                 "vector": rng.standard_normal(300).astype(np.float16),
                 "heads": np.array(6, np.int16)}
    variables["matrix"][7] = 0  # an all-zero row keeps a finite scale
    packed = compact(variables)
    assert packed["matrix"].dtype == np.int8 and packed["vector"].dtype == np.float16
    assert packed["heads"] == 6 and packed["heads"].dtype == np.int16
    back = expand(packed)
    assert set(back) == set(variables) and SCALE_SUFFIX not in "".join(back)
    step = 1 / packed["matrix" + SCALE_SUFFIX]
    error = np.abs(back["matrix"] - variables["matrix"].astype(np.float32))
    assert np.all(error <= step[:, None] / 2 + 1e-6)
    assert not back["matrix"][7].any()
    np.testing.assert_array_equal(back["vector"], variables["vector"].astype(np.float32))
