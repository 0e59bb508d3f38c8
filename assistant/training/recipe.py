"""``s2r train``: the whole e2e recipe, each step resumable: voice + encode the training
speech (shards), train the head (``state.pt``), export the numpy checkpoint, its card and its
model card.  ``s2r train --decoder`` reads the same speech to adapt Whisper's decoder."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.training.ctc_trainer import TrainConfig

MODEL_CARD = """# e2e CTC head {version}

The end-to-end S2R path of s2r: a CTC head on the frozen Whisper encoder frames spells the
question (no autoregressive decoding); the frozen text embedder ({embedder}) turns the spelling
into a vector for audio chunks' speech leg, and queries search the spelling by its character
4-grams (a BM25 leg that tolerates misspelt words).

- File: `{file}` ({bytes} bytes, sha256 `{sha256}`), format `{format}`; runs in numpy.
- Encoder: `{encoder}` ({width}-wide frames, 50 per second), reduced window (speech + {margin_s} s
  margin); the head reads the speech and {tail_s} s after it.
- Design: {conv_layers} conv layer(s) ({channels} channels, kernel {kernel}) + linear to
  {vocab_size} symbols (CTC blank, space, apostrophe, a-z, 0-9); {parameters:,} parameters.
- Training data: {utterances:,} utterances, plus {validation_utterances:,} held out for
  validation ({hours:.1f} h in all), of train-split Wikipedia text: sentences, descriptions,
  templated questions. Never the eval split; also
  left out: {excluded_articles} articles of tuning sets (`--exclude-bench`).
- Voices: {voices} training voices (espeak-ng accents and variants, flite kal, festival kal,
  MBROLA where installed); never the evaluation voices (flite slt, rms, awb).
- Augmented: {augmentation}.
- Training: {epochs} epoch(s), {steps:,} steps, {train_minutes:.0f} min on {threads} CPU
  thread(s), seed {seed}. Validation character error rate by epoch: {cers}.

Intended use: spoken questions of a few seconds, in English, to s2r's retrievers (`e2e` alone
or fused in `hybrid`).  Limitations: trained on synthetic speech only; spells unseen names by
sound, so rare names come out misspelt (searching the spelling by character 4-grams absorbs
much of that); digits are seldom spelt as digits; babble noise defeats it as it defeats
Whisper tiny.en.
Reproduce: `s2r train` with the settings above (docs/training.md, "Training the e2e head").
"""


@dataclass(frozen=True)
class Recipe:
    work_dir: Path
    out: Path
    version: str = "v1"
    utterances: int = 50_000
    seed: int = 0
    workers: int = 2
    train: TrainConfig = field(default_factory=TrainConfig)
    exclude_benchmarks: tuple[Path, ...] = ()


def excluded_titles(benchmarks: tuple[Path, ...]) -> set[str]:
    """The target articles of these benchmarks' queries (e.g. a train-split tuning set), so
    the head is never trained on text about them."""
    titles: set[str] = set()
    for bench in benchmarks:
        queries = bench / "queries.jsonl"
        if not queries.is_file():
            raise FileNotFoundError(f"--exclude-bench {bench}: no queries.jsonl there")
        for line in queries.read_text(encoding="utf-8").splitlines():
            if line.strip():
                titles.update(json.loads(line).get("relevant", []))
    return titles


@dataclass(frozen=True)
class SpeechData:
    directory: Path
    texts: list[str]
    articles: list[str]  # the title of the article each text is about
    voices: list[str]
    excluded_articles: int

    def provenance(self, recipe: Recipe, settings) -> dict:
        """What both model cards say about the data and the machine."""
        from assistant.training.speech_data import Augmentation

        hours = sum(u["seconds"] for p in self.directory.glob("shard-*[0-9].json")
                    for u in json.loads(p.read_text(encoding="utf-8"))["utterances"]) / 3600
        return {"voices": len(self.voices), "hours": round(hours, 2),
                "excluded_articles": self.excluded_articles,
                "augmentation": asdict(Augmentation()), "seed": recipe.seed,
                "threads": settings.cpu_threads}


def speech_data(recipe: Recipe, settings, progress: bool, log) -> SpeechData:
    """The training speech both recipes read: made (or completed) once per seed."""
    from assistant.eval.wiki_corpus import load_summaries
    from assistant.training.speech_data import (
        article_texts,
        build_speech_data,
        training_voices,
        usable_voices,
    )

    excluded = excluded_titles(recipe.exclude_benchmarks)
    pairs = article_texts(load_summaries(), excluded, recipe.seed)
    articles, texts = [title for title, _ in pairs], [text for _, text in pairs]
    voices = usable_voices(training_voices())
    log(f"{len(texts):,} training texts, {len(voices)} voices on this machine")
    data_dir = recipe.work_dir / f"speech-seed{recipe.seed}"
    build_speech_data(data_dir, texts, voices, recipe.utterances, recipe.seed, settings,
                      recipe.workers, progress)
    return SpeechData(data_dir, texts, articles, voices, len(excluded))


def run(recipe: Recipe, settings, progress: bool = True, log=print) -> dict:
    """Data, training, export of the e2e head; returns the checkpoint's card."""
    import torch

    from assistant.runtime import Runtime
    from assistant.training import ctc_trainer

    started = time.perf_counter()
    data = speech_data(recipe, settings, progress, log)
    design = recipe.train.design
    run_dir = recipe.work_dir / (f"run-c{design.conv_layers}-w{design.channels}-k{design.kernel}"
                                 f"-e{recipe.train.epochs}-s{recipe.train.seed}")
    summary = ctc_trainer.train(data.directory, run_dir, recipe.train, settings.cpu_threads,
                                progress)
    model = ctc_trainer.CTCHeadModel(summary["width"], design)
    model.load_state_dict(torch.load(run_dir / "model.pt"))
    runtime = Runtime(settings)
    card = ctc_trainer.export(model, recipe.out, {
        "version": recipe.version,
        "encoder": runtime.transcriber.location.name,
        "margin_s": settings.tuning.s2r_margin_s, "embedder": runtime.embedder.model_id,
        **data.provenance(recipe, settings), **summary,
        "recipe_seconds": round(time.perf_counter() - started, 1)})
    recipe.out.with_suffix(".md").write_text(model_card(card, recipe.out.name),
                                             encoding="utf-8")
    return card


