"""Regressions from the issue-12 review of routing policies, through a real Router and the fake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from llmrouter_integrations import (
    Deployment,
    ProviderTimeoutError,
    RequestTooLargeError,
    RetryPolicy,
    Router,
    SyncCallInEventLoopError,
)
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

KEY = "sk-test-policy-regressions-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    for model in ("gpt-4o-mini", "gpt-4o", "llama-3.1-8b-instant"):
        fake.set_behavior(model, ModelBehavior())


def openai(fake: FakeProviderServer, model: str = "gpt-4o-mini") -> Deployment:
    return Deployment("openai", model, api_key=KEY, base_url=fake.openai_base_url)


def groq(fake: FakeProviderServer) -> Deployment:
    return Deployment("groq", "llama-3.1-8b-instant", api_key=KEY, base_url=fake.groq_base_url)


@pytest.mark.parametrize("first", ["openai", "groq"])
async def test_a_request_over_the_whole_tpm_allowance_falls_back_without_tripping_the_breaker(
    fake: FakeProviderServer, first: str
) -> None:
    small_tpm = groq(fake) if first == "groq" else openai(fake, "gpt-4o")
    fake.set_behavior(small_tpm.model, ModelBehavior(tokens_per_minute=2_000))
    async with Router(
        strategy="priority",
        deployments=[small_tpm, openai(fake)],
        retry=RetryPolicy(max_attempts=3),
    ) as router:
        big = await router.acomplete("summarise this", max_tokens=5_000)
        assert big.deployment == "openai/gpt-4o-mini"
        assert [type(a.error) for a in big.attempts] == [RequestTooLargeError]
        assert "Requested" in str(big.attempts[0].error)
        assert fake.request_count(small_tpm.model) == 1  # not retried where it cannot fit
        # The deployment is still in rotation for requests that fit its allowance.
        assert router.health()[small_tpm.key].circuit == "closed"
        small = await router.acomplete("hi", max_tokens=50)
        assert small.deployment == small_tpm.key
        # The provider's known limit is smaller than the request: no waiting for it to fit.
        with pytest.raises(RequestTooLargeError):
            await router.acomplete("big", max_tokens=5_000, deployments=[small_tpm.key])


async def test_a_cache_follower_does_not_inherit_its_leaders_timeout(
    fake: FakeProviderServer,
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.5))
    async with Router(strategy="priority", deployments=[openai(fake)], cache="memory") as router:
        leader = asyncio.ensure_future(router.acomplete("same question", timeout=0.2))
        await asyncio.sleep(0.05)  # the leader's call is on the wire
        follower = asyncio.ensure_future(router.acomplete("same question", timeout=10))
        with pytest.raises(ProviderTimeoutError):
            await leader
        answer = await follower
    assert answer.text == "Echo: same question" and not answer.cached
    assert fake.request_count("gpt-4o-mini") == 2  # the follower made its own call


async def test_a_sync_call_that_would_wait_on_its_own_threads_loop_raises(
    fake: FakeProviderServer,
) -> None:
    from llmrouter_integrations.langchain import ChatLLMRouter

    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.4))
    async with Router(strategy="priority", deployments=[openai(fake)], cache="memory") as router:
        # An identical request is in flight on this thread's loop, which a sync call blocks.
        in_flight = asyncio.ensure_future(router.acomplete("same question"))
        await asyncio.sleep(0.1)
        # Before the fix this waited on the blocked loop (here until its 3 s timeout).
        with pytest.raises(SyncCallInEventLoopError, match="acomplete"):
            router.complete("same question", timeout=3)
        assert (await in_flight).text == "Echo: same question"
        # Without anything to wait on, a sync call from a running loop works (Jupyter).
        assert router.complete("another question").text == "Echo: another question"
    model = ChatLLMRouter(strategy="priority", deployments=[openai(fake)], cache="memory")
    try:
        in_flight_lc = asyncio.ensure_future(model.ainvoke("lc question"))
        await asyncio.sleep(0.1)
        with pytest.raises(SyncCallInEventLoopError, match="ainvoke"):
            model.invoke("lc question", timeout=3)
        assert "lc question" in str((await in_flight_lc).content)
    finally:
        await model.aclose()


@pytest.mark.parametrize(
    ("provider", "server", "sent"),
    [("openai_compatible", "llama.cpp", ""), ("ollama", "ollama", ""), ("openai", None, None)],
)
async def test_a_tool_loop_works_on_servers_that_refuse_null_content(
    fake: FakeProviderServer, provider: str, server: Any, sent: str | None
) -> None:
    fake.set_behavior("local-model", ModelBehavior(null_content_error=server))
    local = Deployment(
        provider,
        "local-model",
        api_key=KEY,
        base_url=fake.openai_base_url,
        price={"input": 1, "output": 1},
    )
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    messages: list[Any] = [{"role": "user", "content": "add 2 and 3"}]
    async with Router(deployments=[local], retry=RetryPolicy(max_attempts=1)) as router:
        for _ in range(2):  # call, tool result, call again, tool result...
            reply = await router.achat(messages, tools=[tool], tool_choice="required")
            assert reply.tool_calls and reply.message.content is None
            messages += [
                reply.message,
                {"role": "tool", "tool_call_id": reply.tool_calls[0].id, "content": "5"},
            ]
    turns = [r.body["messages"][1] for r in fake.requests[1:]]
    assert [t["role"] for t in turns] == ["assistant"] and turns[0]["content"] == sent
