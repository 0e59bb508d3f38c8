"""The LlamaIndex adapters: typed and spoken retrieval, async retrieval, a query engine on the
real local model, and the embedding."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from llama_index.core import get_response_synthesizer
from llama_index.core.query_engine import RetrieverQueryEngine

from assistant.answer.chat_client import ChatConfig
from assistant.interfaces.llamaindex import S2RLLM, S2REmbedding, S2RRetriever, SpokenQueryBundle
from assistant.speech.audio import write_wav

pytestmark = pytest.mark.slow

QUESTION = "Who built the first working transistor?"


def titles(nodes) -> list[str]:
    return [n.node.metadata["title"] for n in nodes]


def test_typed_and_spoken_queries_return_nodes_with_metadata(answer_runtime, speak, tmp_path):
    retriever = S2RRetriever(answer_runtime, top_k=3)
    typed = retriever.retrieve("how do bees share where flowers are")
    assert titles(typed)[0] == "Honeybees" and len(typed) == 3
    node = typed[0]
    assert node.score > 0 and node.node.metadata["kind"] == "text"
    assert node.node.metadata["source"].endswith("honeybees.md")
    audio = speak(QUESTION)
    path = write_wav(tmp_path / "q.wav", audio)
    for source in (audio, path, path.read_bytes()):
        bundle = SpokenQueryBundle.from_audio(source)
        assert titles(retriever.retrieve(bundle))[0] == "The transistor"
        assert "transistor" in bundle.query_str.lower()  # the transcript, for the synthesizer


def test_aretrieve(answer_runtime, speak):
    retriever = S2RRetriever(answer_runtime, top_k=2)

    async def both():
        return await asyncio.gather(
            retriever.aretrieve("volcano eruption lava"),
            retriever.aretrieve(SpokenQueryBundle.from_audio(speak(QUESTION))))

    volcano, transistor = asyncio.run(both())
    assert titles(volcano)[0] == "volcanoes" and titles(transistor)[0] == "The transistor"


def test_query_engine_answers_a_spoken_question_with_the_local_model(answer_runtime, local_llm,
                                                                      speak):
    llm = S2RLLM(ChatConfig(url=local_llm("smollm2"), max_tokens=40, temperature=0.0))
    engine = RetrieverQueryEngine(retriever=S2RRetriever(answer_runtime, top_k=2),
                                  response_synthesizer=get_response_synthesizer(llm=llm))
    response = engine.query(SpokenQueryBundle.from_audio(speak(QUESTION)))
    assert response.response and response.response.strip() != "Empty Response"
    assert titles(response.source_nodes)[0] == "The transistor"


def test_embedding_matches_the_collection_vectors(answer_runtime):
    embedding = S2REmbedding(answer_runtime)
    query = np.array(embedding.get_query_embedding("lava and ash"))
    texts = np.array(embedding.get_text_embedding_batch(["lava and ash", "bees and honey"]))
    assert query.shape == (answer_runtime.embedder.dim,)
    assert np.allclose(query, answer_runtime.embedder.embed_one("lava and ash"), atol=1e-5)
    assert texts[0] @ query > texts[1] @ query
