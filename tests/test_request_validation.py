"""Requests are checked before anything is sent: an invalid option is a BadRequestError that
names the field; the provider never sees it and no breaker counts it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llmrouter_integrations import Deployment, Router
from llmrouter_integrations.errors import BadRequestError
from llmrouter_integrations.testing import FakeProviderServer

KEY = "sk-test-validation-0123456789"
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture
def router(fake: FakeProviderServer) -> Iterator[Router]:
    with Router(
        deployments=[
            Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url),
            Deployment(
                "anthropic", "claude-haiku-4-5", api_key=KEY, base_url=fake.anthropic_base_url
            ),
        ],
        strategy="priority",
    ) as made:
        yield made


HI = [{"role": "user", "content": "hi"}]
CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("max_tokens", HI, {"max_tokens": -1}),
    ("max_tokens", HI, {"max_tokens": 0}),
    ("max_tokens", HI, {"max_tokens": True}),
    ("max_tokens", HI, {"max_tokens": "100"}),
    ("temperature", HI, {"temperature": 3}),
    ("temperature", HI, {"temperature": float("nan")}),
    ("temperature", HI, {"temperature": -0.5}),
    ("top_p", HI, {"top_p": 1.5}),
    ("seed", HI, {"seed": "forty-two"}),
    ("stop", HI, {"stop": [1, 2]}),
    ("timeout", HI, {"timeout": -1}),
    ("max_cost_usd", HI, {"max_cost_usd": -0.01}),
    ("messages", [], {}),
    ("messages", [{"role": "wizard", "content": "hi"}], {}),
    ("messages", [{"content": "no role"}], {}),
    ("tools[0]", HI, {"tools": [{"type": "function", "function": {"parameters": {}}}]}),
    ("tools[0].name", HI, {"tools": [{"name": "has spaces", "input_schema": {"type": "object"}}]}),
    ("tool_choice", HI, {"tools": [WEATHER], "tool_choice": "stocks"}),
]


@pytest.mark.parametrize(("field", "messages", "options"), CASES, ids=lambda v: str(v)[:30])
async def test_an_invalid_request_is_refused_before_sending(
    router: Router, fake: FakeProviderServer, field: str, messages: Any, options: dict[str, Any]
) -> None:
    before = fake.request_count()
    with pytest.raises(BadRequestError) as caught:
        await router.achat(messages, **options)
    error = caught.value
    assert error.param == field  # type: ignore[attr-defined]
    assert field.split("[")[0] in str(error)
    assert fake.request_count() == before  # never sent, so never billed
    with pytest.raises(BadRequestError):
        router.chat(messages, **options)  # the sync path checks the same way
    with pytest.raises(BadRequestError):
        async for _ in router.astream(messages, **options):
            pass
    assert all(h.circuit == "closed" and h.error_rate == 0 for h in router.health().values())


async def test_an_unknown_role_error_lists_the_valid_roles(router: Router) -> None:
    with pytest.raises(BadRequestError, match="system, developer, user, assistant, tool"):
        await router.achat([{"role": "wizard", "content": "hi"}])


@pytest.mark.parametrize(
    "options",
    [
        {"max_tokens": 1},
        {"temperature": 0},
        {"temperature": 2.0},
        {"top_p": 0},
        {"top_p": 1},
        {"seed": 0},
        {"stop": "END"},
        {"tools": [WEATHER], "tool_choice": "weather"},
        {"tools": [WEATHER], "tool_choice": "required"},
    ],
    ids=str,
)
async def test_valid_edge_values_are_sent(router: Router, options: dict[str, Any]) -> None:
    response = await router.achat(HI, **options)
    assert response.deployment == "openai/gpt-4o-mini"
