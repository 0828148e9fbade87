"""Hostile provider bytes (absurd usage numbers, nesting past the recursion limit, replies that
never say why they stopped) end in an error of our tree, and the router falls back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from llmrouter_integrations import Deployment, RetryPolicy, Router
from llmrouter_integrations.errors import ResponseDecodeError, RouterError
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
NO_RETRY = RetryPolicy(max_attempts=1)
DEEP = "[" * 100_000


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[OPENAI_KEY, ANTHROPIC_KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()


def deployment(fake: FakeProviderServer, provider: str, model: str) -> Deployment:
    if provider == "anthropic":
        return Deployment(
            "anthropic", model, api_key=ANTHROPIC_KEY, base_url=fake.anthropic_base_url
        )
    return Deployment("openai", model, api_key=OPENAI_KEY, base_url=fake.openai_base_url)


def one(fake: FakeProviderServer, provider: str, model: str) -> Router:
    return Router(deployments=[deployment(fake, provider, model)], retry=NO_RETRY)


def with_fallback(fake: FakeProviderServer, provider: str, model: str) -> Router:
    backup = deployment(fake, "openai", "gpt-4o")
    return Router(
        deployments=[deployment(fake, provider, model), backup],
        strategy="priority",
        retry=NO_RETRY,
    )


def openai_reply(usage: str) -> str:
    return (
        '{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,'
        '"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
        f'"usage":{usage}}}'
    )


def anthropic_reply(usage: str) -> str:
    return (
        '{"id":"m1","type":"message","role":"assistant","model":"m","content":'
        '[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,'
        f'"usage":{usage}}}'
    )


def openai_stream(usage: str) -> list[str]:
    chunk = '{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}'
    last = '{"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
    return [
        f"data: {chunk}\n\n",
        f"data: {last}\n\n",
        f'data: {{"id":"c1","model":"m","choices":[],"usage":{usage}}}\n\n',
        "data: [DONE]\n\n",
    ]


def anthropic_stream(usage: str) -> list[str]:
    def event(name: str, body: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps(body)}\n\n"

    message = {"id": "m1", "type": "message", "role": "assistant", "model": "m", "content": []}
    return [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "hi"},
            },
        ),
        f'event: message_delta\ndata: {{"type":"message_delta","delta":{{"stop_reason":'
        f'"end_turn"}},"usage":{usage}}}\n\n',
        event("message_stop", {"type": "message_stop"}),
    ]


BAD_OPENAI_USAGE = [
    '{"prompt_tokens":Infinity,"completion_tokens":1,"total_tokens":2}',
    '{"prompt_tokens":1e999,"completion_tokens":1,"total_tokens":2}',
    '{"prompt_tokens":NaN,"completion_tokens":1,"total_tokens":2}',
    '{"prompt_tokens":3,"completion_tokens":-5,"total_tokens":2}',
    '{"prompt_tokens":3,"completion_tokens":1e300,"total_tokens":2}',
    '{"prompt_tokens":3,"completion_tokens":1,"total_tokens":2,'
    '"completion_tokens_details":{"reasoning_tokens":-Infinity}}',
]
BAD_ANTHROPIC_USAGE = [
    '{"input_tokens":Infinity,"output_tokens":1}',
    '{"input_tokens":3,"output_tokens":1e999}',
    '{"input_tokens":3,"output_tokens":NaN}',
    '{"input_tokens":3,"output_tokens":1,"cache_read_input_tokens":-1}',
]
BAD_CASES = [("openai", "gpt-4o-mini", usage) for usage in BAD_OPENAI_USAGE] + [
    ("anthropic", "claude-haiku-4-5", usage) for usage in BAD_ANTHROPIC_USAGE
]


@pytest.mark.parametrize(("provider", "model", "usage"), BAD_CASES)
async def test_absurd_usage_in_a_reply_is_a_decode_error_and_falls_back(
    fake: FakeProviderServer, provider: str, model: str, usage: str
) -> None:
    body = anthropic_reply(usage) if provider == "anthropic" else openai_reply(usage)
    fake.set_behavior(model, ModelBehavior(raw_body=body))
    async with one(fake, provider, model) as router:
        with pytest.raises(RouterError) as caught:
            await router.acomplete("hi")
    assert any(isinstance(e, ResponseDecodeError) for e in _leaves(caught.value))
    async with with_fallback(fake, provider, model) as router:
        response = await router.acomplete("hi")
    assert response.deployment == "openai/gpt-4o"


@pytest.mark.parametrize(("provider", "model", "usage"), BAD_CASES)
async def test_absurd_usage_in_a_stream_is_a_decode_error_and_falls_back(
    fake: FakeProviderServer, provider: str, model: str, usage: str
) -> None:
    frames = anthropic_stream(usage) if provider == "anthropic" else openai_stream(usage)
    fake.set_behavior(model, ModelBehavior(raw_stream=list(frames)))
    async with one(fake, provider, model) as router:
        with pytest.raises(RouterError) as caught:
            async for _ in router.astream("hi"):
                pass
    assert any(isinstance(e, ResponseDecodeError) for e in _leaves(caught.value))


@pytest.mark.parametrize("where", ["reply", "stream", "error"])
@pytest.mark.parametrize(
    ("provider", "model"), [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")]
)
async def test_nesting_past_the_recursion_limit_is_our_error_and_falls_back(
    fake: FakeProviderServer, provider: str, model: str, where: str
) -> None:
    if where == "reply":
        behavior = ModelBehavior(raw_body=DEEP)
    elif where == "stream":
        behavior = ModelBehavior(raw_stream=[f"data: {DEEP}\n\n"])
    else:
        behavior = ModelBehavior(raw_body=DEEP, raw_status=500)
    fake.set_behavior(model, behavior)
    streaming = where == "stream"
    async with one(fake, provider, model) as router:
        with pytest.raises(RouterError):
            if streaming:
                async for _ in router.astream("hi"):
                    pass
            else:
                await router.acomplete("hi")
    async with with_fallback(fake, provider, model) as router:
        if streaming:
            chunks = [chunk async for chunk in router.astream("hi")]
            assert chunks[-1].deployment == "openai/gpt-4o"
        else:
            assert (await router.acomplete("hi")).deployment == "openai/gpt-4o"


def _leaves(error: BaseException) -> list[BaseException]:
    inner = getattr(error, "exceptions", None)
    if not inner:
        return [error]
    return [leaf for e in inner for leaf in _leaves(e)]


@pytest.mark.parametrize(
    ("provider", "model"), [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")]
)
async def test_an_error_event_with_empty_data_is_an_error(
    fake: FakeProviderServer, provider: str, model: str
) -> None:
    frames = anthropic_stream("{}") if provider == "anthropic" else openai_stream("{}")
    fake.set_behavior(model, ModelBehavior(raw_stream=["event: error\ndata:\n\n", *frames]))
    async with with_fallback(fake, provider, model) as router:
        chunks = [chunk async for chunk in router.astream("hi")]
    assert chunks[-1].deployment == "openai/gpt-4o"  # not the first deployment's "hi"


# -- complete means the provider said why it stopped ------------------------------------------

PAIRS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")]


@pytest.mark.parametrize(("provider", "model"), PAIRS)
async def test_a_reply_without_finish_reason_is_truncation_and_falls_back(
    fake: FakeProviderServer, provider: str, model: str
) -> None:
    fake.set_behavior(model, ModelBehavior(no_finish_reason=True))
    async with one(fake, provider, model) as router:
        with pytest.raises(RouterError) as caught:
            await router.acomplete("hi")
    (error,) = _leaves(caught.value)
    assert isinstance(error, ResponseDecodeError) and "truncated" in str(error)
    async with with_fallback(fake, provider, model) as router:
        response = await router.acomplete("hi")
    assert response.deployment == "openai/gpt-4o" and response.finish_reason == "stop"


@pytest.mark.parametrize(("provider", "model"), PAIRS)
async def test_a_stream_without_finish_reason_raises_after_its_text(
    fake: FakeProviderServer, provider: str, model: str
) -> None:
    # llama.cpp ends an interrupted stream with `data: [DONE]` and no finish_reason.
    fake.set_behavior(model, ModelBehavior(no_finish_reason=True))
    received: list[str] = []
    async with with_fallback(fake, provider, model) as router:
        with pytest.raises(ResponseDecodeError, match="truncated"):
            async for chunk in router.astream("hi there"):
                received.append(chunk.text)
                assert not chunk.is_final
    assert "".join(received) == "Echo: hi there"  # delivered, so no fallback: an error


@pytest.mark.parametrize(("provider", "model"), PAIRS)
async def test_a_stream_without_finish_reason_and_no_text_falls_back(
    fake: FakeProviderServer, provider: str, model: str
) -> None:
    fake.set_behavior(model, ModelBehavior(no_finish_reason=True, reply=""))
    async with with_fallback(fake, provider, model) as router:
        chunks = [chunk async for chunk in router.astream("hi")]
    assert chunks[-1].is_final and chunks[-1].deployment == "openai/gpt-4o"
