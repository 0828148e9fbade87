"""The eight LLM methods agree with each other and with the router, for both wire formats.

Each method must give the router's text and the provider's usage, fire exactly one
instrumentation start and end event (complete* must not go through the public chat*),
and send one cost event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.rate_limiter import BaseRateLimiter
from llamaindex_support import EventRecorder, anthropic_deployment, make_router, openai_deployment

from llmrouter_integrations.llama_index import LLMRouter, RouterCostEvent
from llmrouter_integrations.testing import FakeProviderServer
from llmrouter_integrations.types import Deployment

PROMPT = "Say hello to the conformance suite"
METHODS = [
    "chat",
    "achat",
    "stream_chat",
    "astream_chat",
    "complete",
    "acomplete",
    "stream_complete",
    "astream_complete",
]
FORMATS: dict[str, Callable[[FakeProviderServer], Deployment]] = {
    "openai": openai_deployment,
    "anthropic": anthropic_deployment,
}


async def call(llm: LLMRouter, method: str) -> ChatResponse | CompletionResponse:
    """Run one method to completion; for streams, check the deltas add up and return the last."""
    messages = [ChatMessage(role="user", content=PROMPT)]
    argument: Any = PROMPT if "complete" in method else messages
    result = getattr(llm, method)(argument)
    if method.startswith("a"):
        result = await result
    if "stream" not in method:
        return result  # type: ignore[no-any-return]
    responses = []
    if method.startswith("a"):
        async for response in result:
            responses.append(response)
    else:
        responses.extend(result)
    assert len(responses) >= 2, "a stream should arrive in several pieces"
    last = responses[-1]
    full_text = last.text if isinstance(last, CompletionResponse) else last.message.content
    assert "".join(r.delta or "" for r in responses) == full_text
    assert all("usage" not in (r.raw or {}) for r in responses[:-1])
    return last


def text_of(response: ChatResponse | CompletionResponse) -> str:
    return (
        response.text
        if isinstance(response, CompletionResponse)
        else response.message.content or ""
    )


@pytest.mark.parametrize("wire_format", sorted(FORMATS))
@pytest.mark.parametrize("method", METHODS)
async def test_method_matches_router(
    fake: FakeProviderServer, recorder: EventRecorder, wire_format: str, method: str
) -> None:
    router = make_router(FORMATS[wire_format](fake))
    llm = LLMRouter(router=router)
    try:
        expected = await router.achat(PROMPT)
        recorder.events.clear()

        response = await call(llm, method)

        assert text_of(response) == expected.text
        assert expected.text.startswith("Echo: ")
        usage = response.raw["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
            expected.usage.input_tokens,
            expected.usage.output_tokens,
        )
        assert response.additional_kwargs["prompt_tokens"] == expected.usage.input_tokens
        assert response.additional_kwargs["deployment"] == expected.deployment
        assert response.additional_kwargs["provider"] == expected.provider
        assert response.raw["model"] == expected.model
        kind = "Completion" if "complete" in method else "Chat"
        assert recorder.count(f"LLM{kind}StartEvent") == 1
        assert recorder.count(f"LLM{kind}EndEvent") == 1
        other = "Chat" if kind == "Completion" else "Completion"
        assert recorder.count(f"LLM{other}StartEvent") == 0
        (cost,) = [e for e in recorder.events if isinstance(e, RouterCostEvent)]
        assert cost.deployment == expected.deployment
        assert cost.usage["prompt_tokens"] == expected.usage.input_tokens
    finally:
        await router.aclose()


class CountingLimiter(BaseRateLimiter):
    """A LlamaIndex rate limiter that only counts how often it is asked."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, num_tokens: int = 0) -> None:
        self.acquired += 1

    async def async_acquire(self, num_tokens: int = 0) -> None:
        self.acquired += 1


