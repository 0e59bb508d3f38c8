"""Small checkpoints shipped beside their card: ``NAME.npz`` (numpy arrays) and ``NAME.json``
(metadata with the file's sha256).  A file that does not match its card is refused, so a
truncated download or an edited file never silently changes what s2r computes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checked(path: Path, what: str, fix: str, error: type[Exception], card_format: str
                 ) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, card) of ``path`` after checking its format and sha256 against the card; each
    failure is an ``error`` naming the file (``what``: "e2e model"; ``fix``: what to set)."""
    card_path = path.with_suffix(".json")
    if not path.is_file():
        raise error(f"{what} {path} not found: {fix}")
    if not card_path.is_file():
        raise error(f"{what} card {card_path} not found (it holds the checksum)")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{what} card {card_path} is unreadable: {exc}") from exc
    if card.get("format") != card_format:
        raise error(f"{card_path}: not an {card_format} checkpoint")
    actual = sha256_of(path)
    if actual != card.get("sha256"):
        raise error(f"{what} {path} is corrupt: sha256 {actual[:12]}… does not match "
                    f"{str(card.get('sha256'))[:12]}… in its card")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise error(f"{what} {path} is unreadable: {exc}") from exc
    return arrays, card
