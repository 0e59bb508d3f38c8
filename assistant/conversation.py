"""A conversation's memory: the last few question/answer pairs, as chat messages.

Only the questions and answers are kept, not the sources retrieved for them: follow-up
questions get fresh sources, and old sources would eat the context budget.  The history is
bounded in turns and in tokens: it is part of every prompt, and reading the prompt is most of
the wait for an answer on a CPU.
"""

from __future__ import annotations

from collections import deque

from assistant.context import estimate_tokens
from assistant.generator import Message


class Conversation:
    def __init__(self, max_turns: int = 6, max_tokens: int = 400) -> None:
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self._turns: deque[tuple[str, str]] = deque(maxlen=max_turns or None)

    def add(self, question: str, answer: str) -> None:
        if self.max_turns and question and answer:
            self._turns.append((question, answer))

    def messages(self) -> list[Message]:
        """The most recent turns that fit ``max_tokens``, oldest first."""
        history: list[Message] = []
        used = 0
        for question, answer in reversed(self._turns):
            used += estimate_tokens(question) + estimate_tokens(answer)
            if used > self.max_tokens:
                break
            history = [{"role": "user", "content": question},
                       {"role": "assistant", "content": answer}, *history]
        return history

    def clear(self) -> None:
        self._turns.clear()