def run_decoder(recipe: Recipe, config, settings, progress: bool = True, log=print) -> dict:
    """Data, LoRA training and export of the Whisper decoder adapter (``config``: a
    ``DecoderTrainConfig``); returns the adapter's card."""
    from assistant.speech.checkpoint import sha256_of
    from assistant.speech.whisper import Transcriber
    from assistant.training import decoder_trainer
    from assistant.training.speech_data import attach_spoken_texts

    started = time.perf_counter()
    data = speech_data(recipe, settings, progress, log)
    if attach_spoken_texts(data.directory, data.texts):
        log("added the written text to shards made by an older s2r")
    transcriber = Transcriber(settings)
    model_bin = transcriber.model_dir / "model.bin"
    run_dir = recipe.work_dir / (f"decoder-r{config.rank}-e{config.epochs}-lr{config.lr:g}"
                                 f"{f'-c{config.context_share:g}' if config.context_share else ''}"
                                 f"{f'-n{config.max_steps}' if config.max_steps else ''}"
                                 f"-s{config.seed}")
    prompts = None
    if config.context_share:
        from assistant.eval.wiki_corpus import load_summaries
        from assistant.retrieval.embedder import TextEmbedder
        from assistant.training.candidate_prompts import CandidatePrompts

        log("finding each training article's nearest neighbours (the prompts' candidates)")
        prompts = CandidatePrompts.for_training(
            load_summaries(), data.articles, data.texts, TextEmbedder(settings).embed,
            transcriber.model.hf_tokenizer)
    decoder, summary = decoder_trainer.train(
        model_bin, transcriber.model.hf_tokenizer, data.directory, run_dir, config,
        settings.cpu_threads, progress, prompts)
    card = decoder_trainer.export(decoder, recipe.out, sha256_of(model_bin), {
        "version": recipe.version, "base": transcriber.location.name,
        **data.provenance(recipe, settings), **summary,
        "recipe_seconds": round(time.perf_counter() - started, 1)})
    recipe.out.with_suffix(".md").write_text(decoder_model_card(card, recipe.out.name),
                                             encoding="utf-8")
    return card


