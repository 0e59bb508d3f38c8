"""A conversation's memory: the last few question/answer pairs, as chat messages.

Only the questions and answers are kept, not the sources retrieved for them: follow-up
questions get fresh sources, and old sources would eat the context budget.
"""

from __future__ import annotations

from collections import deque

from assistant.generator import Message


class Conversation:
    def __init__(self, max_turns: int = 6) -> None:
        self.max_turns = max_turns
        self._turns: deque[tuple[str, str]] = deque(maxlen=max_turns or None)

    def add(self, question: str, answer: str) -> None:
        if self.max_turns and question and answer:
            self._turns.append((question, answer))

    def messages(self) -> list[Message]:
        history: list[Message] = []
        for question, answer in self._turns:
            history += [{"role": "user", "content": question},
                        {"role": "assistant", "content": answer}]
        return history

    def clear(self) -> None:
        self._turns.clear()

    def __len__(self) -> int:
        return len(self._turns)
