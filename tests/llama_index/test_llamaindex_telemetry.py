"""LLMRouter(instrument=...) inside a LlamaIndex query engine: the router's spans join the
caller's OpenTelemetry trace (query span -> request span -> attempts), sync, async, streamed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llamaindex_support import anthropic_deployment, openai_deployment
from opentelemetry.trace import StatusCode
from otel_support import Otel, make_otel

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.llama_index import LLMRouter
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

DOCUMENTS = [
    "The Eiffel Tower is 330 metres tall and stands in Paris.",
    "Mount Fuji is the highest mountain in Japan at 3,776 metres.",
]
QUESTION = "How tall is the Eiffel Tower?"


@pytest.fixture
def otel() -> Otel:
    return make_otel()


@pytest.fixture
def index(fake: FakeProviderServer, otel: Otel) -> Iterator[VectorStoreIndex]:
    fake.set_behavior("broken-primary", ModelBehavior(permanent_error=503))
    llm = LLMRouter(
        deployments=[
            openai_deployment(fake, model="broken-primary", name="primary"),
            anthropic_deployment(fake, name="backup"),
        ],
        strategy="priority",
        clock=ManualClock(),
        instrument=otel.settings,
    )
    saved = (Settings._llm, Settings._embed_model)
    Settings.llm = llm
    Settings.embed_model = MockEmbedding(embed_dim=8)
    try:
        yield VectorStoreIndex.from_documents([Document(text=text) for text in DOCUMENTS])
    finally:
        Settings._llm, Settings._embed_model = saved
        llm.router.close()


def assert_query_trace(otel: Otel, query_span_id: int, *, stream: bool) -> None:
    [request] = otel.requests()
    assert request.parent is not None and request.parent.span_id == query_span_id
    attempts = otel.children(request)
    assert [a.attributes["llmrouter.deployment"] for a in attempts] == [
        "primary",
        "primary",
        "primary",
        "backup",
    ]  # the default RetryPolicy tries the broken one three times, then falls back
    assert [a.status.status_code for a in attempts] == [StatusCode.ERROR] * 3 + [StatusCode.UNSET]
    attributes = dict(request.attributes or {})
    assert request.name == "chat claude-haiku-4-5"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.stream"] is stream
    assert attributes["llmrouter.attempts"] == 4 and attributes["llmrouter.fallback"] is True
    assert attributes["gen_ai.usage.input_tokens"] > 0


def test_sync_query_joins_the_trace(
    index: VectorStoreIndex, otel: Otel, fake: FakeProviderServer
) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("query") as query:
        answer = index.as_query_engine(similarity_top_k=2).query(QUESTION)
    assert QUESTION in str(answer)
    assert_query_trace(otel, query.get_span_context().span_id, stream=False)
    assert fake.request_count("broken-primary") == 3


async def test_async_query_joins_the_trace(index: VectorStoreIndex, otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("query") as query:
        answer = await index.as_query_engine(similarity_top_k=2).aquery(QUESTION)
    assert QUESTION in str(answer)
    assert_query_trace(otel, query.get_span_context().span_id, stream=False)


def test_streamed_query_joins_the_trace(index: VectorStoreIndex, otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("query") as query:
        response = index.as_query_engine(similarity_top_k=2, streaming=True).query(QUESTION)
        text = "".join(response.response_gen)
    assert QUESTION in text
    assert_query_trace(otel, query.get_span_context().span_id, stream=True)
