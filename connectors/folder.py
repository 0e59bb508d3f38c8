"""Expand the paths given to ``s2r ingest`` into the files to ingest.

Folders are walked recursively in sorted order; include/exclude globs match the path relative
to the folder (and the bare file name), so ``--include '*.md' --exclude 'drafts/*'`` work as
people expect.  Symlinked folders are not followed, so a link loop cannot hang the walk, and
a linked file whose target lies outside the folder is refused (a link must not pull in
``/etc/shadow`` or another user's files just because it sits in the folder being ingested).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FoundFile:
    path: Path
    source: str  # path as given, or folder as given joined with the relative path
    explicit: bool  # named on the command line (an unsupported type is then an error)
    refused: str | None = None  # why this file must not be read, reported as a failure


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def expand_paths(paths: Iterable[str], include: Iterable[str] = (),
                 exclude: Iterable[str] = ()) -> Iterator[FoundFile]:
    """Yield files; a missing path is yielded too, so the ingest reports it as failed."""
    include, exclude = list(include), list(exclude)
    for given in paths:
        root = Path(given)
        if not root.is_dir():
            yield FoundFile(root, given, explicit=True)
            continue
        inside = root.resolve()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                if name.startswith(".") or (include and not _matches(rel, include)):
                    continue
                if exclude and _matches(rel, exclude):
                    continue
                yield FoundFile(full, os.path.join(given, rel), explicit=False,
                                refused=_outside_link(full, inside))


def _outside_link(path: Path, inside: Path) -> str | None:
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target.is_relative_to(inside):
        return None
    return (f"a symbolic link to {target}, outside the folder being ingested; name the "
            "target itself to ingest it")
