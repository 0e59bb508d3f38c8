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
class Settings:
    """Every configurable value of s2r.  Field ``x`` is read from env var ``S2R_X``."""

    data_dir: Path = field(default_factory=_default_data_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)

    # Qdrant: empty URL = the embedded store under data_dir; ":memory:" or http(s)://… = client.
    qdrant_url: str = ""
    qdrant_api_key: str = ""
    collection: str = "s2r"
    # HNSW search depth: higher = better recall, slower (only matters once a segment is indexed)
    search_hnsw_ef: int = 128
    # Collection layout, applied when s2r creates the collection (docs/scaling.md). The first
    # four only mean something on a Qdrant server or cluster.
    qdrant_shards: int = 0  # 0 = Qdrant's default (one shard per node)
    qdrant_replicas: int = 0  # 0 = 1 on a single node, 2 on a cluster (must be >= 2 there)
    qdrant_write_consistency: int = 1  # replicas that must confirm a write
    qdrant_read_consistency: str = ""  # "" = server default (1), majority, quorum, all or N
    qdrant_on_disk: bool = False  # vectors and payload memory-mapped from disk (graph in RAM)
    qdrant_hnsw_m: int = 16  # graph links per node: more = better recall, more memory
    qdrant_hnsw_ef_construct: int = 100
    qdrant_quantization: str = "none"  # "int8": scalar quantization in RAM, rescored
    qdrant_timeout_s: float = 10.0  # per request to a Qdrant server
    qdrant_retries: int = 3  # extra tries on connection errors, 429 and 5xx, with backoff
    qdrant_upsert_batch: int = 256  # points per upsert request
    # The embedded store memory-maps its files: running out of disk mid-write kills the process
    # (SIGBUS) instead of raising an error, so writes stop while this much is still free.
    min_free_mb: int = 256

    # Models: empty = the offline package; otherwise a local directory or a hub id.
    whisper_model: str = ""
    whisper_compute_type: str = "int8"
    asr_language: str = "en"
    asr_beam_size: int = 5
    # Integrated S2R decode (reduced window): beam width, n-best size, zeros after the speech.
    s2r_beam_size: int = 5  # 2: decode 63 vs 79 ms, ~0.015 MRR@10 worse (tune-s2r-decode.md)
    s2r_n_best: int = 5
    s2r_margin_s: float = 2.0
    # CPU threads of the integrated pass's own copy of Whisper (0 = `threads`).  One is faster:
    # its short-window encoder and single-token decoder steps are too small to split, and on
    # 2 cores a second thread made the beam-5 decode 1.6-2x slower (benchmarks/results/
    # s2r-threads.md).
    s2r_threads: int = 1
    # Word pieces a spoken query's decoder may say: "collection" (those of the collection's
    # chunks plus the 10,000 commonest: a smaller output projection, 16-20 % off the decode,
    # benchmarks/results/decoder-vocab.md) or "full" (all of Whisper's).  Documents are always
    # transcribed with the full vocabulary.
    s2r_vocabulary: str = "collection"
    # The LoRA adaptation of Whisper's decoder for the integrated S2R decode
    # (``decoder_adapter``): "none" (the packaged decoder, the default), "bundled" (adapter v2,
    # made for the bundled tiny.en; not used when whisper_model names another) or a path to an
    # .npz made by `s2r train --decoder`.  Off by default: trained on synthetic speech only, it
    # tripled the word errors on real human speech (18.9 % vs the cascade's 6.3 %, issue 25).
    # The hybrid's second decode uses it only if it was trained to read a previous-text prompt
    # (v2 was); the cascade and document transcripts never do.
    decoder_adapter: str = "none"
    # The e2e CTC head (numpy): "" = the checkpoint bundled with s2r, a path to an .npz made by
    # `s2r train`, or "none" (no e2e/hybrid search, no speech vectors for audio chunks).
    e2e_model: str = ""
    # `hybrid`: the e2e spelling's share of the readings in the character-4-gram and speech
    # legs (the decode's n-best share the rest), chosen on the train-split tuning set
    # (benchmarks/results/tune-hybrid.md).
    hybrid_e2e_weight: float = 0.6
    # `hybrid`: how many of the first search's top hits a second decode reads (their titles
    # and rare words, as Whisper's previous-text prompt) before the search runs again; 0 = no
    # second pass.  8 with the bundled adapter v2, which learnt to read such a prompt
    # (benchmarks/results/tune-context-v2.md; 5 with the packaged decoder, tune-context.md).
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
    # "dbsf" (each leg's scores normalized by their spread, then summed) or "rrf" (by rank).
    # dbsf was chosen on the train-split tuning set (benchmarks/results/tune-legs.md).
    fusion: str = "dbsf"
    # The character-4-gram leg (a `chars` sparse vector per chunk, ~11 KB for 1,000 characters):
    # off, no chunk gets one and no search uses one.
    char_grams: bool = True
    # The sound leg (a `sound` sparse vector per chunk, ~7 KB for 1,000 characters): BM25 over
    # the words' Metaphone keys and their 3-grams, which match a misheard word that sounds the
    # same ("organ" for "Oregon").  Searched beside the character-4-gram leg; off, no chunk
    # gets one and no search uses one (benchmarks/results/tune-sound.md).
    sound_keys: bool = True
    # The sound leg joins a question's search only if its best reading has at most this many
    # words; 0 = any length.  A long question has enough right words for the word legs, and
    # one more leg dilutes them: 6 was best for typed, s2r and hybrid questions on the
    # train-split tuning set (tune-sound.md).
    sound_max_words: int = 6
    # The fused top hits are reordered by how much of the question each covers (a soft AND
    # over its content words, misheard ones matched by 4-grams or sound): each hit's fused
    # score, rescaled to 0..1 among the `coverage_depth` first, plus this weight × its
    # coverage (0..1); 0 = off.  Only for questions of at most `coverage_max_words` words
    # (best reading; 0 = any length): a long question's right words carry the search, and
    # coverage then only favours wordy passages.  3, 10 and 8 were chosen on the
    # train-split tuning set (benchmarks/results/tune-coverage.md).
    coverage_weight: float = 3.0
    coverage_depth: int = 10
    coverage_max_words: int = 8
    # The path every spoken question takes (CLI, HTTP, LlamaIndex, voice loop): s2r (integrated,
    # the default), hybrid (s2r fused with e2e), e2e, or cascade (the padded baseline).
    spoken_retriever: str = "s2r"
    embedder_model: str = ""
    embedder_backend: str = "ct2"  # "ct2" (int8, converted once into cache_dir) or "torch"
    embed_batch_size: int = 8
    # Chunks embedded and stored together during ingest: bigger groups pad less, smaller ones
    # commit (and record in the manifest) more often.
    ingest_group_chunks: int = 2048
    threads: int = 0  # 0 = all cores

    # Text chunking, in embedder tokens.
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40

    # Voice activity detection (webrtcvad).
    vad_aggressiveness: int = 2
    vad_frame_ms: int = 30
    vad_padding_ms: int = 300
    vad_end_silence_ms: int = 600
    vad_min_speech_ms: int = 250
    vad_max_segment_s: float = 20.0

    # Spoken corpora: consecutive utterances are packed into chunks of at most this long.
    audio_chunk_max_s: float = 20.0
    transcribe_audio: bool = True

    # Answering. An OpenAI-compatible chat endpoint; empty URL = start the bundled local model
    # (llama.cpp's server on 127.0.0.1), or answer extractively if there is none.
    llm_url: str = ""
    llm_model: str = ""  # model name sent to the endpoint ("" = the server's own/default)
    llm_api_key: str = ""
    # Local model: "" = best bundled one installed ("qwen", then "smollm2"), one of those names,
    # or a path to a GGUF file.  "none" = never start a local model.
    llm_gguf: str = ""
    llm_threads: int = 0  # 0 = all cores (retrieval is done before generation starts)
    llm_n_ctx: int = 4096
    llm_max_tokens: int = 256
    llm_temperature: float = 0.2
    llm_timeout_s: float = 120.0
    llm_retries: int = 2  # extra tries on 429/5xx/connection errors, with backoff
    llm_send_audio: bool = False  # also send the question's audio (OpenAI input_audio parts)
    answer_top_k: int = 3  # retrieved chunks offered to the model (5: +60 % time to first token)
    context_tokens: int = 150  # budget for the sentences of those chunks the model is shown
    abstain_below: float = 0.35  # "I don't know" without the model when no source sentence is
    # this close (cosine) to the question
    history_turns: int = 6  # earlier question/answer pairs kept in a conversation
    history_tokens: int = 400  # and at most this many tokens of them (the model rereads them)

    # Voice loop (`s2r talk`): turns end after vad_end_silence_ms; speech output engine.
    talk_max_turn_s: float = 30.0
    # Retrieve a turn as soon as vad_padding_ms of silence settles its audio, during the rest
    # of vad_end_silence_ms: the sources are ready when the turn ends (benchmarks/results/talk.md).
    talk_speculate: bool = True
    barge_in_ms: int = 240  # voiced user speech that interrupts a spoken answer
    echo_margin_db: float = 10.0  # with a speaker: user speech must be this much louder
    # auto: piper's joe voice when s2r[piper] is installed (~0.5 s for a first sentence on 2
    # cores, benchmarks/tts_first_sentence.py), else espeak-ng; or espeak-ng, piper, openai
    # (an /v1/audio/speech endpoint)
    tts_engine: str = "auto"
    tts_voice: str = ""  # espeak-ng voice (default en-us) or the endpoint's voice (alloy)
    tts_url: str = ""  # the speech endpoint, for tts_engine=openai
    tts_model: str = ""  # the endpoint's model (tts-1), or piper's .onnx voice ("" = joe)

    # HTTP service (`s2r serve`).
    api_key: str = ""  # bearer token required on every endpoint but /healthz ("" = open)
    cors_origins: str = ""  # comma-separated origins browsers may call from ("" = CORS off)
    max_upload_mb: float = 25.0
    max_audio_s: float = 60.0  # longest spoken question accepted
    request_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.vad_aggressiveness not in (0, 1, 2, 3):
            raise SettingsError("vad_aggressiveness must be 0, 1, 2 or 3")
        if self.vad_frame_ms not in (10, 20, 30):
            raise SettingsError("vad_frame_ms must be 10, 20 or 30 (webrtcvad frame sizes)")
        if self.spoken_retriever not in ("s2r", "hybrid", "e2e", "cascade"):
            raise SettingsError("spoken_retriever must be s2r, hybrid, e2e or cascade")
        if not 0 <= self.hybrid_e2e_weight <= 1:
            raise SettingsError("hybrid_e2e_weight must be between 0 and 1")
        if self.s2r_threads < 0:
            raise SettingsError("s2r_threads must be >= 0 (0 = the `threads` setting)")
        if self.sound_max_words < 0:
            raise SettingsError("sound_max_words must be >= 0 (0 = any length)")
        if self.coverage_weight < 0:
            raise SettingsError("coverage_weight must be >= 0 (0 = no reordering by coverage)")
        if self.coverage_depth < 1:
            raise SettingsError("coverage_depth must be >= 1")
        if self.coverage_max_words < 0:
            raise SettingsError("coverage_max_words must be >= 0 (0 = any length)")
        if self.hybrid_context_hits < 0:
            raise SettingsError("hybrid_context_hits must be >= 0 (0 = no second decode)")
        if self.hybrid_context_nbest not in ("join", "replace"):
            raise SettingsError("hybrid_context_nbest must be 'join' or 'replace'")
        if self.hybrid_trust_logprob > 0:
            raise SettingsError("hybrid_trust_logprob must be <= 0 (a log-probability per "
                                "word; 0 = always decode twice)")
        if self.s2r_vocabulary not in S2R_VOCABULARIES:
            raise SettingsError(f"s2r_vocabulary must be {' or '.join(S2R_VOCABULARIES)}")
        if self.fusion not in FUSIONS:
            raise SettingsError(f"fusion must be {' or '.join(FUSIONS)}")
        if self.embedder_backend not in ("ct2", "torch"):
            raise SettingsError("embedder_backend must be 'ct2' or 'torch'")
        if not 0 <= self.chunk_overlap_tokens < self.chunk_tokens:
            raise SettingsError("chunk_overlap_tokens must be >= 0 and < chunk_tokens")
        if self.llm_url and not self.llm_url.startswith(("http://", "https://")):
            raise SettingsError("llm_url must start with http:// or https://")
        if self.llm_retries < 0 or self.llm_timeout_s <= 0:
            raise SettingsError("llm_retries must be >= 0 and llm_timeout_s > 0")
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
        if min(self.qdrant_shards, self.qdrant_replicas, self.qdrant_retries) < 0 or min(
                self.qdrant_write_consistency, self.qdrant_hnsw_m, self.qdrant_upsert_batch) < 1 \
                or self.qdrant_hnsw_ef_construct < 4 or self.qdrant_timeout_s <= 0:
            raise SettingsError("qdrant_shards/replicas/retries must be >= 0, "
                                "write_consistency/hnsw_m/upsert_batch >= 1, hnsw_ef_construct "
                                ">= 4 and timeout_s > 0")
        if self.answer_top_k < 1 or self.context_tokens < 1 or self.history_turns < 0:
            raise SettingsError("answer_top_k and context_tokens must be >= 1, history_turns >= 0")

    @property
    def cpu_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    @property
    def s2r_cpu_threads(self) -> int:
        return self.s2r_threads or self.cpu_threads

    @property
    def llm_cpu_threads(self) -> int:
        return self.llm_threads or os.cpu_count() or 1

    @property
    def uses_embedded_store(self) -> bool:
        return not self.qdrant_url

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Merge defaults, config file, environment and non-None overrides."""
        values: dict[str, Any] = {}
        env = {f.name: os.environ.get(ENV_PREFIX + f.name.upper()) for f in fields(cls)}
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
        return cls(**{f.name: _coerce(f, values[f.name]) for f in fields(cls) if f.name in values})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    known = {f.name for f in fields(Settings)}
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
