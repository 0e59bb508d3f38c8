"""What the hybrid's second decode reads first: the top candidates' titles and rare words.

Most recognition errors that cost a search are rare words: "APSE" for "Apiaceae".  Whisper
spells a word far more readily right after reading it in its previous-text prompt.  So after a
first search, the titles and rare words of the top hits go in front of a second decode of the
same encoder pass.  When the right passage is among them, its names become easy to say; a wrong
candidate's names are no easier to hear, as the audio still decides.  "Rare" is judged by
Whisper's own tokenizer: a word it splits into several pieces, or whose piece is outside the
10,000 commonest, is one its decoder finds hard to spell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.speech.decoder_vocab import COMMON_PIECES

WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")  # four letters or more
MAX_WORDS = 60
MAX_CONTEXT_TOKENS = 200  # of a previous-text prompt (Whisper allows up to 223)


def candidate_context(passages: Sequence[tuple[str, str]], tokenizer,
                      max_words: int = MAX_WORDS) -> str:
    """The prompt "Title, Title. rare words …" for (title, text) passages, best first;
    ``tokenizer`` is Whisper's (a ``tokenizers.Tokenizer``)."""
    titles = ", ".join(dict.fromkeys(title for title, _ in passages if title))
    words = list(dict.fromkeys(w for _, text in passages for w in WORD.findall(text)))
    pieces = tokenizer.encode_batch([" " + w for w in words], add_special_tokens=False) \
        if words else []
    rare = " ".join([w for w, p in zip(words, pieces, strict=True)
                     if len(p.ids) > 1 or p.ids[0] >= COMMON_PIECES][:max_words])
    return ". ".join(part for part in (titles, rare) if part)


def previous_text_prompt(tokenizer, context: str) -> list[int]:
    """Whisper's previous-text prompt for ``context`` (``tokenizer``: faster-whisper's, or
    ``WhisperTokens``): ``sot_prev`` and the context's last ``MAX_CONTEXT_TOKENS`` tokens."""
    return [tokenizer.sot_prev, *tokenizer.encode(" " + context.strip())[-MAX_CONTEXT_TOKENS:]]