def model_card(card: dict, file: str) -> str:
    design = card["design"]
    cers = ", ".join(f"{h['validation_cer']:.3f}" for h in card["history"]
                     if h["validation_cer"] is not None) or "none"
    augmentation = ", ".join(f"{k} {v:.0%}" for k, v in card["augmentation"].items())
    return MODEL_CARD.format(
        file=file, vocab_size=len(card["vocab"]), cers=cers, augmentation=augmentation,
        epochs=card["train_config"]["epochs"], train_minutes=card["train_seconds"] / 60,
        **design, **{k: card[k] for k in (
            "version", "embedder", "bytes", "sha256", "format", "encoder", "width", "margin_s",
            "tail_s", "parameters", "utterances", "hours", "voices", "validation_utterances",
            "steps", "threads", "seed", "excluded_articles")})


DECODER_MODEL_CARD = """# Whisper decoder adapter {version}

A low-rank (LoRA) update of the decoder of the Whisper model s2r ships ({base}), so the integrated
S2R decode hears the rare names of spoken questions better.  It is merged into a cached copy of
the model at run time (`assistant/speech/decoder_adapter.py`); the encoder is unchanged.

- File: `{file}` ({bytes:,} bytes, sha256 `{sha256}`), format `{format}`; for the
  model.bin with sha256 `{base_sha256}` only.
- Design: rank {rank} (scale {alpha:g}/{rank}) on the 10 linear maps of each decoder layer
  (self-attention q, k, v, out; cross-attention q, k, v, out; both feed-forward maps);
  {parameters:,} parameters, stored in float16.  Embeddings, layer norms and biases are frozen.
- Training data: the e2e head's speech (`s2r train`, {hours:.1f} h in all): {utterances:,}
  utterances; the last two shards are kept out of training and {validation_utterances:,} of
  them score the validation loss.  Train-split Wikipedia text: sentences, descriptions,
  templated questions; the targets are the text as written.  Never the eval split; also left
  out: {excluded_articles} articles of tuning sets (`--exclude-bench`).
- Voices: {voices} training voices (espeak-ng accents and variants, flite kal, festival kal,
  MBROLA where installed); never the evaluation voices (flite slt, rms, awb).
- Augmented: {augmentation}.
- Training: teacher forcing on the cached encoder frames, {epochs} epoch(s), {steps:,} steps,
  peak learning rate {lr:g}, {train_minutes:.0f} min on {threads} CPU thread(s), seed {seed}.
  Validation loss (per token): {validation_loss_before} before, {validation_loss} after.{start}
- Previous-text prompts: {prompts}

Intended use: short English spoken questions to s2r (`s2r`, `hybrid`, the transcript `talk`
and `ask` show).  Limitations: trained on synthetic speech only, so it may help real voices less;
the cascade baseline and document transcripts keep the packaged decoder.  Turn it off with
`S2R_DECODER_ADAPTER=none`.  Reproduce: `s2r train --decoder` with the settings above (see
docs/training.md, "Adapting the decoder").
"""


def decoder_model_card(card: dict, file: str) -> str:
    config = card["train_config"]
    augmentation = ", ".join(f"{k} {v:.0%}" for k, v in card["augmentation"].items())
    share = config.get("context_share", 0.0)
    prompts = "none, so the hybrid's second decode (which reads the top hits' names first) " \
        "keeps the packaged decoder." if not share else (
            f"{share:.0%} of the utterances are heard after a prompt like the one the hybrid's "
            "second decode reads: the titles and rare words of five candidates, the article's "
            "nearest neighbours by the embedder, with the article itself among them 70 % of "
            "the time.  So that decode runs on this adapter too.  Validation loss after a "
            f"prompt: {card.get('validation_loss_prompted_before')} before, "
            f"{card.get('validation_loss_prompted')} after.")
    start = f"\n  It started from the adapter `{Path(config['init']).name}`; the figures " \
        "above are of this run only." if config.get("init") else ""
    return DECODER_MODEL_CARD.format(
        file=file, augmentation=augmentation, rank=config["rank"], alpha=config["alpha"],
        prompts=prompts, start=start,
        epochs=config["epochs"], lr=config["lr"], train_minutes=card["train_seconds"] / 60,
        **{k: card[k] for k in (
            "version", "base", "bytes", "sha256", "format", "base_sha256", "parameters",
            "utterances", "validation_utterances", "hours", "excluded_articles", "voices",
            "steps", "threads", "seed", "validation_loss_before", "validation_loss")})
