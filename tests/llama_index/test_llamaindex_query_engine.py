"""A VectorStoreIndex query engine answered through the router, with `Settings.llm` set to it.

The fake provider echoes the last user message, so an answer that contains the retrieved
documents and the question proves the whole retrieval-then-synthesis path went through
the router. The first deployment is broken, so every answer also shows the fallback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llamaindex_support import EventRecorder, anthropic_deployment, make_router, openai_deployment

from llmrouter_integrations.llama_index import LLMRouter, RouterFallbackEvent
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

DOCUMENTS = [
    "The Eiffel Tower is 330 metres tall and stands in Paris.",
    "Mount Fuji is the highest mountain in Japan at 3,776 metres.",
    "The Amazon river carries more water than any other river.",
]
QUESTION = "How tall is the Eiffel Tower?"


@pytest.fixture
def llm(fake: FakeProviderServer) -> Iterator[LLMRouter]:
    """Settings.llm and Settings.embed_model for one test, restored afterwards."""
    fake.set_behavior("broken-primary", ModelBehavior(permanent_error=503))
    router = make_router(
        openai_deployment(fake, model="broken-primary", name="primary"),
        anthropic_deployment(fake, name="backup"),
    )
    saved = (Settings._llm, Settings._embed_model)
    llm = LLMRouter(router=router)
    Settings.llm = llm
    Settings.embed_model = MockEmbedding(embed_dim=8)
    try:
        yield llm
    finally:
        Settings._llm, Settings._embed_model = saved
        router.close()
    assert not isinstance(Settings._llm, LLMRouter)


@pytest.fixture
def index(llm: LLMRouter) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents([Document(text=text) for text in DOCUMENTS])


def assert_grounded(answer: str) -> None:
    assert answer.startswith("Echo: ")
    assert QUESTION in answer
    for text in DOCUMENTS:  # all three retrieved (top_k=3) and packed into the prompt
        assert text in answer


def test_query_sync(index: VectorStoreIndex, recorder: EventRecorder) -> None:
    response = index.as_query_engine(similarity_top_k=3).query(QUESTION)
    assert_grounded(str(response))
    assert len(response.source_nodes) == 3
    fallbacks = recorder.named("RouterFallbackEvent")
    assert fallbacks and all(isinstance(e, RouterFallbackEvent) for e in fallbacks)
    assert fallbacks[0].deployment == "primary" and fallbacks[0].data["to"] == "backup"


async def test_query_async(index: VectorStoreIndex, recorder: EventRecorder) -> None:
    response = await index.as_query_engine(similarity_top_k=3).aquery(QUESTION)
    assert_grounded(str(response))
    assert recorder.count("RouterFallbackEvent") >= 1
    assert recorder.count("LLMChatEndEvent") == 1


def test_query_streaming(index: VectorStoreIndex, recorder: EventRecorder) -> None:
    response = index.as_query_engine(similarity_top_k=3, streaming=True).query(QUESTION)
    tokens = list(response.response_gen)
    assert len(tokens) > 1
    assert_grounded("".join(tokens))
    assert recorder.count("LLMChatInProgressEvent") == len(tokens)
    (cost,) = recorder.named("RouterCostEvent")
    assert cost.deployment == "backup" and cost.provider == "anthropic"


async def test_query_async_streaming(index: VectorStoreIndex) -> None:
    engine = index.as_query_engine(similarity_top_k=3, streaming=True)
    response = await engine.aquery(QUESTION)
    tokens = [token async for token in response.async_response_gen()]
    assert_grounded("".join(tokens))