@pytest.mark.parametrize("method", METHODS)
async def test_rate_limiter_is_acquired_once_per_call(
    fake: FakeProviderServer, method: str
) -> None:
    limiter = CountingLimiter()
    router = make_router(openai_deployment(fake))
    try:
        await call(LLMRouter(router=router, rate_limiter=limiter), method)
    finally:
        await router.aclose()
    assert limiter.acquired == 1


def test_metadata_is_safe_for_every_deployment(fake: FakeProviderServer) -> None:
    router = make_router(
        openai_deployment(fake, context_window=128_000),
        anthropic_deployment(fake, context_window=200_000),
        openai_deployment(fake, model="small-local", name="small", context_window=8_192),
    )
    llm = LLMRouter(router=router, max_tokens=512)
    metadata = llm.metadata
    assert isinstance(llm, FunctionCallingLLM)
    assert metadata.context_window == 8_192
    assert metadata.num_output == 512
    assert metadata.is_chat_model is True
    assert metadata.is_function_calling_model is True
    assert "gpt-4o-mini" in metadata.model_name and "small" in metadata.model_name


def test_unknown_window_counts_as_the_conservative_default(fake: FakeProviderServer) -> None:
    local = Deployment(provider="ollama", model="llama3.2", base_url=fake.openai_base_url)
    router = make_router(openai_deployment(fake), local)
    assert LLMRouter(router=router).metadata.context_window == 3_900
    assert LLMRouter(router=router, context_window=32_000).metadata.context_window == 32_000
    only_local = LLMRouter(router=make_router(local)).metadata
    assert (only_local.context_window, only_local.num_output) == (3_900, 256)


def test_one_deployment_without_tools_turns_function_calling_off(fake: FakeProviderServer) -> None:
    router = make_router(
        openai_deployment(fake),
        openai_deployment(fake, model="llama3.2", name="local", capabilities={"tools": False}),
    )
    assert LLMRouter(router=router).metadata.is_function_calling_model is False


def test_payload_and_repr_never_show_keys(fake: FakeProviderServer) -> None:
    llm = LLMRouter(router=make_router(openai_deployment(fake), anthropic_deployment(fake)))
    shown = f"{llm.to_payload()} {llm!r} {llm.model_dump_json()}"
    assert "sk-test" not in shown and "sk-ant" not in shown


def test_built_from_router_kwargs_and_closes_its_router(fake: FakeProviderServer) -> None:
    llm = LLMRouter(
        strategy="priority", deployments=[openai_deployment(fake)], max_tokens=64, tags=["docs"]
    )
    response = llm.complete("hello from kwargs")
    assert response.text == "Echo: hello from kwargs"
    sent = fake.requests[-1].body
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 64
    llm.close()
    with pytest.raises(TypeError, match="either router= or Router arguments"):
        LLMRouter(router=llm.router, strategy="priority")


class SpyRouter:
    """Wraps a router and keeps every request it builds."""

    def __init__(self, router: Any) -> None:
        self.requests: list[Any] = []
        original = router.build_request

        def build_request(messages: Any, **options: Any) -> Any:
            request = original(messages, **options)
            self.requests.append(request)
            return request

        router.build_request = build_request


async def test_user_and_tags_reach_the_router_and_framework_kwargs_do_not(
    fake: FakeProviderServer,
) -> None:
    router = make_router(openai_deployment(fake))
    spy = SpyRouter(router)
    llm = LLMRouter(router=router, tags=["team-a"], user="default-user")
    try:
        await llm.achat(
            [ChatMessage(role="user", content="hi")], user="alice", tags=["search"], formatted=True
        )
        llm.complete("hi", formatted=True)
        per_call, defaults = spy.requests
        assert per_call.user == "alice"
        assert per_call.tags == ("team-a", "search")
        assert per_call.extra_body == {}
        assert (defaults.user, defaults.tags) == ("default-user", ("team-a",))
        assert fake.requests[-2].body["user"] == "alice"
    finally:
        await router.aclose()
