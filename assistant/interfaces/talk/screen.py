"""The voice loop's terminal: what was heard, the sources, then the answer as it streams."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from assistant.answer.answering import Answer
from assistant.retrieval.store.base import Hit


class RichScreen:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self._open_line = False  # an answer is being written on the current line

    def _end_line(self) -> None:
        if self._open_line:
            self.console.print()
            self._open_line = False

    def heard(self, transcript: str) -> None:
        self.console.print(f"\n[bold cyan]you[/]  {escape(transcript)}")

    def sources(self, hits: list[Hit]) -> None:
        for number, hit in enumerate(hits, 1):
            p = hit.payload
            span = f" {p['start']:.1f}–{p['end']:.1f} s" if p.get("start") is not None else ""
            self.console.print(f"[dim]  [{number}] {escape(str(p.get('title')))}{span}  "
                               f"({escape(str(p.get('source')))})[/]")
        if not hits:
            self.console.print("[dim]  (no sources found)[/]")
        self.console.print("[bold green]s2r[/]  ", end="")
        self._open_line = True

    def delta(self, text: str) -> None:
        self.console.print(text, end="", markup=False, highlight=False, soft_wrap=True)

    def answer_done(self, answer: Answer | None, interrupted: bool) -> None:
        self._end_line()

    def note(self, message: str) -> None:
        self._end_line()
        self.console.print(f"[dim]{escape(message)}[/]")
