"""Reading a benchmark directory (the format in docs/benchmark-format.md), with errors naming file
and line.

    BENCH/corpus.jsonl   {"id", "title", "text"}  or  {"id", "audio", ...}  one passage a line
    BENCH/queries.jsonl  {"id", "audio", "text", "relevant": [doc id, …]}  (optional "kind",
                         "voice", "family": scored apart per kind and per voice family)
    BENCH/audio/         the audio files, paths relative to BENCH
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class BenchmarkError(ValueError):
    """The benchmark directory breaks the format; the message names file and line."""


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str = ""
    audio: Path | None = None  # a spoken passage


@dataclass(frozen=True)
class Query:
    id: str
    audio: Path
    text: str  # reference transcript
    relevant: frozenset[str]
    kind: str = ""  # optional: what sort of query ("lead", "keywords", ...), scored apart
    family: str = ""  # optional: the voice family that spoke it ("flite", "human", ...)


@dataclass
class Benchmark:
    root: Path
    passages: list[Passage]
    queries: list[Query]
    skipped: list[str] = field(default_factory=list)  # "file:line: reason" of skipped queries

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def corpus_file(self) -> Path:
        return self.root / "corpus.jsonl"


def _lines(path: Path) -> Iterator[tuple[str, dict | BenchmarkError]]:
    """("file:line", parsed object, or the error for that line), blank lines skipped."""
    if not path.is_file():
        raise BenchmarkError(f"{path}: missing (every benchmark has corpus.jsonl and "
                             "queries.jsonl)")
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            where = f"{path}:{number}"
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield where, BenchmarkError(f"{where}: malformed JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                yield where, BenchmarkError(f"{where}: expected a JSON object")
                continue
            yield where, row


def _text(row: dict, key: str, where: str, required: bool = True) -> str:
    value = row.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BenchmarkError(f"{where}: '{key}' must be a non-empty string")
    return value


def load_corpus(root: Path) -> list[Passage]:
    path = root / "corpus.jsonl"
    passages: list[Passage] = []
    seen: set[str] = set()
    for where, row in _lines(path):
        if isinstance(row, BenchmarkError):
            raise row
        doc_id = _text(row, "id", where)
        if doc_id in seen:
            raise BenchmarkError(f"{where}: duplicate id {doc_id!r}")
        seen.add(doc_id)
        if "audio" in row:
            audio = root / _text(row, "audio", where)
            if not audio.is_file():
                raise BenchmarkError(f"{where}: audio file {audio} does not exist")
            passages.append(Passage(doc_id, str(row.get("title") or doc_id), "", audio))
        else:
            passages.append(Passage(doc_id, _text(row, "title", where, required=False),
                                    _text(row, "text", where)))
    if not passages:
        raise BenchmarkError(f"{path}: no passages")
    return passages


def load_benchmark(root: str | Path, skip_bad: bool = False) -> Benchmark:
    """Load and check a benchmark; with ``skip_bad`` a bad query is skipped, not fatal."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"{root}: not a directory")
    passages = load_corpus(root)
    ids = {p.id for p in passages}
    path = root / "queries.jsonl"
    queries: list[Query] = []
    skipped: list[str] = []
    for where, row in _lines(path):
        try:
            if isinstance(row, BenchmarkError):
                raise row
            queries.append(_query(row, where, root, ids))
        except BenchmarkError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
    if not queries:
        raise BenchmarkError(f"{path}: no usable queries")
    return Benchmark(root, passages, queries, skipped)


def _query(row: dict, where: str, root: Path, ids: set[str]) -> Query:
    query_id = _text(row, "id", where)
    audio = root / _text(row, "audio", where)
    if not audio.is_file():
        raise BenchmarkError(f"{where}: audio file {audio} does not exist")
    relevant = row.get("relevant")
    if not isinstance(relevant, list) or not relevant:
        raise BenchmarkError(f"{where}: 'relevant' must be a non-empty list of doc ids")
    unknown = [r for r in relevant if r not in ids]
    if unknown:
        raise BenchmarkError(f"{where}: relevant id(s) not in corpus.jsonl: {unknown[:3]}")
    return Query(query_id, audio, _text(row, "text", where, required=False),
                 frozenset(map(str, relevant)), _text(row, "kind", where, required=False),
                 _text(row, "family", where, required=False))
