"""The Router end to end over real loopback sockets: answers, fallback, retries, config."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    APILoader,
    ConfigurationError,
    Deployment,
    ManualClock,
    OverloadedError,
    ProviderConnectionError,
    RateLimitError,
    RetryPolicy,
    Router,
    RouterEvent,
)
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
FAST_RETRY = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, jitter=0)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[OPENAI_KEY, ANTHROPIC_KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior())
    fake.set_behavior("claude-haiku-4-5", ModelBehavior())


def two(fake: FakeProviderServer, **kwargs: object) -> Router:
    kwargs.setdefault("retry", FAST_RETRY)
    return Router(
        strategy="priority",
        deployments=[
            Deployment("openai", "gpt-4o-mini", api_key=OPENAI_KEY, base_url=fake.openai_base_url),
            Deployment(
                "anthropic",
                "claude-haiku-4-5",
                api_key=ANTHROPIC_KEY,
                base_url=fake.anthropic_base_url,
            ),
        ],
        **kwargs,  # type: ignore[arg-type]
    )


async def test_answer_carries_usage_cost_and_origin(fake: FakeProviderServer) -> None:
    async with two(fake) as router:
        response = await router.acomplete("What is the capital of France?", max_tokens=50)
    assert "What is the capital of France?" in response.text
    assert response.deployment == "openai/gpt-4o-mini" and response.provider == "openai"
    assert response.model.startswith("gpt-4o-mini")
    assert response.finish_reason == "stop"
    served = fake.requests_for("gpt-4o-mini")[-1]
    assert served.body["messages"][-1]["content"] == "What is the capital of France?"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.cost is not None and response.cost > 0
    assert response.latency_s > 0 and response.attempts == []


async def test_anthropic_dialect_end_to_end(fake: FakeProviderServer) -> None:
    async with two(fake) as router:
        response = await router.achat(
            [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
            deployments=["anthropic/claude-haiku-4-5"],
            max_tokens=20,
        )
        chunks = [
            c async for c in router.astream("stream me", deployments=["anthropic/claude-haiku-4-5"])
        ]
    assert response.provider == "anthropic" and "hi" in response.text
    sent = fake.requests_for("claude-haiku-4-5")[0].body
    assert sent["system"] == "Be terse." and sent["max_tokens"] == 20
    assert "".join(c.text for c in chunks) == "Echo: stream me"
    final = chunks[-1]
    assert final.is_final and final.usage is not None and final.usage.output_tokens > 0
    assert final.cost is not None and final.ttft_s is not None


async def test_tools_round_trip(fake: FakeProviderServer) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    async with two(fake) as router:
        for deployment in ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"):
            response = await router.achat(
                "What is the weather in Paris?", tools=[weather], deployments=[deployment]
            )
            assert response.finish_reason == "tool_calls", deployment
            (call,) = response.tool_calls
            assert call.name == "get_weather" and isinstance(call.arguments["city"], str)
            follow_up = await router.achat(
                [
                    {"role": "user", "content": "What is the weather in Paris?"},
                    response.message,
                    {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
                ],
                tools=[weather],
                deployments=[deployment],
            )
            assert "18 C and sunny" in follow_up.text


async def test_falls_back_when_first_provider_is_down(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=503))
    events: list[RouterEvent] = []
    async with two(fake, on_event=events.append) as router:
        response = await router.acomplete("hello")
    assert response.deployment == "anthropic/claude-haiku-4-5"
    assert [a.deployment for a in response.attempts] == ["openai/gpt-4o-mini"]
    assert isinstance(response.attempts[0].error, OverloadedError)
    assert len(fake.requests_for("gpt-4o-mini")) == 2  # first try + one retry
    assert [e.type for e in events] == ["retry", "fallback"]


async def test_bad_key_falls_back_and_never_leaks(fake: FakeProviderServer) -> None:
    wrong = "sk-wrong-key-do-not-print-me-123456"
    router = Router(
        strategy="priority",
        deployments=[
            Deployment("openai", "gpt-4o-mini", api_key=wrong, base_url=fake.openai_base_url),
            Deployment(
                "anthropic",
                "claude-haiku-4-5",
                api_key=ANTHROPIC_KEY,
                base_url=fake.anthropic_base_url,
            ),
        ],
        retry=FAST_RETRY,
    )
    async with router:
        response = await router.acomplete("hello")
    assert response.deployment == "anthropic/claude-haiku-4-5"
    (attempt,) = response.attempts
    assert type(attempt.error).__name__ == "AuthenticationError"
    # one try only: a bad key is not retried
    assert len(fake.requests_for("gpt-4o-mini")) == 1
    for text in (str(attempt.error), repr(attempt.error), repr(router), repr(router.deployments)):
        assert wrong not in text and wrong[-12:] not in text


async def test_all_failed_lists_attempts_with_provider_messages(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500, error_message="db on fire"))
    fake.set_behavior("claude-haiku-4-5", ModelBehavior(permanent_error=529))
    async with two(fake) as router:
        with pytest.raises(AllDeploymentsFailedError) as caught:
            await router.acomplete("hello")
    failure = caught.value
    assert [a.deployment for a in failure.attempts] == [
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
    ]
    assert "db on fire" in str(failure)
    assert isinstance(failure.exceptions[1], OverloadedError)


async def test_invalid_request_is_not_retried_or_rerouted(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=400, error_message="bad 'stop'"))
    async with two(fake) as router:
        with pytest.raises(Exception, match="bad 'stop'") as caught:
            await router.acomplete("hello")
    assert type(caught.value).__name__ == "BadRequestError"
    assert fake.request_count("claude-haiku-4-5") == 0 and fake.request_count("gpt-4o-mini") == 1


async def test_retry_after_from_the_provider_sets_the_wait(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[429], retry_after=2.5))
    clock = ManualClock()
    async with two(fake, clock=clock, retry=RetryPolicy(max_attempts=3)) as router:
        response = await router.acomplete("hello")
    assert response.deployment == "openai/gpt-4o-mini"
    assert clock.sleeps == [2.5]


async def test_overall_timeout_covers_a_hanging_provider(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(hang=True))
    fake.set_behavior("claude-haiku-4-5", ModelBehavior(hang=True))
    async with two(fake, timeout=0.3) as router:
        started = asyncio.get_running_loop().time()
        with pytest.raises(AllDeploymentsFailedError):
            await router.acomplete("hello")
        assert asyncio.get_running_loop().time() - started < 2.0


async def test_per_deployment_timeout_then_fallback(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(hang=True))
    router = Router(
        strategy="priority",
        deployments=[
            Deployment(
                "openai",
                "gpt-4o-mini",
                api_key=OPENAI_KEY,
                base_url=fake.openai_base_url,
                timeout=0.2,
            ),
            Deployment(
                "anthropic",
                "claude-haiku-4-5",
                api_key=ANTHROPIC_KEY,
                base_url=fake.anthropic_base_url,
            ),
        ],
        retry=RetryPolicy(max_attempts=1),
    )
    async with router:
        response = await router.acomplete("hello")
    assert response.deployment == "anthropic/claude-haiku-4-5"
    assert type(response.attempts[0].error).__name__ == "ProviderTimeoutError"


async def test_stream_dropped_midway_raises_not_truncates(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(drop_after_chunks=2, chunk_size=3))
    received: list[str] = []
    async with two(fake) as router:
        with pytest.raises(ProviderConnectionError):
            async for chunk in router.astream("a fairly long prompt to stream back"):
                received.append(chunk.text)
                assert not chunk.is_final
    assert received  # content arrived before the break, and the break was raised
    assert fake.request_count("claude-haiku-4-5") == 0


async def test_stream_falls_back_before_first_chunk(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    async with two(fake) as router:
        chunks = [c async for c in router.astream("hello")]
    assert chunks[-1].deployment == "anthropic/claude-haiku-4-5"
    assert "".join(c.text for c in chunks) == "Echo: hello"


def test_sync_calls_from_many_threads(fake: FakeProviderServer) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    with two(fake) as router:

        def worker(i: int) -> None:
            try:
                results.append(router.complete(f"thread {i}").text)
                results.append("".join(c.text for c in router.stream(f"stream {i}")))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert sorted(results) == sorted(
        [f"Echo: thread {i}" for i in range(8)] + [f"Echo: stream {i}" for i in range(8)]
    )


async def test_sync_and_async_callers_share_one_router(fake: FakeProviderServer) -> None:
    router = two(fake)
    async_answer = await router.acomplete("from async")
    sync_answer = await asyncio.to_thread(router.complete, "from a thread")
    assert (async_answer.text, sync_answer.text) == ("Echo: from async", "Echo: from a thread")
    await router.aclose()


def test_configuration_errors_say_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        Router(strategy="priority", deployments=["openai/gpt-4o-mini"], environ={})
    with pytest.raises(ConfigurationError, match="unknown provider"):
        Router(strategy="priority", deployments=["nosuch/model"], environ={})
    with pytest.raises(ConfigurationError, match="provider/model"):
        Router(strategy="priority", deployments=["gpt-4o-mini"], environ={})
    with pytest.raises(ConfigurationError, match="base_url"):
        Router(strategy="priority", deployments=["openai_compatible/my-model"], environ={})
    with pytest.raises(ConfigurationError, match="distinct name"):
        Router(
            strategy="priority",
            deployments=["groq/llama", "groq/llama"],
            environ={"GROQ_API_KEY": "gsk-1"},
        )
    with pytest.raises(ConfigurationError, match="at least one"):
        Router(strategy="priority", deployments=[], environ={})


def test_deployment_specs_strings_and_dicts() -> None:
    env = {"OPENROUTER_API_KEY": "sk-or-1", "GROQ_API_KEY": "gsk-1"}
    router = Router(
        strategy="priority",
        deployments=[
            "openrouter/anthropic/claude-sonnet-4-5",
            {"provider": "groq", "model": "openai/gpt-oss-20b", "name": "fast"},
            Deployment("ollama", "llama3.2", name="local"),
        ],
        environ=env,
    )
    names = [d.key for d in router.deployments]
    assert names == ["openrouter/anthropic/claude-sonnet-4-5", "fast", "local"]
    assert router.deployments[0].model == "anthropic/claude-sonnet-4-5"
    assert "sk-or-1" not in repr(router.deployments)
    router.close()


def test_from_env_and_api_loader(fake: FakeProviderServer) -> None:
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake.openai_base_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
    }
    with Router.from_env(environ=env) as router:
        assert [d.provider for d in router.deployments] == ["openai", "anthropic"]
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        Router.from_env(environ={})
    with APILoader(
        provider="auto",
        api_keys={"anthropic": ANTHROPIC_KEY},
        environ={"ANTHROPIC_BASE_URL": fake.anthropic_base_url},
    ) as loader:
        response = loader.complete(prompt="seed api", max_tokens=30)
        assert response.text == "Echo: seed api" and response.provider == "anthropic"
        assert response.cost is not None and response.usage.total_tokens > 0
    with pytest.raises(ConfigurationError, match="GROQ_API_KEY"):
        APILoader(provider="groq", environ={})


async def test_unknown_options_go_to_extra_body(fake: FakeProviderServer) -> None:
    async with two(fake) as router:
        await router.acomplete("hi", frequency_penalty=0.5, temperature=0.2, stop="END")
    body = fake.requests_for("gpt-4o-mini")[-1].body
    assert body["frequency_penalty"] == 0.5 and body["temperature"] == 0.2
    assert body["stop"] == ["END"]


async def test_rate_limited_everywhere_is_all_failed_with_429s(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=429, retry_after=0.001))
    fake.set_behavior("claude-haiku-4-5", ModelBehavior(permanent_error=429, retry_after=0.001))
    async with two(fake) as router:
        with pytest.raises(AllDeploymentsFailedError) as caught:
            await router.acomplete("hello")
    assert all(isinstance(e, RateLimitError) for e in caught.value.exceptions)


async def test_openrouter_reported_cost_is_used_streaming_and_not(fake: FakeProviderServer) -> None:
    fake.set_behavior(
        "openai/gpt-4o-mini", ModelBehavior(usage={"input": 100, "output": 10, "cost": 0.0123})
    )
    router = Router(
        strategy="priority",
        deployments=[
            Deployment(
                "openrouter",
                "openai/gpt-4o-mini",
                api_key=OPENAI_KEY,
                base_url=fake.openrouter_base_url,
            )
        ],
    )
    async with router:
        response = await router.acomplete("hi")
        chunks = [c async for c in router.astream("hi")]
    assert response.cost == pytest.approx(0.0123)
    assert response.cost_detail is not None and response.cost_detail.source == "provider"
    assert chunks[-1].cost == pytest.approx(0.0123)


async def test_reply_without_usage_is_estimated_not_free() -> None:
    """An OpenAI-compatible server that sends no usage must not look like a free call."""
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "model": "my-model",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "four words of text"},
                    }
                ],
            },
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    router = Router(
        strategy="priority",
        deployments=[
            Deployment(
                "openai_compatible",
                "my-model",
                base_url="http://127.0.0.1:9/v1",
                price={"input": 1.0, "output": 2.0},
            )
        ],
        http_client=client,
    )
    async with router:
        response = await router.acomplete("count my tokens please")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.raw["usage_estimated"] is True
    assert response.cost is not None and response.cost > 0
    await client.aclose()
