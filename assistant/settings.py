"""One settings object for the whole runtime.

Values come, highest priority first, from explicit overrides (CLI flags), environment variables
``S2R_<FIELD>``, a TOML config file (``S2R_CONFIG`` or ``<data_dir>/config.toml``) and the
defaults below.  Keeping every knob in one dataclass means the CLI, the tests and later the HTTP
service all read the same names.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "S2R_"
FUSIONS = ("dbsf", "rrf")
S2R_VOCABULARIES = ("collection", "full")


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "s2r"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "s2r"


@dataclass(frozen=True)
class Tuning:
    """Constants chosen by measurement or by design, not settings: s2r does not read them from
    the environment or a config file.  Each says what chose it (the files are in
    benchmarks/results/, the scripts that measured them in benchmarks/tuning/).  Tests and the
    tuning scripts vary them through ``Settings.replace``/``Settings.load``, which accept these
    names too."""

    # Store (Qdrant).  HNSW search depth: higher = better recall, slower (only matters once a
    # segment is indexed); recall@10 0.995 against exact search on 10k wiki embeddings at 128
    # (benchmarks/results/foundation.md).
    search_hnsw_ef: int = 128
    qdrant_hnsw_m: int = 16  # graph links per node: Qdrant's default
    qdrant_hnsw_ef_construct: int = 100  # Qdrant's default
    qdrant_timeout_s: float = 10.0  # per request to a Qdrant server
    qdrant_retries: int = 3  # extra tries on connection errors, 429 and 5xx, with backoff
    qdrant_upsert_batch: int = 256  # points per upsert request (capacity.md)

    # Whisper.  int8 on CPU; English (tiny.en is English-only, base decodes in English).
    whisper_compute_type: str = "int8"
    asr_language: str = "en"
    asr_beam_size: int = 5
    # Integrated S2R decode (reduced window): beam width, n-best size, zeros after the speech.
    # Beam 2: decode 63 vs 79 ms, ~0.015 MRR@10 worse (tune-s2r-decode.md).
    s2r_beam_size: int = 5
    s2r_n_best: int = 5
    s2r_margin_s: float = 2.0
    # CPU threads of the integrated pass's own copy of Whisper (0 = `threads`).  One is faster:
    # its short-window encoder and single-token decoder steps are too small to split, and on
    # 2 cores a second thread made the beam-5 decode 1.6-2x slower (s2r-threads.md).
    s2r_threads: int = 1
    # Word pieces a spoken query's decoder may say: "collection" (those of the collection's
    # chunks plus the 10,000 commonest: a smaller output projection, 16-20 % off the decode,
    # decoder-vocab.md) or "full" (all of Whisper's).  Documents are always transcribed with
    # the full vocabulary.
    s2r_vocabulary: str = "collection"

    # `hybrid`: the e2e spelling's share of the readings in the character-4-gram and speech
    # legs (the decode's n-best share the rest), chosen on the train-split tuning set
    # (tune-hybrid.md).
    hybrid_e2e_weight: float = 0.6
    # `hybrid`: how many of the first search's top hits a second decode reads (their titles
    # and rare words, as Whisper's previous-text prompt) before the search runs again; 0 = no
    # second pass.  8 with the bundled adapter v2, which learnt to read such a prompt
    # (tune-context-v2.md; 5 with the packaged decoder, tune-context.md).
    hybrid_context_hits: int = 8
    # `hybrid`: what the second decode's n-best list does with the first one's: "join" (one
    # list, weighted by their probabilities) or "replace" (tune-context-v2.md).
    hybrid_context_nbest: str = "join"
    # `hybrid`: a first decode whose 1-best scores above this log-probability per word is
    # trusted and not read again (the second decode then mostly swaps right words for a
    # candidate's); 0 = always decode twice.  At -0.2 with adapter v2, 45 % (clean) and 33 %
    # (phone) of the tuning set's questions skip it at the same MRR@10 as decoding all twice
    # (tune-context-v2.md).
    hybrid_trust_logprob: float = -0.2

    # How the legs of a search (MiniLM vector, word BM25, character-n-gram BM25) are fused:
    # "dbsf" (each leg's scores normalized by their spread, then summed) or "rrf" (by rank);
    # dbsf on the train-split tuning set (tune-legs.md).
    fusion: str = "dbsf"
    # The character-4-gram leg (a `chars` sparse vector per chunk, ~11 KB for 1,000
    # characters); off, no chunk gets one and no search uses one.  Shapes the index.
    char_grams: bool = True
    # The sound leg (a `sound` sparse vector per chunk, ~7 KB for 1,000 characters): BM25 over
    # the words' Metaphone keys and their 3-grams, which match a misheard word that sounds the
    # same ("organ" for "Oregon"); +0.027 MRR@10 for s2r on clean dev (tune-sound.md).  Shapes
    # the index.
    sound_keys: bool = True
    # The sound leg joins a question's search only if its best reading has at most this many
    # words; 0 = any length.  6 was best for typed, s2r and hybrid questions on the
    # train-split tuning set (tune-sound.md).
    sound_max_words: int = 6
    # The fused top hits are reordered by how much of the question each covers: each hit's
    # fused score, rescaled to 0..1 among the `coverage_depth` first, plus this weight × its
    # coverage (0..1); 0 = off.  Only for questions of at most `coverage_max_words` words
    # (0 = any length).  3, 10 and 8 on the train-split tuning set (tune-coverage.md).
    coverage_weight: float = 3.0
    coverage_depth: int = 10
    coverage_max_words: int = 8

    # The embedder: "ct2" (int8, converted once into cache_dir; cosine > 0.99 against torch
    # fp32) or "torch".
    embedder_backend: str = "ct2"
    embed_batch_size: int = 8

    # Voice activity detection (webrtcvad): frame size, padding kept around speech, shortest
    # speech, longest segment.
    vad_frame_ms: int = 30
    vad_padding_ms: int = 300
    vad_min_speech_ms: int = 250
    vad_max_segment_s: float = 20.0
    # Spoken corpora: consecutive utterances are packed into chunks of at most this long.
    # Shapes the index.
    audio_chunk_max_s: float = 20.0

    # Answering.  Threads of the local model (0 = all cores: retrieval is done before
    # generation starts), its context, and the chat client's patience.
    llm_threads: int = 0
    llm_n_ctx: int = 4096
    llm_retries: int = 2  # extra tries on 429/5xx/connection errors, with backoff
    llm_timeout_s: float = 120.0
    llm_temperature: float = 0.2
    # The sentences of the top sources the model reads: 150 tokens answered as often as whole
    # chunks with the first token 2.4-2.6x sooner (benchmarks/results/answering.md).
    context_tokens: int = 150
    # "I don't know" without the model when no source sentence is this close (cosine) to the
    # question (answering.md: the trade-off over thresholds).
    abstain_below: float = 0.35
    # Earlier question/answer pairs kept in a conversation, and at most this many tokens of
    # them (the model rereads them; forgotten in blocks so the prefix stays cached).
    history_turns: int = 6
    history_tokens: int = 400

    # Voice loop (`s2r talk`).  The longest turn; retrieve as soon as vad_padding_ms of
    # silence settles a turn, during the rest of the end silence (talk.md: sources ready 58 ms
    # after the endpoint).
    talk_max_turn_s: float = 30.0
    talk_speculate: bool = True
    barge_in_ms: int = 240  # voiced user speech that interrupts a spoken answer
    echo_margin_db: float = 10.0  # with a speaker: user speech must be this much louder

    # HTTP service: the longest a request may take.
    request_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        checks = [
            (self.vad_frame_ms in (10, 20, 30), "vad_frame_ms must be 10, 20 or 30"),
            (0 <= self.hybrid_e2e_weight <= 1, "hybrid_e2e_weight must be between 0 and 1"),
            (self.s2r_threads >= 0, "s2r_threads must be >= 0 (0 = the `threads` setting)"),
            (self.sound_max_words >= 0, "sound_max_words must be >= 0 (0 = any length)"),
            (self.coverage_weight >= 0, "coverage_weight must be >= 0 (0 = no reordering)"),
            (self.coverage_depth >= 1, "coverage_depth must be >= 1"),
            (self.coverage_max_words >= 0, "coverage_max_words must be >= 0 (0 = any length)"),
            (self.hybrid_context_hits >= 0, "hybrid_context_hits must be >= 0"),
            (self.hybrid_context_nbest in ("join", "replace"),
             "hybrid_context_nbest must be 'join' or 'replace'"),
            (self.hybrid_trust_logprob <= 0, "hybrid_trust_logprob must be <= 0"),
            (self.s2r_vocabulary in S2R_VOCABULARIES,
             f"s2r_vocabulary must be {' or '.join(S2R_VOCABULARIES)}"),
            (self.fusion in FUSIONS, f"fusion must be {' or '.join(FUSIONS)}"),
            (self.embedder_backend in ("ct2", "torch"), "embedder_backend must be ct2 or torch"),
            (self.llm_retries >= 0 and self.llm_timeout_s > 0,
             "llm_retries must be >= 0 and llm_timeout_s > 0"),
            (self.qdrant_retries >= 0 and self.qdrant_hnsw_m >= 1
             and self.qdrant_upsert_batch >= 1 and self.qdrant_hnsw_ef_construct >= 4
             and self.qdrant_timeout_s > 0,
             "qdrant_retries must be >= 0, hnsw_m and upsert_batch >= 1, hnsw_ef_construct "
             ">= 4 and qdrant_timeout_s > 0"),
            (self.context_tokens >= 1 and self.history_turns >= 0,
             "context_tokens must be >= 1 and history_turns >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)


@dataclass(frozen=True)
class Settings:
    """What a user of s2r configures.  Field ``x`` is read from env var ``S2R_X`` or key ``x``
    of the config file; ``tuning`` holds the measured constants and is not read from either."""

    data_dir: Path = field(default_factory=_default_data_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)

    # Qdrant: empty URL = the embedded store under data_dir; ":memory:" or http(s)://… = client.
    qdrant_url: str = ""
    qdrant_api_key: str = ""
    collection: str = "s2r"
    # Collection layout, applied when s2r creates the collection (docs/scaling.md); they only
    # mean something on a Qdrant server or cluster, except the last two.
    qdrant_shards: int = 0  # 0 = Qdrant's default (one shard per node)
    qdrant_replicas: int = 0  # 0 = 1 on a single node, 2 on a cluster (must be >= 2 there)
    qdrant_write_consistency: int = 1  # replicas that must confirm a write
    qdrant_read_consistency: str = ""  # "" = server default (1), majority, quorum, all or N
    qdrant_on_disk: bool = False  # vectors and payload memory-mapped from disk (graph in RAM)
    qdrant_quantization: str = "none"  # "int8": scalar quantization in RAM, rescored
    # The embedded store memory-maps its files: running out of disk mid-write kills the process
    # (SIGBUS) instead of raising an error, so writes stop while this much is still free.
    min_free_mb: int = 256

    # Models: empty = the offline package; otherwise a local directory or a hub id.
    whisper_model: str = ""
    # The LoRA adaptation of Whisper's decoder for the integrated S2R decode: "none" (the
    # packaged decoder, the default), "bundled" (adapter v2, made for the bundled tiny.en) or
    # a path to an .npz made by `s2r train --decoder`.  Off by default: trained on synthetic
    # speech only, it tripled the word errors on real human speech (18.9 % vs the cascade's
    # 6.3 %, issue 25).  The cascade and document transcripts never use it.
    decoder_adapter: str = "none"
    # The e2e CTC head (numpy): "" = the checkpoint bundled with s2r, a path to an .npz made by
    # `s2r train`, or "none" (no e2e/hybrid search, no speech vectors for audio chunks).
    e2e_model: str = ""
    # The path every spoken question takes (CLI, HTTP, LlamaIndex, voice loop): s2r (integrated,
    # the default), hybrid (s2r fused with e2e), e2e, or cascade (the padded baseline).
    spoken_retriever: str = "s2r"
    embedder_model: str = ""
    threads: int = 0  # 0 = all cores

    # Ingest.  Text chunks, in embedder tokens (these two shape the index); audio transcribed
    # by Whisper or only segmented; chunks embedded and stored together (bigger groups pad
    # less, smaller ones commit and record in the manifest more often).
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40
    transcribe_audio: bool = True
    ingest_group_chunks: int = 2048

    # Voice activity (webrtcvad): 0-3, higher rejects more noise; the silence that ends a turn.
    vad_aggressiveness: int = 2
    vad_end_silence_ms: int = 600

    # Answering. An OpenAI-compatible chat endpoint; empty URL = start the bundled local model
    # (llama.cpp's server on 127.0.0.1), or answer extractively if there is none.
    llm_url: str = ""
    llm_model: str = ""  # model name sent to the endpoint ("" = the server's own/default)
    llm_api_key: str = ""
    # Local model: "" = best bundled one installed ("qwen", then "smollm2"), one of those names,
    # or a path to a GGUF file.  "none" = never start a local model.
    llm_gguf: str = ""
    # The program that serves it: "" = the llama-server built for this CPU by setup
    # (scripts/build_llama_server.sh) with prompt-lookup drafting if there is one, else the
    # prebuilt xllamacpp wheel; "xllamacpp"; or a llama-server command line, shell syntax
    # ("/opt/llama.cpp/llama-server -ngl 99").
    llm_server: str = ""
    llm_max_tokens: int = 256
    llm_send_audio: bool = False  # also send the question's audio (OpenAI input_audio parts)
    answer_top_k: int = 3  # retrieved chunks offered to the model (5: +60 % time to first token)

    # Spoken answers. auto: piper's joe voice when s2r[piper] is installed (~0.5 s for a first
    # sentence on 2 cores, benchmarks/tts_first_sentence.py), else espeak-ng; or espeak-ng,
    # piper, openai (an /v1/audio/speech endpoint)
    tts_engine: str = "auto"
    tts_voice: str = ""  # espeak-ng voice (default en-us) or the endpoint's voice (alloy)
    tts_url: str = ""  # the speech endpoint, for tts_engine=openai
    tts_model: str = ""  # the endpoint's model (tts-1), or piper's .onnx voice ("" = joe)

    # HTTP service (`s2r serve`).
    api_key: str = ""  # bearer token required on every endpoint but /healthz ("" = open)
    cors_origins: str = ""  # comma-separated origins browsers may call from ("" = CORS off)
    max_upload_mb: float = 25.0
    max_audio_s: float = 60.0  # longest spoken question accepted

    tuning: Tuning = field(default_factory=Tuning)

    def __post_init__(self) -> None:
        if self.vad_aggressiveness not in (0, 1, 2, 3):
            raise SettingsError("vad_aggressiveness must be 0, 1, 2 or 3")
        if self.spoken_retriever not in ("s2r", "hybrid", "e2e", "cascade"):
            raise SettingsError("spoken_retriever must be s2r, hybrid, e2e or cascade")
        if not 0 <= self.chunk_overlap_tokens < self.chunk_tokens:
            raise SettingsError("chunk_overlap_tokens must be >= 0 and < chunk_tokens")
        if self.llm_url and not self.llm_url.startswith(("http://", "https://")):
            raise SettingsError("llm_url must start with http:// or https://")
        if self.tts_engine not in ("auto", "espeak-ng", "openai", "piper"):
            raise SettingsError("tts_engine must be auto (piper if installed, else espeak-ng), "
                                "espeak-ng, openai or piper")
        if self.ingest_group_chunks < 1:
            raise SettingsError("ingest_group_chunks must be >= 1")
        if self.qdrant_quantization not in ("none", "int8"):
            raise SettingsError("qdrant_quantization must be 'none' or 'int8'")
        if self.qdrant_read_consistency not in ("", "majority", "quorum", "all") \
                and not self.qdrant_read_consistency.isdigit():
            raise SettingsError("qdrant_read_consistency must be '', majority, quorum, all or a "
                                "number of replicas")
        if min(self.qdrant_shards, self.qdrant_replicas) < 0 or self.qdrant_write_consistency < 1:
            raise SettingsError("qdrant_shards/replicas must be >= 0 and write_consistency >= 1")
        if self.answer_top_k < 1:
            raise SettingsError("answer_top_k must be >= 1")

    @property
    def cpu_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    @property
    def s2r_cpu_threads(self) -> int:
        return self.tuning.s2r_threads or self.cpu_threads

    @property
    def llm_cpu_threads(self) -> int:
        return self.tuning.llm_threads or os.cpu_count() or 1

    @property
    def index_shape(self) -> dict[str, Any]:
        """The values that decide a collection's chunks and vectors, recorded with it when it
        is made and checked whenever it is opened."""
        tuning = self.tuning
        return {"chunk_tokens": self.chunk_tokens,
                "chunk_overlap_tokens": self.chunk_overlap_tokens,
                "char_grams": tuning.char_grams, "sound_keys": tuning.sound_keys,
                "audio_chunk_max_s": tuning.audio_chunk_max_s}

    @property
    def uses_embedded_store(self) -> bool:
        return not self.qdrant_url

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Merge defaults, config file, environment and non-None overrides (which may also
        name ``Tuning`` constants, for tests and the tuning scripts)."""
        _refuse_retired_variables()
        values: dict[str, Any] = {}
        names = [f.name for f in fields(cls) if f.name != "tuning"]
        env = {name: os.environ.get(ENV_PREFIX + name.upper()) for name in names}
        data_dir = overrides.get("data_dir") or env["data_dir"] or _default_data_dir()
        config_path = os.environ.get(ENV_PREFIX + "CONFIG")
        if overrides.get("config"):
            config_path = overrides["config"]
        path = Path(config_path) if config_path else Path(data_dir) / "config.toml"
        if path.is_file():
            values.update(_read_config(path))
        elif config_path:
            raise SettingsError(f"config file {path} does not exist")
        values.update({k: v for k, v in env.items() if v is not None})
        values.update({k: v for k, v in overrides.items() if v is not None and k != "config"})
        tuned = {k: values.pop(k) for k in list(values) if k in TUNING_NAMES}
        settings = cls(**{f.name: _coerce(f, values[f.name]) for f in fields(cls)
                          if f.name in values})
        return settings.replace(**tuned) if tuned else settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``; names of ``Tuning`` constants change ``tuning``."""
        tuned = {k: changes.pop(k) for k in list(changes) if k in TUNING_NAMES}
        if tuned:
            changes["tuning"] = dataclasses.replace(changes.get("tuning", self.tuning), **tuned)
        return dataclasses.replace(self, **changes)


def _refuse_retired_variables() -> None:
    """An ``S2R_`` variable naming a tuned constant was a setting once; ignoring it silently
    would leave a user believing it still applies."""
    retired = sorted(ENV_PREFIX + name.upper() for name in TUNING_NAMES
                     if ENV_PREFIX + name.upper() in os.environ)
    if retired:
        raise SettingsError(f"{', '.join(retired)}: no longer a setting but a measured constant "
                            "(class Tuning in assistant/settings.py); unset it")


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    known = {f.name for f in fields(Settings)} - {"tuning"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return raw


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Turn env/TOML strings into the field's type, with an error naming the variable."""
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    name = ENV_PREFIX + f.name.upper()
    try:
        if kind == "Path":
            return Path(value).expanduser()
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except ValueError as exc:
        raise SettingsError(f"{name}={value!r} is not a valid {kind}") from exc


TUNING_NAMES = frozenset(f.name for f in fields(Tuning))
