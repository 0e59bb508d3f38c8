"""Train the Whisper decoder adapter on an accelerator machine, in one bounded run.

`s2r train --decoder` runs anywhere, slowly: on 2 cores its data step (voicing and encoding
~48k utterances) takes hours, and training one epoch 40 min.  This script does the same recipe
where a GPU is lent for minutes and nothing can be installed: PyTorch, NumPy, SciPy and
`tokenizers` are all it needs there.

    python scripts/adapt_decoder_gpu.py pack KIT --exclude-bench bench-data/tune600/clean \\
        --init assistant/models/whisper-decoder-lora-v2.npz      # here: builds the kit (42 MB)
    python scripts/adapt_decoder_gpu.py run KIT OUT --synth-seconds 235 --train-seconds 105 \\
        --lr 5e-4 --epochs 2                                      # there: 5.5 min on an H200

`pack` writes what the machine lacks: the Whisper weights as int8 rows (`whisper_port.compact`,
half the float16 size), the tokenizer, the training texts with the candidate articles of the
previous-text prompts (found here with the embedder), and espeak-ng unpacked from its Debian
packages with a stand-in for its sound library (`pcaudio_stub.c`); with `--flite`, also flite's
kal voices (`flite_kal.c`, 4 MB: 46 MB in all).  `run` voices the texts with every espeak-ng
training voice on all CPU cores, and flite kal/kal16 for `--flite-share` of them (rate, pitch
and the `speech_data` augmentations drawn per utterance, a few voicings per text), makes the
log-mel windows the
integrated decode hears (speech + 2 s margin), encodes them in batches on the GPU
(`whisper_port.WhisperEncoder`, masked per window), then trains the LoRA factors with
`decoder_trainer`'s teacher forcing.  Each phase has a time budget, so the run ends in time
whatever the machine's speed; the learning-rate schedule is fitted to the steps that fit.
Validation uses the utterances of held-out training articles.  Never the eval split or its
voices: the texts come from `speech_data.article_texts`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

# One BLAS thread per process: each voicing process is one core's work.  The first GPU run had
# 16 BLAS threads in each of 15 processes (the log-mel's matrix product) and espeak-ng's data
# on disk, and voiced 44 utterances a second; with one thread and the data in /dev/shm, 350.
# Set before NumPy loads its BLAS.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.audio import SAMPLE_RATE  # noqa: E402
from assistant.training.whisper_port import compact, log_mel  # noqa: E402

DEBS = ("espeak-ng", "libespeak-ng1", "espeak-ng-data", "libsonic0")
FLITE_DEBS = ("flite1-dev", "libflite1", "libasound2")
FLITE_LIBS = ("libflite.so.1", "libflite_usenglish.so.1", "libflite_cmulex.so.1",
              "libflite_cmu_us_kal.so.1", "libflite_cmu_us_kal16.so.1", "libasound.so.2")
# in memory where there is /dev/shm: each espeak-ng call reads its data files anew
HOME = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
ESPEAK_HOME, FLITE_HOME = HOME / "s2r-espeak", HOME / "s2r-flite"
MARGIN_S = 2.0  # the integrated decode's window: speech + this (s2r.DecodeConfig.margin_s)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- pack (here) ------------------------------------------------------------------------------


def pack_espeak(kit: Path) -> None:
    """espeak-ng and its data, unpacked from this machine's Debian packages, with the
    stand-in libpcaudio, as ``espeak.tar.xz``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        subprocess.run(["apt-get", "download", *DEBS], cwd=tmp, check=True,
                       capture_output=True)
        for deb in Path(tmp).glob("*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        lib = root / "usr/lib/x86_64-linux-gnu"
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wl,-soname,libpcaudio.so.0", "-o",
                        str(lib / "libpcaudio.so.0"),
                        str(Path(__file__).with_name("pcaudio_stub.c"))], check=True)
        shutil.rmtree(root / "usr/share", ignore_errors=True)  # docs and man pages
        with tarfile.open(kit / "espeak.tar.xz", "w:xz") as tar:
            tar.add(root, arcname=".")


