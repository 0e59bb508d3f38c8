"""CTranslate2's ``model.bin``: a flat list of named tensors plus aliases.

s2r reads and rewrites it to make copies of Whisper whose decoder only knows some word pieces
(``decoder_vocab``) or carries a trained adaptation (``decoder_adapter``).  The converter
cannot do that: it needs the original Hugging Face weights, and the packaged model ships only
the converted file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

# CTranslate2's DataType ids (include/ctranslate2/types.h); bfloat16 and float8 have no numpy
# type, so files holding them are refused rather than misread.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_DTYPE_IDS = {np.dtype(t): i for i, t in _DTYPES.items()}
_VERSIONS = (5, 6)  # binary versions that store a spec name, a revision and uint8 dtype ids


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model.bin that s2r can rewrite."""


@dataclass
class CT2Model:
    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: list[tuple[str, str]]


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise CT2FormatError("truncated model.bin")
    return data


def _read_string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<H", _read_exact(f, 2))
    return _read_exact(f, n)[:-1].decode("utf-8")  # stored with its NUL terminator


def _write_string(f: BinaryIO, text: str) -> None:
    data = text.encode("utf-8") + b"\0"
    f.write(struct.pack("<H", len(data)))
    f.write(data)


def read_model(path: str | Path) -> CT2Model:
    with open(path, "rb") as f:
        (version,) = struct.unpack("<I", _read_exact(f, 4))
        if version not in _VERSIONS:
            raise CT2FormatError(f"{path}: model.bin version {version} is not one of "
                                 f"{_VERSIONS}")
        spec = _read_string(f)
        revision, count = struct.unpack("<II", _read_exact(f, 8))
        variables: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = _read_string(f)
            (rank,) = struct.unpack("<B", _read_exact(f, 1))
            shape = struct.unpack(f"<{rank}I", _read_exact(f, 4 * rank))
            dtype_id, size = struct.unpack("<BI", _read_exact(f, 5))
            if dtype_id not in _DTYPES:
                raise CT2FormatError(f"{path}: {name} has data type {dtype_id}, which s2r "
                                     "cannot rewrite")
            variables[name] = np.frombuffer(_read_exact(f, size), _DTYPES[dtype_id]
                                            ).reshape(shape)
        (n_aliases,) = struct.unpack("<I", _read_exact(f, 4))
        aliases = [(_read_string(f), _read_string(f)) for _ in range(n_aliases)]
    return CT2Model(version, spec, revision, variables, aliases)


def write_model(model: CT2Model, path: str | Path) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<I", model.version))
        _write_string(f, model.spec)
        f.write(struct.pack("<II", model.revision, len(model.variables)))
        for name, value in model.variables.items():
            value = np.array(value, order="C")  # keeps 0-d scalars 0-d
            _write_string(f, name)
            f.write(struct.pack(f"<B{value.ndim}I", value.ndim, *value.shape))
            f.write(struct.pack("<BI", _DTYPE_IDS[value.dtype], value.nbytes))
            f.write(value.tobytes())
        f.write(struct.pack("<I", len(model.aliases)))
        for alias, target in model.aliases:
            _write_string(f, alias)
            _write_string(f, target)


def cached_model_dir(source: Path, tag: str, parent: Path,
                     write: Callable[[Path, Path], None]) -> Path:
    """``parent/<source key>-<tag>``, made once by ``write(source, tmp_dir)``.  The key names
    ``source``'s model.bin (path, size, mtime), so a changed model gets a new copy.  Each writer
    works in its own temp dir and renames it into place; when two processes race, the first
    rename wins and the other's copy is dropped."""
    stat = (source / "model.bin").stat()
    source_key = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
                                .encode()).hexdigest()[:12]
    target = Path(parent) / f"{source_key}-{tag}"
    if (target / "model.bin").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(source, tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first (or left a broken copy)
            if not (target / "model.bin").exists():
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
