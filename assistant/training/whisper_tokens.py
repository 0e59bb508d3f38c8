"""The Whisper token ids the adapter's training sequences use, from the ``tokenizers.Tokenizer``
alone.

Training needs only these few ids and the text encoding, not faster-whisper (whose package
imports CTranslate2 and PyAV): so the decoder adapter can be trained where neither is installed,
such as an accelerator machine with PyTorch.  English-only models, as the trainer supports: the
start of a transcript is ``<|startoftranscript|>`` alone, with no language or task token.
"""

from __future__ import annotations

from functools import cached_property


class WhisperTokens:
    """faster-whisper's ``Tokenizer`` interface, the part the training code reads."""

    def __init__(self, hf_tokenizer) -> None:
        self.tokenizer = hf_tokenizer

    def _id(self, token: str) -> int:
        found = self.tokenizer.token_to_id(token)
        if found is None:
            raise ValueError(f"the tokenizer has no {token} token: not a Whisper tokenizer")
        return found

    @cached_property
    def sot_sequence(self) -> list[int]:
        return [self._id("<|startoftranscript|>")]

    @cached_property
    def sot_prev(self) -> int:
        return self._id("<|startofprev|>")

    @cached_property
    def eot(self) -> int:
        return self._id("<|endoftext|>")

    @cached_property
    def no_timestamps(self) -> int:
        return self._id("<|notimestamps|>")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids
