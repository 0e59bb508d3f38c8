"""``s2r train``: the whole e2e recipe, each step resumable: voice + encode the training
speech (shards), train the head (``state.pt``), export the numpy checkpoint, its card and its
model card."""

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
Reproduce: `s2r train` with the settings above (see README, "Training the e2e head").
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


def run(recipe: Recipe, settings, progress: bool = True, log=print) -> dict:
    """Data, training, export; returns the checkpoint's card."""
    import torch

    from assistant.runtime import Runtime
    from assistant.training import ctc_trainer
    from assistant.training.speech_data import (
        Augmentation,
        build_speech_data,
        training_texts,
        training_voices,
        usable_voices,
    )
    from assistant.wiki_corpus import load_summaries

    started = time.perf_counter()
    excluded = excluded_titles(recipe.exclude_benchmarks)
    texts = training_texts(load_summaries(), excluded, recipe.seed)
    voices = usable_voices(training_voices())
    log(f"{len(texts):,} training texts, {len(voices)} voices on this machine")
    data_dir = recipe.work_dir / f"speech-seed{recipe.seed}"
    build_speech_data(data_dir, texts, voices, recipe.utterances, recipe.seed, settings,
                      recipe.workers, progress)
    design = recipe.train.design
    run_dir = recipe.work_dir / (f"run-c{design.conv_layers}-w{design.channels}-k{design.kernel}"
                                 f"-e{recipe.train.epochs}-s{recipe.train.seed}")
    summary = ctc_trainer.train(data_dir, run_dir, recipe.train, settings.cpu_threads, progress)
    model = ctc_trainer.CTCHeadModel(summary["width"], design)
    model.load_state_dict(torch.load(run_dir / "model.pt"))
    seconds = sum(u["seconds"] for p in data_dir.glob("shard-*[0-9].json")
                  for u in json.loads(p.read_text(encoding="utf-8"))["utterances"])
    runtime = Runtime(settings)
    card = ctc_trainer.export(model, recipe.out, {
        "version": recipe.version,
        "encoder": runtime.transcriber.location.name,
        "margin_s": settings.s2r_margin_s, "embedder": runtime.embedder.model_id,
        "voices": len(voices), "hours": round(seconds / 3600, 2),
        "excluded_articles": len(excluded),
        "augmentation": asdict(Augmentation()), "seed": recipe.seed,
        "threads": settings.cpu_threads, **summary,
        "recipe_seconds": round(time.perf_counter() - started, 1)})
    recipe.out.with_suffix(".md").write_text(model_card(card, recipe.out.name),
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