def pack_flite(kit: Path) -> None:
    """``flite_kal`` (``flite_kal.c``: flite's kal voices only) built against flite's Debian
    packages, with the libraries it loads, as ``flite.tar.xz``."""
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "root", Path(tmp) / "out"
        subprocess.run(["apt-get", "download", *FLITE_DEBS], cwd=tmp, check=True,
                       capture_output=True)
        for deb in Path(tmp).glob("*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        lib = root / "usr/lib/x86_64-linux-gnu"
        (out / "lib").mkdir(parents=True)
        subprocess.run(["gcc", "-O2", "-I", str(root / "usr/include"), "-L", str(lib),
                        f"-Wl,-rpath-link,{lib}", "-o", str(out / "flite_kal"),
                        str(Path(__file__).with_name("flite_kal.c")), "-lflite_cmu_us_kal",
                        "-lflite_cmu_us_kal16", "-lflite_usenglish", "-lflite_cmulex",
                        "-lflite", "-lm"], check=True)
        for name in FLITE_LIBS:
            shutil.copy(lib / name, out / "lib" / name)  # follows the version symlinks
        with tarfile.open(kit / "flite.tar.xz", "w:xz") as tar:
            tar.add(out, arcname=".")


def pack(args: argparse.Namespace) -> None:
    from assistant.checkpoint import sha256_of
    from assistant.ct2_file import read_model
    from assistant.embedder import TextEmbedder
    from assistant.runtime import Runtime
    from assistant.settings import Settings
    from assistant.training.candidate_prompts import article_passages, nearest_articles
    from assistant.training.recipe import excluded_titles
    from assistant.training.speech_data import article_texts
    from assistant.wiki_corpus import load_summaries

    kit = args.kit
    kit.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    transcriber = Runtime(settings).transcriber
    model_bin = transcriber.model_dir / "model.bin"
    log(f"weights of {model_bin}")
    np.savez_compressed(kit / "whisper.npz", **compact(read_model(model_bin).variables))
    np.save(kit / "mel_filters.npy", transcriber.model.feature_extractor.mel_filters)
    shutil.copy(transcriber.model_dir / "tokenizer.json", kit / "tokenizer.json")
    if args.init:  # with its card, which holds the checksum
        shutil.copy(args.init, kit / "init.npz")
        shutil.copy(args.init.with_suffix(".json"), kit / "init.json")

    wiki = load_summaries()
    excluded = excluded_titles(tuple(args.exclude_bench))
    pairs = article_texts(wiki, excluded, args.seed)
    articles = [title for title, _ in pairs]
    passages = article_passages(wiki, sorted(set(articles)))
    log(f"{len(pairs):,} texts of {len(passages):,} articles; nearest neighbours by the embedder")
    neighbours = nearest_articles(passages, TextEmbedder(settings).embed, 8)
    with gzip.open(kit / "texts.json.gz", "wt", encoding="utf-8") as f:
        json.dump({"texts": [text for _, text in pairs], "articles": articles,
                   "passages": passages, "neighbours": neighbours}, f)
    (kit / "base.json").write_text(json.dumps({
        "base": transcriber.location.name, "base_sha256": sha256_of(model_bin),
        "excluded_articles": len(excluded), "seed": args.seed}), encoding="utf-8")
    pack_espeak(kit)
    if args.flite:
        pack_flite(kit)
    sizes = {p.name: p.stat().st_size for p in sorted(kit.iterdir())}
    log(f"kit: {sum(sizes.values()) / 1e6:.1f} MB {sizes}")


# --- run (on the accelerator machine) ---------------------------------------------------------


def unpack_engines(kit: Path) -> list[str]:
    """Unpack the kit's speech engines; the training voices they speak (``engine:voice``)."""
    from assistant.training.speech_data import OTHER_VOICES, espeak_voices

    for name, home in (("espeak", ESPEAK_HOME), ("flite", FLITE_HOME)):
        if (kit / f"{name}.tar.xz").exists() and not home.exists():
            with tarfile.open(kit / f"{name}.tar.xz") as tar:
                tar.extractall(home, filter="fully_trusted")
    libs = [str(ESPEAK_HOME / "usr/lib/x86_64-linux-gnu"), str(FLITE_HOME / "lib")]
    paths = os.environ.get("LD_LIBRARY_PATH", "").split(":")
    os.environ["LD_LIBRARY_PATH"] = ":".join([*libs, *(p for p in paths if p not in libs)])
    os.environ["ESPEAK_DATA_PATH"] = libs[0]
    has_flite = (FLITE_HOME / "flite_kal").exists()  # its kal and kal16 voices
    flite = [v for v in OTHER_VOICES if v.startswith("flite:") and has_flite]
    return [f"espeak-ng:{v}" for v in espeak_voices()] + flite


def speak(text: str, voice: str, rate: int, pitch: int, wav: Path) -> np.ndarray | None:
    """16 kHz float32 speech from an unpacked engine (None if it fails); ``rate`` and
    ``pitch`` apply to espeak-ng voices, as ``speech_data`` varies only those."""
    from assistant.training.speech_data import speak_without_pyav, wav_at_16k

    engine, name = voice.split(":", 1)
    if engine == "espeak-ng":
        return speak_without_pyav(text, name, rate, pitch, wav,
                                  binary=str(ESPEAK_HOME / "usr/bin/espeak-ng"))
    done = subprocess.run([str(FLITE_HOME / "flite_kal"), name, text, str(wav)],
                          capture_output=True)
    return None if done.returncode else wav_at_16k(wav)


_worker: dict = {}


def _init_worker(kit: str, voices: list[str], seed: int, flite_share: float) -> None:
    from assistant.training.speech_data import Augmentation

    unpack_engines(Path(kit))
    _worker.update(filters=np.load(Path(kit) / "mel_filters.npy"), seed=seed, pool=[],
                   espeak=[v for v in voices if v.startswith("espeak-ng:")],
                   flite=[v for v in voices if v.startswith("flite:")], flite_share=flite_share,
                   aug=Augmentation(), wav=Path(tempfile.mkstemp(suffix=".wav")[1]))


def voice_one(item: tuple[int, str]):
    """(key, text) → (key, log-mel window, seconds, voice, augmentations) or None; every draw
    seeded by the key."""
    from assistant.training.speech_data import MAX_SECONDS, augment

    key, text = item
    w = _worker
    rng = np.random.default_rng([w["seed"], key])
    engine = "flite" if w["flite"] and rng.random() < w["flite_share"] else "espeak"
    voice = w[engine][int(rng.integers(len(w[engine])))]
    clean = speak(text, voice, int(rng.integers(125, 205)), int(rng.integers(25, 75)), w["wav"])
    if clean is None or not SAMPLE_RATE // 4 <= clean.size <= MAX_SECONDS * SAMPLE_RATE:
        return None
    audio, applied = augment(clean, w["pool"], rng, w["aug"])
    w["pool"] = [*w["pool"], clean][-24:]
    seconds = audio.size / SAMPLE_RATE
    window = seconds + MARGIN_S
    clip = np.zeros(int(window * SAMPLE_RATE), np.float32)
    clip[: audio.size] = audio
    frames = int(window * 100) // 2 * 2
    mel = log_mel(clip, w["filters"])[:, :frames].astype(np.float16)
    return key, mel, round(seconds, 3), voice, applied


class MemoryCorpus:
    """Encoder frames held in memory, read like ``ctc_trainer.FrameCorpus``."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.utterances: list = []
        self.width = 0

    def add(self, frames: np.ndarray, labels: list[int], spoken: str):
        from assistant.training.ctc_trainer import Utterance

        self.width = frames.shape[1]
        utt = Utterance(0, len(self.arrays), frames.shape[0], labels, spoken)
        self.arrays.append(frames)
        self.utterances.append(utt)
        return utt

    def frames(self, utt) -> np.ndarray:
        return self.arrays[utt.start].astype(np.float32)


def encode_batch(encoder, mels: list[np.ndarray], device) -> list[np.ndarray]:
    import torch

    longest = max(m.shape[1] for m in mels)
    batch = np.zeros((len(mels), mels[0].shape[0], longest), np.float32)
    for i, m in enumerate(mels):
        batch[i, :, : m.shape[1]] = m
    lengths = torch.tensor([m.shape[1] for m in mels], device=device)
    with torch.no_grad():
        out = encoder(torch.from_numpy(batch).to(device), lengths).half().cpu().numpy()
    return [out[i, : m.shape[1] // 2] for i, m in enumerate(mels)]


def check_voices(voices: list[str]) -> None:
    """Stop at once if an engine cannot speak here; log what one call of each costs."""
    wav = Path(tempfile.mkstemp(suffix=".wav")[1])
    text = "Who founded the Lutheran communion in Finland?"
    for voice in [voices[0], *[v for v in voices if v.startswith("flite:")][:1]]:
        audio = speak(text, voice, 160, 50, wav)
        if audio is None or audio.size < SAMPLE_RATE // 4:
            raise SystemExit(f"{voice} does not speak on this machine")
        timer = time.perf_counter()  # after the first call, which loads SciPy
        for _ in range(10):
            speak(text, voice, 160, 50, wav)
        log(f"one {voice} call: {(time.perf_counter() - timer) * 100:.0f} ms")
    wav.unlink()


def planned_utterances(texts: list[str], articles: list[str], args: argparse.Namespace
                       ) -> tuple[list[tuple[int, str]], int, int]:
    """(key, text) to voice, the held-out articles' first; the number of those
    validation utterances, and of held-out articles."""
    rng = np.random.default_rng(args.seed)
    titles = sorted(set(articles))
    held = set(rng.choice(titles, max(1, int(len(titles) * args.held_out)), replace=False))
    valid = [i for i, t in enumerate(articles) if t in held][: args.validation_utterances]
    train = [i for i, t in enumerate(articles) if t not in held]
    order = valid + [int(i) for _ in range(args.voicings) for i in rng.permutation(train)]
    return [(key, texts[i]) for key, i in enumerate(order)], len(valid), len(held)


def voice_and_encode(items, n_valid: int, voices: list[str], encoder, targets, args, device
                     ) -> tuple:
    """Voice ``items`` on every core but one until the data step's time is up, encoding the
    windows on ``device`` as they come; (corpus, training utterances, validation utterances,
    stats)."""
    from multiprocessing import get_context

    corpus = MemoryCorpus()
    train_utts, valid_utts, pending = [], [], []
    stats = {"seconds": 0.0, "voices": set(), "skipped": 0,
             "workers": max(1, len(os.sched_getaffinity(0)) - 1)}  # the cores this run may use

    def flush() -> None:
        pending.sort(key=lambda r: r[1].shape[1])
        for start in range(0, len(pending), args.encode_batch):
            chunk = pending[start : start + args.encode_batch]
            for (key, _, seconds, voice, _), frames in zip(
                    chunk, encode_batch(encoder, [r[1] for r in chunk], device), strict=True):
                text = items[key][1]
                labels = targets.labels({"spoken": text})
                if not labels or len(labels) >= frames.shape[0]:
                    stats["skipped"] += 1
                    continue
                utt = corpus.add(frames, labels, text)
                (valid_utts if key < n_valid else train_utts).append(utt)
                stats["seconds"] += seconds
                stats["voices"].add(voice)
        pending.clear()

    deadline = time.perf_counter() + args.synth_seconds
    with get_context("fork").Pool(stats["workers"], _init_worker,
                                  (str(args.kit), voices, args.seed, args.flite_share)) as pool:
        for done, result in enumerate(pool.imap_unordered(voice_one, items, chunksize=8), 1):
            if result is None:
                stats["skipped"] += 1
            else:
                pending.append(result)
            if len(pending) >= 1024:
                flush()
                log(f"voiced {done:,} of {len(items):,}: {len(train_utts):,} training, "
                    f"{len(valid_utts)} validation, {stats['seconds'] / 3600:.1f} h")
            if time.perf_counter() > deadline:
                break
        pool.terminate()
    flush()
    return corpus, train_utts, valid_utts, stats


def train(decoder, corpus, targets, train_utts, valid_utts, args) -> dict:
    """LoRA training until the epochs or the time budget end; the summary for the card."""
    import torch

    from assistant.training import decoder_trainer as dt
    from assistant.training.ctc_trainer import batches
    from assistant.training.resumable import optimizer_step

    shares = {"validation_loss": 0.0, "validation_loss_prompted": 1.0}
    history = {f"{name}_before": dt.validation_loss(decoder, corpus, targets, valid_utts, share)
               for name, share in shares.items()}
    log(f"before: {history}")
    params = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    steps_per_epoch = len(batches(train_utts, args.batch_frames, np.random.default_rng(0)))
    plan = {"total": steps_per_epoch * args.epochs}
    warmup = 100
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup)
                                                 * 0.5 * (1 + math.cos(math.pi * min(
                                                     1.0, s / max(1, plan["total"])))))
    started = time.perf_counter()
    deadline = started + args.train_seconds
    step, losses = 0, []
    decoder.train()
    for epoch in range(args.epochs):
        # Collating (prompts drawn and tokenized, frames padded) is most of a step's time, so
        # worker processes collate the next batches while the GPU trains on this one.
        order = [(batch, [args.seed, epoch, epoch * steps_per_epoch + i]) for i, batch in
                 enumerate(batches(train_utts, args.batch_frames,
                                   np.random.default_rng([args.seed, epoch])))]
        loader = torch.utils.data.DataLoader(
            order, batch_size=None, num_workers=args.loader_workers, prefetch_factor=4,
            multiprocessing_context="fork", collate_fn=lambda item: targets.collate(
                corpus, item[0], np.random.default_rng(item[1])))
        for collated in loader:
            if step >= plan["total"] or time.perf_counter() > deadline:
                break  # the schedule's end, or a hard stop before it is fitted (step 50)
            loss = dt.batch_loss(decoder, collated)
            optimizer_step(loss, optimizer, schedule, params, 1.0)
            losses.append(loss.item())
            step += 1
            if step == 50:  # fit the schedule to the steps the time budget holds
                per_step = (time.perf_counter() - started) / step
                fits = step + int((deadline - time.perf_counter()) / per_step * 0.93)
                plan["total"] = min(plan["total"], fits)
                log(f"{per_step * 1e3:.0f} ms a step: {plan['total']:,} steps "
                    f"({plan['total'] / steps_per_epoch:.2f} epochs)")
            if step % 500 == 0:
                log(f"step {step:,}: loss {np.mean(losses[-200:]):.4f}")
        if step < plan["total"] and time.perf_counter() < deadline:  # an epoch ended
            log(f"epoch {epoch + 1}: validation loss " + ", ".join(
                str(dt.validation_loss(decoder, corpus, targets, valid_utts, share))
                for share in shares.values()))
            np.savez(args.out / f"factors-epoch{epoch + 1}.npz", **dt.lora_factors(decoder))
    seconds = time.perf_counter() - started
    history["loss"] = round(float(np.mean(losses[-200:])), 4)
    history.update({name: dt.validation_loss(decoder, corpus, targets, valid_utts, share)
                    for name, share in shares.items()})
    log(f"after {step:,} steps, {seconds:.0f} s: {history}")
    return {"steps": step, "epochs": round(step / steps_per_epoch, 2), "warmup_steps": warmup,
            "train_seconds": round(seconds, 1), **history,
            "parameters": sum(p.numel() for p in params)}


def run(args: argparse.Namespace) -> None:
    import torch
    from tokenizers import Tokenizer

    from assistant.training import decoder_trainer as dt
    from assistant.training.candidate_prompts import CandidatePrompts
    from assistant.training.speech_data import Augmentation
    from assistant.training.whisper_port import WhisperEncoder, expand

    started = time.perf_counter()
    kit = args.kit
    args.out.mkdir(parents=True, exist_ok=True)
    voices = unpack_engines(kit)
    check_voices(voices)
    with gzip.open(kit / "texts.json.gz", "rt", encoding="utf-8") as f:
        data = json.load(f)
    texts, articles = data["texts"], data["articles"]
    base = json.loads((kit / "base.json").read_text(encoding="utf-8"))
    items, n_valid, n_held = planned_utterances(texts, articles, args)
    log(f"{len(texts):,} texts, {n_held} held-out articles, {len(voices)} voices, "
        f"{len(items):,} utterances planned, {len(os.sched_getaffinity(0))} CPUs")
    _init_worker(str(kit), voices, args.seed, args.flite_share)
    timer = time.perf_counter()
    for item in items[:20]:
        voice_one(item)
    log(f"one utterance voiced, augmented and its log-mel made: "
        f"{(time.perf_counter() - timer) * 50:.0f} ms")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    variables = expand(dict(np.load(kit / "whisper.npz")))
    hf_tokenizer = Tokenizer.from_file(str(kit / "tokenizer.json"))
    prompts = CandidatePrompts(data["passages"], data["neighbours"],
                               dict(zip(texts, articles, strict=True)), hf_tokenizer)
    targets = dt.TokenTargets(hf_tokenizer, prompts, args.context_share)
    corpus, train_utts, valid_utts, stats = voice_and_encode(
        items, n_valid, voices, WhisperEncoder(variables).to(device).eval(), targets, args,
        device)
    hours = stats["seconds"] / 3600
    log(f"data: {len(train_utts):,} training + {len(valid_utts)} validation utterances, "
        f"{hours:.1f} h, {len(stats['voices'])} voices, {stats['skipped']} skipped")

    torch.manual_seed(args.seed)
    decoder = dt.port_decoder(variables)
    dt.add_lora(decoder, args.rank, 2.0 * args.rank)
    init = (kit / "init.npz").exists() and not args.fresh
    if init:
        dt.load_factors(decoder, kit / "init.npz")
    summary = train(decoder.to(device), corpus, targets, train_utts, valid_utts, args)
    config = {"rank": args.rank, "alpha": 2.0 * args.rank, "epochs": summary.pop("epochs"),
              "lr": args.lr, "batch_frames": args.batch_frames,
              "warmup_steps": summary.pop("warmup_steps"), "context_share": args.context_share,
              "init": args.init_name if init else "", "seed": args.seed,
              "voicings": args.voicings, "held_out_articles": n_held}
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else "the CPU"
    card = dt.export(decoder.cpu().eval(), args.out / f"whisper-decoder-lora-{args.version}.npz",
                     base["base_sha256"], {
        "version": args.version, "base": base["base"], "voices": len(stats["voices"]),
        "hours": round(hours, 2), "excluded_articles": base["excluded_articles"],
        "augmentation": asdict(Augmentation()), "seed": args.seed,
        "threads": f"{stats['workers']} CPU processes voicing, {where} encoding and training",
        "train_config": config, "utterances": len(train_utts),
        "validation_utterances": len(valid_utts), **summary,
        "recipe_seconds": round(time.perf_counter() - started, 1)})
    log(f"wrote {card['sha256'][:12]} ({card['bytes']:,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="build the kit the accelerator machine needs (here)")
    p.add_argument("kit", type=Path)
    p.add_argument("--exclude-bench", type=Path, action="append", default=[],
                   help="a benchmark whose articles training must not see (repeatable)")
    p.add_argument("--init", type=Path, help="an adapter (.npz) to start from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flite", action="store_true",
                   help="add flite's kal voices (builds scripts/flite_kal.c with gcc)")
    r = sub.add_parser("run", help="voice, encode and train (on the accelerator machine)")
    r.add_argument("kit", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--version", default="v3")
    r.add_argument("--synth-seconds", type=float, default=210.0,
                   help="time budget of the data step, counted from the start")
    r.add_argument("--train-seconds", type=float, default=200.0)
    r.add_argument("--voicings", type=int, default=3, help="voicings of each training text")
    r.add_argument("--epochs", type=int, default=3, help="at most; the time budget may stop it")
    r.add_argument("--lr", type=float, default=5e-4)
    r.add_argument("--rank", type=int, default=32)
    r.add_argument("--batch-frames", type=int, default=24_000)
    r.add_argument("--encode-batch", type=int, default=128)
    r.add_argument("--loader-workers", type=int,
                   default=max(1, min(12, len(os.sched_getaffinity(0)) - 1)),
                   help="processes collating training batches")
    r.add_argument("--context-share", type=float, default=0.5)
    r.add_argument("--flite-share", type=float, default=0.1,
                   help="share of utterances voiced by flite kal/kal16, if the kit has them")
    r.add_argument("--held-out", type=float, default=0.02, help="share of articles held out")
    r.add_argument("--validation-utterances", type=int, default=600)
    r.add_argument("--fresh", action="store_true", help="ignore the kit's init adapter")
    r.add_argument("--init-name", default="whisper-decoder-lora-v2.npz")
    r.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    pack(args) if args.command == "pack" else run(args)


if __name__ == "__main__":
    main()
