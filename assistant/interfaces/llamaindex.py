"""LlamaIndex adapters (extra ``llamaindex``): s2r's retriever, embedder and model endpoint as
LlamaIndex components, so an existing pipeline can take spoken questions.

- ``S2RRetriever``: a ``BaseRetriever`` over an s2r collection.  A plain string or
  ``QueryBundle`` is a typed question; a ``SpokenQueryBundle`` (from a file path, encoded bytes
  or a float32 16 kHz array) goes through integrated S2R.  Retrieving a spoken bundle fills in
  its ``query_str`` with the transcript from the same Whisper pass, so a
  ``RetrieverQueryEngine`` hands the model the question as heard.
- ``S2REmbedding``: the collection's text embedder as a ``BaseEmbedding``.
- ``S2RLLM``: s2r's configured chat endpoint as a LlamaIndex LLM.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr

from assistant.answer.chat_client import ChatClient, ChatConfig
from assistant.retrieval.retriever import Retriever, SearchResult
from assistant.retrieval.store.base import Hit
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.speech.audio import decode_audio


@dataclass
class SpokenQueryBundle(QueryBundle):
    """A spoken question.  ``query_str`` stays empty until the retriever has heard it."""

    audio: np.ndarray | None = None

    @classmethod
    def from_audio(cls, audio: str | Path | bytes | np.ndarray) -> SpokenQueryBundle:
        """From a file path, encoded audio bytes, or float32 mono samples at 16 kHz."""
        if isinstance(audio, np.ndarray):
            samples = np.asarray(audio, np.float32).reshape(-1)
        else:
            samples = decode_audio(audio)
        return cls(query_str="", audio=samples)


def _node(hit: Hit) -> NodeWithScore:
    p = hit.payload
    metadata = {"source": p.get("source"), "title": p.get("title"), "kind": p.get("kind")}
    if p.get("start") is not None:
        metadata |= {"start": p.get("start"), "end": p.get("end")}
    node = TextNode(id_=hit.id, text=p.get("text") or "", metadata=metadata,
                    excluded_embed_metadata_keys=["kind", "start", "end"])
    return NodeWithScore(node=node, score=float(hit.score))


class S2RRetriever(BaseRetriever):
    """LlamaIndex retriever over an s2r collection (typed or spoken questions)."""

    def __init__(self, runtime: Runtime | None = None, top_k: int = 5,
                 kind: str | None = None, **kwargs: Any) -> None:
        self.runtime = runtime or Runtime(Settings.load())
        self.retriever = Retriever(self.runtime)
        self.top_k = top_k
        self.kind = kind
        self.last_result: SearchResult | None = None
        self._lock = threading.Lock()  # the models and the embedded store are single-user
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        with self._lock:
            if isinstance(query_bundle, SpokenQueryBundle) and query_bundle.audio is not None:
                result = self.retriever.search_spoken(query_bundle.audio, self.top_k, self.kind)
                query_bundle.query_str = result.transcript or ""
            else:
                result = self.retriever.search_text(query_bundle.query_str, self.top_k,
                                                     self.kind)
            self.last_result = result
        return [_node(hit) for hit in result.hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def retrieve_audio(self, audio: str | Path | bytes | np.ndarray) -> list[NodeWithScore]:
        return self.retrieve(SpokenQueryBundle.from_audio(audio))


class S2REmbedding(BaseEmbedding):
    """The collection's text embedder, so LlamaIndex indexes share s2r's vector space."""

    _runtime: Runtime = PrivateAttr()

    def __init__(self, runtime: Runtime | None = None, **kwargs: Any) -> None:
        runtime = runtime or Runtime(Settings.load())
        super().__init__(model_name=runtime.embedder.model_id, **kwargs)
        self._runtime = runtime

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._runtime.embedder.embed_one(query).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._runtime.embedder.embed_one(text).tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._runtime.embedder.embed(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)


class S2RLLM(CustomLLM):
    """An OpenAI-compatible endpoint (s2r's own settings, or any ``ChatConfig``) as an LLM."""

    context_window: int = 4096
    num_output: int = 256
    _client: ChatClient = PrivateAttr()

    def __init__(self, config: ChatConfig, context_window: int = 4096, **kwargs: Any) -> None:
        super().__init__(context_window=context_window, num_output=config.max_tokens, **kwargs)
        self._client = ChatClient(config)

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> S2RLLM:
        """The model s2r itself answers with (this may start the local model server)."""
        if runtime.llm.config is None:
            raise RuntimeError("no language model: set S2R_LLM_URL or install a local model")
        return cls(runtime.llm.config, context_window=runtime.settings.tuning.llm_n_ctx)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.num_output,
                           is_chat_model=True, model_name=self._client.config.model or "s2r")

    @staticmethod
    def _messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
        return [{"role": m.role.value, "content": m.content or ""} for m in messages]

    @llm_chat_callback()
    def chat(self, messages: list[ChatMessage], **kwargs: Any) -> ChatResponse:
        completion = self._client.complete(self._messages(messages))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT,
                                                content=completion.text))

    @llm_chat_callback()
    def stream_chat(self, messages: list[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def gen() -> ChatResponseGen:
            text = ""
            for delta in self._client.stream(self._messages(messages)):
                text += delta
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT,
                                                       content=text), delta=delta)

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any
                 ) -> CompletionResponse:
        return CompletionResponse(
            text=self._client.complete([{"role": "user", "content": prompt}]).text)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any
                        ) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            text = ""
            for delta in self._client.stream([{"role": "user", "content": prompt}]):
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()
