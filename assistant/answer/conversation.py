"""A conversation's memory: the last few question/answer pairs, as chat messages.

Only the questions and answers are kept, not the sources retrieved for them: follow-up
questions get fresh sources, and old sources would eat the context budget.  The history is
bounded in turns and in tokens: it is part of every prompt.  It is also the prompt's prefix,
which llama.cpp keeps from the turn before and does not read again, so it changes as seldom as
possible: when a new turn overflows a bound, the oldest turns are forgotten in one block, down
to half of each bound, rather than one per turn (which would change the prefix every turn).
"""

from __future__ import annotations

from assistant.answer.chat_client import Message
from assistant.answer.context import estimate_tokens


class Conversation:
    def __init__(self, max_turns: int = 6, max_tokens: int = 400) -> None:
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self._turns: list[tuple[str, str]] = []

    def add(self, question: str, answer: str) -> None:
        if not (self.max_turns and question and answer):
            return
        self._turns.append((question, answer))
        if len(self._turns) > self.max_turns or self._tokens() > self.max_tokens:
            while self._turns and (len(self._turns) > self.max_turns // 2
                                   or self._tokens() > self.max_tokens // 2):
                del self._turns[0]

    def _tokens(self) -> int:
        return sum(estimate_tokens(q) + estimate_tokens(a) for q, a in self._turns)

    def messages(self) -> list[Message]:
        """The remembered turns, oldest first."""
        return [message for question, answer in self._turns
                for message in ({"role": "user", "content": question},
                                {"role": "assistant", "content": answer})]

    def clear(self) -> None:
        self._turns.clear()
