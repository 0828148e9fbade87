"""Router events reach LlamaIndex instrumentation once per call; RouterCostEventHandler totals cost."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index_instrumentation import get_dispatcher
from llamaindex_support import EventRecorder, anthropic_deployment, make_router, openai_deployment

from llmrouter_integrations.core.events import EventHub, RouterEvent
from llmrouter_integrations.errors import RouterError
from llmrouter_integrations.llama_index import (
    LLMRouter,
    RouterBudgetAlertEvent,
    RouterCostEvent,
    RouterCostEventHandler,
    RouterFallbackEvent,
    RouterInstrumentationEvent,
    RouterRetryEvent,
)
from llmrouter_integrations.llama_index.events import (
    CallEventBuffer,
    router_events_to_instrumentation,
)
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior


def test_router_event_types_map_to_their_instrumentation_classes(recorder: EventRecorder) -> None:
    hub = EventHub()
    with router_events_to_instrumentation(CallEventBuffer(), span_id="span-1"):
        hub.emit(RouterEvent("retry", "a", {"attempt": 2}))
        hub.emit(RouterEvent("fallback", "a", {"to": "b"}))
        hub.emit(RouterEvent("budget_alert", None, {"spent_usd": Decimal("4.5"), "limit_usd": 5}))
        hub.emit(RouterEvent("cache_hit", "b", {}))
        hub.emit(RouterEvent("request_end", "b", {}))  # replaced by RouterCostEvent
    hub.emit(RouterEvent("retry", "a", {}))  # outside any call: not ours to dispatch
    events = [e for e in recorder.events if isinstance(e, RouterInstrumentationEvent)]
    assert [type(e) for e in events] == [
        RouterRetryEvent,
        RouterFallbackEvent,
        RouterBudgetAlertEvent,
        RouterInstrumentationEvent,
    ]
    assert events[2].data == {"spent_usd": 4.5, "limit_usd": 5}
    assert events[3].router_event_type == "cache_hit"
    assert all(e.span_id == "span-1" for e in events)
    json.dumps([e.model_dump(mode="json") for e in events])


@pytest.fixture
def flaky(fake: FakeProviderServer) -> LLMRouter:
    fake.set_behavior("events-primary", ModelBehavior(permanent_error=500))
    return LLMRouter(
        router=make_router(
            openai_deployment(fake, model="events-primary", name="primary"),
            anthropic_deployment(fake, name="backup"),
        )
    )


async def test_concurrent_calls_each_report_only_their_own_events(
    flaky: LLMRouter, recorder: EventRecorder
) -> None:
    messages = [ChatMessage(role="user", content="hi")]
    try:
        responses = await asyncio.gather(*(flaky.achat(messages) for _ in range(3)))
    finally:
        await flaky.router.aclose()
    assert all(r.additional_kwargs["deployment"] == "backup" for r in responses)
    # One fallback per call: a listener leaking into another call would double them.
    assert recorder.count("RouterFallbackEvent") == 3
    assert recorder.count("RouterRetryEvent") == 3 * 2  # 3 attempts on the primary each
    starts = {e.span_id for e in recorder.named("LLMChatStartEvent")}
    assert {e.span_id for e in recorder.named("RouterFallbackEvent")} == starts


def test_sync_stream_reports_fallback_and_cost(flaky: LLMRouter, recorder: EventRecorder) -> None:
    try:
        chunks = list(flaky.stream_chat([ChatMessage(role="user", content="stream")]))
    finally:
        flaky.router.close()
    assert chunks[-1].additional_kwargs["attempts"][0]["deployment"] == "primary"
    (fallback,) = recorder.named("RouterFallbackEvent")
    assert fallback.data["to"] == "backup"
    (cost,) = recorder.named("RouterCostEvent")
    assert cost.deployment == "backup"


def test_failed_call_still_reports_what_the_router_tried(
    fake: FakeProviderServer, recorder: EventRecorder
) -> None:
    fake.set_behavior("events-down", ModelBehavior(permanent_error=503))
    router = make_router(openai_deployment(fake, model="events-down", name="only"))
    llm = LLMRouter(router=router)
    try:
        with pytest.raises(RouterError):
            llm.chat([ChatMessage(role="user", content="hi")])
    finally:
        router.close()
    assert recorder.count("RouterRetryEvent") == 2
    assert recorder.count("RouterCostEvent") == 0
    assert [e.class_name() for e in recorder.events] == [
        "LLMChatStartEvent",
        "RouterRetryEvent",
        "RouterRetryEvent",
        "SpanDropEvent",
    ]


def test_cost_handler_totals_cost_per_provider(fake: FakeProviderServer) -> None:
    router = make_router(openai_deployment(fake), anthropic_deployment(fake))
    llm = LLMRouter(router=router)
    costs = RouterCostEventHandler()
    root = get_dispatcher()
    root.add_event_handler(costs)
    try:
        by_openai = llm.chat([ChatMessage(role="user", content="one")])
        by_anthropic = llm.chat(
            [ChatMessage(role="user", content="two")], deployments=["anthropic/claude-haiku-4-5"]
        )
        by_anthropic_2 = llm.complete("three", deployments=["anthropic/claude-haiku-4-5"])
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not costs]
        router.close()
    expected_openai = by_openai.additional_kwargs["cost"]
    expected_anthropic = (
        by_anthropic.additional_kwargs["cost"] + by_anthropic_2.additional_kwargs["cost"]
    )
    assert expected_openai > 0 and expected_anthropic > 0
    assert costs.by_provider() == pytest.approx(
        {"openai": expected_openai, "anthropic": expected_anthropic}
    )
    assert costs.total_usd == pytest.approx(expected_openai + expected_anthropic)
    assert costs.requests == 3 and costs.unpriced_requests == 0
    assert costs.by_deployment()["openai/gpt-4o-mini"] == pytest.approx(expected_openai)
    assert isinstance(RouterCostEvent(router_event_type="cost"), RouterInstrumentationEvent)


async def test_budget_alerts_and_refusals_through_a_real_budget(
    fake: FakeProviderServer, recorder: EventRecorder
) -> None:
    from llmrouter_integrations import Budget, BudgetExceededError

    fake.set_behavior("budget-model", ModelBehavior(usage={"input": 1000, "output": 1000}))
    # TEST_PRICE: $0.15 + $0.60 per million -> each answer settles at $0.00075;
    # max_tokens=1000 reserves a bit more (the prompt estimate) before sending.
    llm = LLMRouter(
        router=make_router(
            openai_deployment(fake, model="budget-model"),
            budgets=[Budget(0.002, name="tiny")],
        ),
        max_tokens=1000,
    )
    await llm.achat([ChatMessage(role="user", content="one")])
    await llm.achat([ChatMessage(role="user", content="two")])
    with pytest.raises(BudgetExceededError):
        await llm.achat([ChatMessage(role="user", content="three")])
    alerts = [e for e in recorder.events if isinstance(e, RouterBudgetAlertEvent)]
    assert [e.data["threshold"] for e in alerts] == [0.5]
    assert alerts[0].data["budget"] == "tiny"
    assert fake.request_count("budget-model") == 2  # the refused call sent nothing
    await llm.aclose()
