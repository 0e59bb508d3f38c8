"""Ingestion: files → chunks → vectors → the store, with per-file error isolation.

Each source is fingerprinted (file bytes plus the settings that shape its chunks).  A source
the manifest records with the current fingerprint, whose chunks are all in the store, is
skipped; a changed one is re-chunked, its new chunks upserted, and only then are chunks of
older fingerprints deleted and the source recorded, so a crash mid-way never leaves a source
with nothing, and the re-run completes any source the crash cut short.  Chunks of many small
files are embedded together, because one passage per model call wastes most of the CPU.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assistant.index.chunking import chunk_text
from assistant.index.registry import read_document, source_kind
from assistant.retrieval.chunks import Chunk
from assistant.retrieval.store.base import (
    CHARS_VECTOR,
    SOUND_VECTOR,
    SPARSE_VECTOR,
    SPEECH_VECTOR,
    TEXT_VECTOR,
    StoredPoint,
    StoreError,
)
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.speech.audio import AudioDecodeError
from assistant.speech.e2e import spell_audio
from assistant.speech.vad import VadConfig
from connectors import DocumentError, TextDocument
from connectors.folder import expand_paths
from connectors.spoken import read_spoken

log = logging.getLogger(__name__)


def sparse_names(settings: Settings) -> list[str]:
    """The sparse vectors a chunk gets: word BM25 always, the others as configured."""
    tuning = settings.tuning
    return [SPARSE_VECTOR] + [name for name, wanted in ((CHARS_VECTOR, tuning.char_grams),
                                                          (SOUND_VECTOR, tuning.sound_keys))
                              if wanted]


def sparse_scheme(settings: Settings) -> str:
    """The sparse vectors and their term scheme, part of each source's signature: a change
    re-embeds a source on its next ingest (word BM25 alone stays "bm25", as before)."""
    names = sparse_names(settings)
    return "+".join(names) + "-1" if len(names) > 1 else SPARSE_VECTOR


@dataclass
class IngestReport:
    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unsupported types found in folders
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    chunks: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class _Prepared:
    source: str
    doc_hash: str
    chunks: list[Chunk]
    spellings: dict[str, str] = field(default_factory=dict)  # audio chunk id → e2e spelling


def _file_hash(path: Path, signature: str) -> str:
    digest = hashlib.sha256(signature.encode())
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Ingestor:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.vad = VadConfig.from_settings(self.settings)
        self._pending: list[_Prepared] = []
        self._progress = False

    # -- signatures: what, besides the bytes, decides a source's chunks and vectors
    def _text_signature(self) -> str:
        s = self.settings
        return (f"text|{s.chunk_tokens}|{s.chunk_overlap_tokens}|"
                f"{self.runtime.embedder.model_id}|{sparse_scheme(self.settings)}")

    def _audio_signature(self) -> str:
        s = self.settings
        asr = self.runtime.transcriber.location.name if s.transcribe_audio else "no-asr"
        e2e = self.runtime.e2e.sha256 if self.runtime.e2e_enabled else "no-e2e"
        return (f"audio|{self.vad}|{s.tuning.audio_chunk_max_s}|{asr}|{e2e}|"
                f"{self.runtime.embedder.model_id}|{sparse_scheme(self.settings)}")

    def ingest_paths(self, paths: Iterable[str], include: Iterable[str] = (),
                     exclude: Iterable[str] = (), progress: bool = True) -> IngestReport:
        """Ingest files and folders; failures are recorded per file and the rest goes on."""
        report = IngestReport()
        started = time.perf_counter()
        files = list(expand_paths(paths, include, exclude))
        self._progress = progress
        bar = tqdm(files, desc="ingest", unit="file", disable=not progress or len(files) < 2)
        for found in bar:
            if found.refused:
                report.failed.append((found.source, f"{found.source}: {found.refused}"))
                continue
            kind = source_kind(found.path)
            if found.path.exists() and kind is None and not found.explicit:
                report.skipped.append(found.source)
                continue
            try:
                self._ingest_file(found.path, found.source, kind, report)
            except StoreError as exc:  # the store, not this file, failed: stop here
                raise _aborted(exc, report) from exc
            except (DocumentError, AudioDecodeError, OSError) as exc:
                report.failed.append((found.source, _reason(exc, found.path)))
            except Exception as exc:  # a bug or model failure on one file must not stop the rest
                log.exception("unexpected error on %s", found.source)
                report.failed.append((found.source, f"unexpected {type(exc).__name__}: {exc}"))
            queued = sum(len(p.chunks) for p in self._pending)
            bar.set_postfix(chunks=report.chunks + queued, failed=len(report.failed))
        try:
            self._flush(report)
        except StoreError as exc:
            raise _aborted(exc, report) from exc
        self.runtime.store.finish_batch()
        report.seconds = time.perf_counter() - started
        return report

    def ingest_documents(self, documents: Iterable[TextDocument], progress: bool = True
                         ) -> IngestReport:
        """Ingest in-memory documents (benchmarks, HTTP uploads); ``source`` is the key."""
        report = IngestReport()
        started = time.perf_counter()
        signature = self._text_signature()
        for doc in tqdm(documents, desc="ingest", unit="doc", disable=not progress):
            doc_hash = hashlib.sha256(f"{signature}\0{doc.title}\0{doc.text}".encode()).hexdigest()
            if self._is_stored(doc.source, doc_hash):
                report.unchanged.append(doc.source)
                continue
            try:
                self._add_text(doc, doc_hash, report)
            except DocumentError as exc:
                report.failed.append((doc.source, str(exc)))
        self._flush(report)
        self.runtime.store.finish_batch()
        report.seconds = time.perf_counter() - started
        return report

    def ingest_recordings(self, recordings: Iterable[tuple[Path, str, str]],
                          progress: bool = True) -> IngestReport:
        """Ingest (path, source, title) recordings keyed by ``source`` instead of their path
        (spoken passages of a benchmark corpus)."""
        report = IngestReport()
        started = time.perf_counter()
        self._progress = progress
        signature = self._audio_signature()
        for path, source, title in tqdm(list(recordings), desc="ingest audio", unit="file",
                                        disable=not progress):
            try:
                doc_hash = _file_hash(path, f"{signature}|{title}")
                if self._is_stored(source, doc_hash):
                    report.unchanged.append(source)
                    continue
                self._add_audio(path, source, doc_hash, report, title)
            except (AudioDecodeError, OSError) as exc:
                report.failed.append((source, _reason(exc, path)))
        self._flush(report)
        self.runtime.store.finish_batch()
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_file(self, path: Path, source: str, kind: str | None,
                     report: IngestReport) -> None:
        if not path.exists():
            raise DocumentError(f"{path}: no such file or directory")
        if not path.is_file():  # reading a FIFO or a device would block or never end
            raise DocumentError(f"{path}: not a regular file (a folder, FIFO, socket or device)")
        if kind is None:
            raise DocumentError(f"{path}: unsupported file type '{path.suffix}'")
        signature = self._text_signature() if kind == "text" else self._audio_signature()
        doc_hash = _file_hash(path, signature)
        if self._is_stored(source, doc_hash):
            report.unchanged.append(source)
            return
        if kind == "text":
            self._add_text(read_document(path, source), doc_hash, report)
        else:
            self._add_audio(path, source, doc_hash, report)

    def _is_stored(self, source: str, doc_hash: str) -> bool:
        """True when this exact version of ``source`` finished ingesting (the manifest says so)
        and the store still holds all of its chunks and nothing else of that source."""
        entry = self.runtime.manifest.get(source)
        if entry is None or entry.doc_hash != doc_hash:
            return False
        store = self.runtime.store
        return store.count(source=source) == entry.chunks == store.count(
            source=source, doc_hash=doc_hash)

    def _add_text(self, doc: TextDocument, doc_hash: str, report: IngestReport) -> None:
        s = self.settings
        pieces = chunk_text(doc.text, self.runtime.embedder.count_tokens, s.chunk_tokens,
                            s.chunk_overlap_tokens)
        if not pieces:
            raise DocumentError(f"{doc.source}: contains no text")
        chunks = [Chunk("text", doc.source, doc.title, text, i, doc_hash)
                  for i, text in enumerate(pieces)]
        self._queue(_Prepared(doc.source, doc_hash, chunks), report)

    def _add_audio(self, path: Path, source: str, doc_hash: str, report: IngestReport,
                   title: str | None = None) -> None:
        transcriber = self.runtime.transcriber if self.settings.transcribe_audio else None
        speller = self._speller() if self.runtime.e2e_enabled else None
        chunks, spellings = [], {}
        # a long recording is one file for the outer bar: show how far into it we are
        with tqdm(desc=path.name, unit="s", leave=False, disable=not self._progress,
                  bar_format="{desc}: {n:.0f} s of audio [{elapsed}, {rate_fmt}]") as bar:
            for i, seg in enumerate(read_spoken(path, self.vad, transcriber,
                                                self.settings.tuning.audio_chunk_max_s, speller)):
                chunks.append(Chunk("audio", source, title or path.stem, seg.transcript, i,
                                    doc_hash, start=round(seg.start, 3), end=round(seg.end, 3)))
                if seg.spelling:
                    spellings[chunks[-1].id] = seg.spelling
                report.audio_seconds += seg.end - seg.start
                bar.update(seg.end - bar.n)
        self._queue(_Prepared(source, doc_hash, chunks, spellings), report)

    def _speller(self) -> Callable[[np.ndarray], str]:
        """Audio → the e2e head's spelling: the audio chunk's speech vector is its embedding,
        so spoken documents are found by the e2e path as questions are."""
        recognizer, head = self.runtime.recognizer, self.runtime.e2e
        return lambda audio: spell_audio(recognizer, head, audio).text

    def _queue(self, prepared: _Prepared, report: IngestReport) -> None:
        self._pending.append(prepared)
        if sum(len(p.chunks) for p in self._pending) >= self.settings.ingest_group_chunks:
            self._flush(report)

    def _flush(self, report: IngestReport) -> None:
        """Embed and store the queued sources, then drop their superseded chunks."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        chunks = [c for p in pending for c in p.chunks]
        with_text = [c for c in chunks if c.text]
        vectors = dict(zip((c.id for c in with_text),
                           self.runtime.embedder.embed([c.text for c in with_text]), strict=True))
        spellings = {k: v for p in pending for k, v in p.spellings.items()}
        speech = dict(zip(spellings, self.runtime.embedder.embed(list(spellings.values()))
                          if spellings else [], strict=True))
        encoders = {name: self.runtime.sparse_encoder(name)
                    for name in sparse_names(self.settings)}
        points = [StoredPoint(c, ({TEXT_VECTOR: vectors[c.id]}
                                  | {name: encoder.document(c.text)
                                     for name, encoder in encoders.items()}
                                  if c.id in vectors else {})
                              | ({SPEECH_VECTOR: speech[c.id]} if c.id in speech else {}))
                  for c in chunks]
        store = self.runtime.store
        store.upsert(points)
        for p in pending:
            store.delete_source(p.source, keep_doc_hash=p.doc_hash)
        # only now, with every chunk stored and older versions gone, is a source done
        self.runtime.manifest.record([(p.source, p.doc_hash, len(p.chunks)) for p in pending])
        report.ingested.extend(p.source for p in pending)
        report.chunks += len(chunks)
        self.runtime.forget_query_vocabulary()


def _aborted(exc: StoreError, report: IngestReport) -> StoreError:
    return StoreError(f"ingest stopped: {exc}. {len(report.ingested)} new and "
                      f"{len(report.unchanged)} unchanged source(s) are stored completely; a "
                      "re-run skips them and does the rest")


def _reason(exc: Exception, path: Path) -> str:
    """Connector errors already name the file; OS errors get it added."""
    text = str(exc)
    if isinstance(exc, OSError):
        text = f"{path}: {exc.strerror or exc}"
    return text
