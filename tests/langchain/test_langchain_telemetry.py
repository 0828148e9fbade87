"""ChatLLMRouter(instrument=...) inside LangChain runs: the router's spans join the caller's
OpenTelemetry trace (app span -> request span -> one span per attempt), sync and async."""

from __future__ import annotations

from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_fakes import ANTHROPIC_MODEL, OPENAI_MODEL, make_model
from opentelemetry.trace import SpanKind, StatusCode
from otel_support import Otel, make_otel

from llmrouter_integrations.langchain import ChatLLMRouter
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior


def chain(model: ChatLLMRouter) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one line."), ("human", "Say something about {topic}")]
    )
    return prompt | model | StrOutputParser()


def assert_joined(otel: Otel, parent_span_id: int, attempts: list[str]) -> None:
    [request] = otel.requests()
    assert request.parent is not None and request.parent.span_id == parent_span_id
    assert [a.name for a in otel.children(request)] == [f"attempt {name}" for name in attempts]
    [app] = [s for s in otel.finished() if s.name == "langchain app"]
    assert request.context.trace_id == app.context.trace_id
    assert app.kind == SpanKind.INTERNAL


def test_sync_chain_trace_shows_chain_model_call_and_attempts(fake: FakeProviderServer) -> None:
    fake.set_behavior(OPENAI_MODEL, ModelBehavior(permanent_error=503))
    otel = make_otel()
    model = make_model(fake, instrument=otel.settings)
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("langchain app") as app:
        answer = chain(model).invoke({"topic": "lighthouses"})
    assert "lighthouses" in answer
    assert_joined(
        otel,
        app.get_span_context().span_id,
        [f"openai/{OPENAI_MODEL}", f"anthropic/{ANTHROPIC_MODEL}"],
    )
    [request] = otel.requests()
    attributes = dict(request.attributes or {})
    assert request.name == f"chat {ANTHROPIC_MODEL}"
    assert attributes["llmrouter.fallback"] is True
    assert attributes["gen_ai.usage.output_tokens"] > 0
    failed, served = otel.children(request)
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["error.type"] == "OverloadedError"
    assert served.status.status_code == StatusCode.UNSET


async def test_async_streamed_chain_joins_the_trace(fake: FakeProviderServer) -> None:
    otel = make_otel()
    model = make_model(fake, instrument=otel.settings)
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("langchain app") as app:
        pieces = [piece async for piece in chain(model).astream({"topic": "comets"})]
    assert "comets" in "".join(pieces)
    assert_joined(otel, app.get_span_context().span_id, [])  # first try: no attempt spans
    [request] = otel.requests()
    assert request.attributes["gen_ai.request.stream"] is True
    served = fake.requests_for(OPENAI_MODEL)[-1]
    assert served.body["stream"] is True
    assert request.attributes["gen_ai.usage.input_tokens"] > 0


def test_router_options_and_router_are_exclusive(fake: FakeProviderServer) -> None:
    import pytest

    otel = make_otel()
    model = make_model(fake)
    with pytest.raises(ValueError, match="instrument"):
        ChatLLMRouter(router=model.llm_router, instrument=otel.settings)


def test_a_model_made_before_instrument_all_joins_the_trace(fake: FakeProviderServer) -> None:
    from llmrouter_integrations import instrument_all

    model = make_model(fake)  # no instrument=: follows the process default
    otel = make_otel()
    tracer = otel.tracer_provider.get_tracer("app")
    try:
        instrument_all(otel.settings)
        with tracer.start_as_current_span("langchain app") as app:
            answer = chain(model).invoke({"topic": "tides"})
    finally:
        instrument_all(False)
    assert "tides" in answer
    assert_joined(otel, app.get_span_context().span_id, [])
    chain(model).invoke({"topic": "untraced"})
    assert len(otel.requests()) == 1
