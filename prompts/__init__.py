"""The answer generator's prompt templates, stored as files beside this module and loaded by
name, so changing the assistant's behaviour needs no code change.  ``S2R_PROMPTS_DIR`` points
at a user folder with the same file names instead."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from string import Template

BUNDLED = Path(__file__).resolve().parent


class PromptError(LookupError):
    """A prompt file is missing or uses a placeholder it was not given."""


def prompts_dir() -> Path:
    return Path(os.environ.get("S2R_PROMPTS_DIR") or BUNDLED)


@lru_cache(maxsize=64)
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def load(name: str) -> str:
    path = prompts_dir() / f"{name}.txt"
    if not path.is_file():
        raise PromptError(f"prompt {name!r} not found: {path} does not exist")
    return _read(path)


def render(name: str, **values: object) -> str:
    try:
        return Template(load(name)).substitute({k: str(v) for k, v in values.items()})
    except KeyError as exc:
        raise PromptError(f"prompt {name!r} needs a value for ${exc.args[0]}") from exc
