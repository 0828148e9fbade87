"""Reasoning through the Router against the fake providers: one vocabulary, thinking round trips,
fallback across dialects, parameters a deployment does not take."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    BadRequestError,
    Deployment,
    Message,
    Router,
)
from llmrouter_integrations.core.events import RouterEvent
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior
from llmrouter_integrations.types import ToolCall

KEY = "sk-test-0123456789abcdef"
WEATHER = {
    "name": "get_weather",
    "description": "Weather at a place",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


@pytest.fixture()
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def claude(fake: FakeProviderServer, model: str = "claude-sonnet-4-5", **kw: Any) -> Deployment:
    return Deployment("anthropic", model, api_key=KEY, base_url=fake.anthropic_base_url, **kw)


def gpt(fake: FakeProviderServer, model: str, **kw: Any) -> Deployment:
    return Deployment("openai", model, api_key=KEY, base_url=fake.openai_base_url, **kw)


def _last_body(fake: FakeProviderServer, model: str) -> dict[str, Any]:
    body = fake.requests_for(model)[-1].body
    assert isinstance(body, dict)
    return body


async def test_thinking_round_trips_over_several_tool_turns(fake: FakeProviderServer) -> None:
    fake.set_behavior("claude-sonnet-4-5", ModelBehavior(tool_mode="always"))
    messages: list[Any] = [{"role": "user", "content": "Weather in 'Paris', then 'Rome'?"}]
    async with Router([claude(fake)]) as router:
        for turn in range(3):
            response = await router.achat(messages, tools=[WEATHER], reasoning="low")
            assert response.reasoning.startswith("Reasoning about:")
            assert [b.kind for b in response.message.blocks] == ["thinking"]
            assert response.tool_calls, f"turn {turn} called no tool"
            assert response.usage.reasoning_tokens > 0
            messages.append(response.message)
            for call in response.tool_calls:
                messages.append(Message("tool", f"18C on turn {turn}", tool_call_id=call.id))
    body = _last_body(fake, "claude-sonnet-4-5")
    # The signed blocks went back byte for byte (the fake checks the signatures).
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 4096 + 2048
    replayed = [m for m in body["messages"] if m["role"] == "assistant"]
    assert len(replayed) == 2 and all(m["content"][0]["type"] == "thinking" for m in replayed)


async def test_streamed_thinking_arrives_as_reasoning_deltas_then_a_signed_block(
    fake: FakeProviderServer,
) -> None:
    async with Router([claude(fake)]) as router:
        chunks = [c async for c in router.astream("What is 2+2?", reasoning=3000)]
    reasoning = "".join(c.reasoning for c in chunks)
    blocks = [b for c in chunks for b in c.blocks]
    assert reasoning == "Reasoning about: What is 2+2?"
    assert len(blocks) == 1 and blocks[0].data["thinking"] == reasoning
    assert blocks[0].data["signature"]
    assert _last_body(fake, "claude-sonnet-4-5")["thinking"]["budget_tokens"] == 3000
    assert chunks[-1].usage is not None and chunks[-1].usage.reasoning_tokens > 0


async def test_fallback_from_openai_reasoning_to_anthropic_thinking(
    fake: FakeProviderServer,
) -> None:
    fake.set_behavior("o3-mini", ModelBehavior(permanent_error=500))
    router = Router([gpt(fake, "o3-mini"), claude(fake)], strategy="priority")
    async with router:
        response = await router.acomplete("Prove it", reasoning="low", max_tokens=500)
    assert response.deployment == "anthropic/claude-sonnet-4-5"
    assert response.reasoning == "Reasoning about: Prove it"
    sent_openai = _last_body(fake, "o3-mini")
    assert sent_openai["reasoning_effort"] == "low"
    assert sent_openai["max_completion_tokens"] == 500 and "thinking" not in sent_openai
    sent_anthropic = _last_body(fake, "claude-sonnet-4-5")
    assert sent_anthropic["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent_anthropic["max_tokens"] == 500 + 2048
    assert "reasoning_effort" not in sent_anthropic


async def test_native_spellings_are_read_into_one_vocabulary(fake: FakeProviderServer) -> None:
    async with Router([claude(fake)]) as router:
        await router.acomplete("hi", reasoning_effort="medium")
        assert _last_body(fake, "claude-sonnet-4-5")["thinking"]["budget_tokens"] == 8192
        await router.acomplete("hi", thinking={"type": "enabled", "budget_tokens": 1500})
        assert _last_body(fake, "claude-sonnet-4-5")["thinking"]["budget_tokens"] == 1500
        with pytest.raises(BadRequestError, match="reasoning_effort must be one of"):
            await router.acomplete("hi", reasoning_effort="extreme")
        with pytest.raises(BadRequestError, match="budget_tokens must be an integer"):
            await router.acomplete("hi", thinking={"type": "enabled", "budget_tokens": 10})
        with pytest.raises(BadRequestError, match="reasoning must be one of"):
            await router.acomplete("hi", reasoning="max")


async def test_reasoning_on_a_model_without_it_is_dropped_with_one_warning(
    fake: FakeProviderServer,
) -> None:
    async with Router([gpt(fake, "gpt-4o-mini")]) as router:
        with pytest.warns(UserWarning, match="reasoning was not sent to openai/gpt-4o-mini"):
            await router.acomplete("hi", reasoning="high")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await router.acomplete("hi", reasoning="high")  # the warning came once
    assert "reasoning_effort" not in _last_body(fake, "gpt-4o-mini")


async def test_strict_params_raises_and_falls_back_to_a_deployment_that_takes_it(
    fake: FakeProviderServer,
) -> None:
    router = Router(
        [gpt(fake, "gpt-4o-mini"), claude(fake)], strategy="priority", strict_params=True
    )
    async with router:
        response = await router.acomplete("hi", reasoning="low")
        assert response.deployment == "anthropic/claude-sonnet-4-5"
        assert fake.request_count("gpt-4o-mini") == 0
        with pytest.raises(AllDeploymentsFailedError) as caught:
            await router.acomplete("hi", reasoning="low", deployments=["openai/gpt-4o-mini"])
        with pytest.raises(AllDeploymentsFailedError):
            only = ["openai/gpt-4o-mini"]
            [c async for c in router.astream("hi", reasoning="low", deployments=only)]
    assert "does not take reasoning" in str(caught.value)
    assert fake.request_count("gpt-4o-mini") == 0


async def test_sampling_options_a_thinking_call_refuses_are_dropped(
    fake: FakeProviderServer,
) -> None:
    async with Router([claude(fake), gpt(fake, "gpt-5-mini")], strategy="priority") as router:
        with pytest.warns(UserWarning, match="temperature was not sent"):
            await router.acomplete("hi", reasoning="low", temperature=0.2, top_k=5)
        body = _last_body(fake, "claude-sonnet-4-5")
        assert "temperature" not in body and "top_k" not in body
        with pytest.warns(UserWarning, match="temperature was not sent to openai/gpt-5-mini"):
            await router.acomplete(
                "hi", reasoning="low", temperature=0.2, deployments=["openai/gpt-5-mini"]
            )
        assert "temperature" not in _last_body(fake, "gpt-5-mini")


async def test_tool_turn_from_another_provider_runs_without_thinking_and_says_so(
    fake: FakeProviderServer,
) -> None:
    events: list[RouterEvent] = []
    history: list[Any] = [
        {"role": "user", "content": "Weather in 'Paris'?"},
        Message("assistant", None, tool_calls=[ToolCall("call_1", "get_weather", {"location": "Paris"})]),
        Message("tool", "18C", tool_call_id="call_1"),
    ]  # fmt: skip
    async with Router([claude(fake)], on_event=events.append) as router:
        response = await router.achat(history, tools=[WEATHER], reasoning="low")
    assert response.text == "The tool returned: 18C"
    assert "thinking" not in _last_body(fake, "claude-sonnet-4-5")
    notes = [e for e in events if e.type == "reasoning_disabled"]
    assert notes and notes[0].deployment == "anthropic/claude-sonnet-4-5"
    assert "another provider" in notes[0].data["reason"]


async def test_anthropic_blocks_are_dropped_on_fallback_to_openai(fake: FakeProviderServer) -> None:
    fake.set_behavior("claude-sonnet-4-5", ModelBehavior(tool_mode="always"))
    messages: list[Any] = [{"role": "user", "content": "Weather in 'Paris'?"}]
    async with Router([claude(fake), gpt(fake, "o3-mini")], strategy="priority") as router:
        first = await router.achat(messages, tools=[WEATHER], reasoning="low")
        messages += [first.message, Message("tool", "18C", tool_call_id=first.tool_calls[0].id)]
        fake.set_behavior("claude-sonnet-4-5", ModelBehavior(permanent_error=529))
        second = await router.achat(messages, tools=[WEATHER], reasoning="low")
    assert second.deployment == "openai/o3-mini"
    sent = _last_body(fake, "o3-mini")
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert "thinking" not in str(assistant) and assistant["tool_calls"]
    assert assistant["content"] is None  # only tool calls: no empty text, no foreign blocks


@pytest.mark.parametrize(
    ("provider", "model", "field", "base"),
    [
        ("deepseek", "deepseek-reasoner", None, "openai_base_url"),
        ("groq", "openai/gpt-oss-20b", "reasoning_effort", "groq_base_url"),
        ("openrouter", "openai/gpt-oss-20b", "reasoning", "openrouter_base_url"),
    ],
)
async def test_openai_compatible_reasoning_text_and_fields(
    fake: FakeProviderServer, provider: str, model: str, field: str | None, base: str
) -> None:
    deployment = Deployment(provider, model, api_key=KEY, base_url=getattr(fake, base))
    async with Router([deployment]) as router:
        response = await router.acomplete("Why?", reasoning="high")
        streamed = [c async for c in router.astream("Why?", reasoning="high")]
    assert response.reasoning == "Reasoning about: Why?"
    assert response.usage.reasoning_tokens > 0
    assert "".join(c.reasoning for c in streamed) == "Reasoning about: Why?"
    body = _last_body(fake, model)
    if field == "reasoning":
        assert body["reasoning"] == {"effort": "high"}
    elif field is not None:
        assert body[field] == "high"
    else:
        assert "reasoning_effort" not in body


async def test_cached_answers_keep_reasoning_and_signed_blocks(fake: FakeProviderServer) -> None:
    async with Router([claude(fake)], cache="memory") as router:
        streamed = [c async for c in router.astream("What is 2+2?", reasoning="low")]
        replayed = [c async for c in router.astream("What is 2+2?", reasoning="low")]
        whole = await router.acomplete("What is 2+2?", reasoning="low")
        again = await router.acomplete("What is 2+2?", reasoning="low")
    # One upstream call: the streamed answer, blocks included, serves all four.
    assert fake.request_count("claude-sonnet-4-5") == 1
    blocks = [b for c in streamed for b in c.blocks]
    assert blocks and [b for c in replayed for b in c.blocks] == blocks
    assert "".join(c.reasoning for c in replayed) == "Reasoning about: What is 2+2?"
    assert whole.cached and whole.message.blocks == blocks
    assert again.message.blocks == blocks and again.text == whole.text
    assert whole.reasoning == "Reasoning about: What is 2+2?"
