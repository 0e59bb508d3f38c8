"""s2r: speech-to-retrieval spoken assistant.

The public API, loaded on first use so that ``import assistant`` stays cheap::

    from assistant import Settings, Runtime, Retriever, Answerer
    from assistant import S2RRetriever, S2REmbedding, S2RLLM  # extra `llamaindex`
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Settings": "assistant.settings",
    "Runtime": "assistant.runtime",
    "Retriever": "assistant.retrieval.retriever",
    "Answerer": "assistant.answer.answering",
    "S2RRetriever": "assistant.interfaces.llamaindex",
    "S2REmbedding": "assistant.interfaces.llamaindex",
    "S2RLLM": "assistant.interfaces.llamaindex",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'assistant' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
