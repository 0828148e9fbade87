"""Helpers for the LlamaIndex tests: deployments on the fake server, routers, event capture."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index_instrumentation import get_dispatcher
from pydantic import Field

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.router import Router
from llmrouter_integrations.testing import FakeProviderServer
from llmrouter_integrations.types import Deployment

OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"
# USD per million tokens, so made-up test model names still have a cost.
TEST_PRICE = {"input": 0.15, "output": 0.6}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def openai_deployment(
    fake: FakeProviderServer, model: str = "gpt-4o-mini", **fields: Any
) -> Deployment:
    fields.setdefault("price", TEST_PRICE)
    return Deployment(
        provider="openai", model=model, api_key=OPENAI_KEY, base_url=fake.openai_base_url, **fields
    )


def anthropic_deployment(
    fake: FakeProviderServer, model: str = "claude-haiku-4-5", **fields: Any
) -> Deployment:
    fields.setdefault("price", TEST_PRICE)
    return Deployment(
        provider="anthropic",
        model=model,
        api_key=ANTHROPIC_KEY,
        base_url=fake.anthropic_base_url,
        **fields,
    )


def make_router(*deployments: Deployment, **kwargs: Any) -> Router:
    """A router whose retry backoffs take no real time."""
    kwargs.setdefault("clock", ManualClock())
    return Router(strategy="priority", deployments=list(deployments), **kwargs)


class EventRecorder(BaseEventHandler):
    """Keeps every instrumentation event dispatched while installed."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)

    def named(self, *class_names: str) -> list[BaseEvent]:
        return [e for e in self.events if e.class_name() in class_names]

    def count(self, class_name: str) -> int:
        return len(self.named(class_name))


@pytest.fixture
def recorder() -> Iterator[EventRecorder]:
    root = get_dispatcher()
    handler = EventRecorder()
    root.add_event_handler(handler)
    try:
        yield handler
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not handler]
