"""DeploymentBackend: one deployment over real loopback HTTP, both dialects, every failure."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from _loopback import Loopback, closed_port
from pydantic import SecretStr

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.costs.pricing import Pricer
from llmrouter_integrations.errors import (
    AuthenticationError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from llmrouter_integrations.layers.http import DeploymentBackend
from llmrouter_integrations.providers.base import RateLimitInfo
from llmrouter_integrations.providers.endpoints import get_endpoint
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior
from llmrouter_integrations.transport import AiohttpTransport, HttpxTransport, Transport
from llmrouter_integrations.types import ChatChunk, ChatRequest, Deployment, Message

SECRET = "sk-test-SECRET-0123456789abcdef"
PROVIDERS = {
    "openai": ("gpt-4o-mini", "openai_base_url"),
    "anthropic": ("claude-haiku-4-5", "anthropic_base_url"),
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake: FakeProviderServer) -> None:
    fake.reset()


@pytest.fixture(params=["aiohttp", "httpx"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    made: Transport = AiohttpTransport() if request.param == "aiohttp" else HttpxTransport()
    yield made
    await made.aclose()


@pytest.fixture
async def loopback() -> AsyncIterator[Loopback]:
    server = Loopback()
    await server.start()
    yield server
    await server.stop()


def request(text: str = "What is the capital of France?", **options: object) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], max_tokens=50, **options)  # type: ignore[arg-type]


def backend_for(
    provider: str,
    fake: FakeProviderServer,
    transport: Transport,
    *,
    timeout: float | None = None,
    clock: ManualClock | None = None,
    rate_limits: list[tuple[str, RateLimitInfo]] | None = None,
) -> DeploymentBackend:
    model, url_attribute = PROVIDERS[provider]
    deployment = Deployment(
        provider=provider, model=model, api_key=SecretStr(SECRET), timeout=timeout
    )
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return DeploymentBackend(
        deployment,
        endpoint=get_endpoint(provider),
        transport=transport,
        base_url=getattr(fake, url_attribute),
        pricer=Pricer(),
        on_rate_limits=(lambda name, info: rate_limits.append((name, info)))
        if rate_limits is not None
        else None,
        **extra,
    )


async def collect(backend: DeploymentBackend, chat_request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in backend.stream(chat_request)]


def assert_secret_free(error: BaseException) -> None:
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in repr(getattr(error, "headers", ""))
    assert SECRET not in repr(getattr(error, "body", ""))


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_chat_returns_text_usage_cost_and_origin(
    provider: str, fake: FakeProviderServer, transport: Transport
) -> None:
    model = PROVIDERS[provider][0]
    fake.set_behavior(
        model,
        ModelBehavior(
            reply="Paris.", served_model=f"{model}-2025", usage={"input": 12, "output": 3}
        ),
    )
    backend = backend_for(provider, fake, transport)
    response = await backend.chat(request())

    assert response.text == "Paris."
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert response.provider == provider
    assert response.model == f"{model}-2025"  # as served
    assert response.deployment == f"{provider}/{model}"
    assert response.cost is not None and response.cost > 0
    assert response.cost_detail is not None
    assert float(response.cost_detail.total) == response.cost
    assert response.latency_s > 0
    assert isinstance(response.raw, dict)
    (sent,) = fake.requests
    assert sent.api_key_tail == SECRET[-4:]
    assert sent.body["model"] == model
    assert not sent.stream


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_yields_text_then_one_final_chunk(
    provider: str, fake: FakeProviderServer, transport: Transport
) -> None:
    model = PROVIDERS[provider][0]
    fake.set_behavior(
        model,
        ModelBehavior(
            reply="Paris is the capital.", chunk_size=4, usage={"input": 20, "output": 6}
        ),
    )
    backend = backend_for(provider, fake, transport)
    chunks = await collect(backend, request())

    *content, final = chunks
    assert "".join(chunk.text for chunk in content) == "Paris is the capital."
    assert len(content) > 1
    assert not any(chunk.is_final for chunk in content)
    assert final.is_final
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (20, 6)
    assert final.cost is not None and final.cost > 0
    assert (final.provider, final.deployment) == (provider, f"{provider}/{model}")
    assert final.model.startswith(model)
    assert final.ttft_s is not None and final.latency_s is not None
    assert 0 < final.ttft_s <= final.latency_s
    assert fake.requests[0].stream


async def test_request_model_overrides_the_deployment_model(
    fake: FakeProviderServer, transport: Transport
) -> None:
    backend = backend_for("openai", fake, transport)
    await backend.chat(request(model="gpt-4.1-nano"))
    assert fake.requests[0].body["model"] == "gpt-4.1-nano"


async def test_rate_limit_headers_reach_the_callback(
    fake: FakeProviderServer, transport: Transport
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(rate_limit=100))
    seen: list[tuple[str, RateLimitInfo]] = []
    backend = backend_for("openai", fake, transport, rate_limits=seen)
    await backend.chat(request())
    await collect(backend, request())
    assert [name for name, _ in seen] == ["openai/gpt-4o-mini"] * 2
    assert seen[0][1].limit_requests == 100
    assert seen[1][1].remaining_requests is not None
    assert seen[1][1].remaining_requests < seen[0][1].remaining_requests  # type: ignore[operator]


# -- provider errors -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("streaming", [False, True])
async def test_error_status_maps_to_our_error_with_provider_message(
    provider: str, streaming: bool, fake: FakeProviderServer, transport: Transport
) -> None:
    model = PROVIDERS[provider][0]
    fake.set_behavior(
        model, ModelBehavior(permanent_error=429, retry_after=2, error_message="Slow down, friend")
    )
    backend = backend_for(provider, fake, transport)
    with pytest.raises(RateLimitError) as caught:
        if streaming:
            await collect(backend, request())
        else:
            await backend.chat(request())
    error = caught.value
    assert "Slow down, friend" in str(error)
    assert (error.status_code, error.retry_after) == (429, 2.0)
    assert (error.provider, error.model, error.deployment) == (
        provider,
        model,
        f"{provider}/{model}",
    )
    assert error.retryable
    assert_secret_free(error)


async def test_bad_key_is_an_authentication_error_without_the_key(
    transport: Transport,
) -> None:
    with FakeProviderServer(valid_keys={"sk-the-right-key-000000"}) as strict:
        backend = backend_for("anthropic", strict, transport)
        with pytest.raises(AuthenticationError) as caught:
            await backend.chat(request())
    assert caught.value.deployment_error
    assert caught.value.deployment == "anthropic/claude-haiku-4-5"
    assert_secret_free(caught.value)


async def test_html_error_page_maps_by_status(
    fake: FakeProviderServer, transport: Transport
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(html_502=True))
    with pytest.raises(ServerError) as caught:
        await backend_for("openai", fake, transport).chat(request())
    assert caught.value.status_code == 502


async def test_malformed_json_reply_is_a_decode_error(
    fake: FakeProviderServer, transport: Transport
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(malformed_json=True))
    with pytest.raises(ResponseDecodeError) as caught:
        await backend_for("openai", fake, transport).chat(request())
    assert caught.value.deployment == "openai/gpt-4o-mini"
    assert caught.value.retryable


async def test_non_json_200_is_a_decode_error_with_an_excerpt(
    loopback: Loopback, transport: Transport
) -> None:
    backend = DeploymentBackend(
        Deployment(provider="openai", model="gpt-4o-mini", api_key=SecretStr(SECRET)),
        endpoint=get_endpoint("openai"),
        transport=transport,
        base_url=loopback.url("/notjson"),
    )
    with pytest.raises(ResponseDecodeError, match="upstream proxy error") as caught:
        await backend.chat(request())
    assert "text/html" in str(caught.value)
    assert_secret_free(caught.value)


# -- broken streams --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_dropped_stream_raises_after_the_chunks_it_delivered(
    provider: str, fake: FakeProviderServer, transport: Transport
) -> None:
    model = PROVIDERS[provider][0]
    fake.set_behavior(
        model, ModelBehavior(reply="one two three four five", chunk_size=4, drop_after_chunks=2)
    )
    backend = backend_for(provider, fake, transport)
    received: list[ChatChunk] = []
    with pytest.raises(ProviderConnectionError) as caught:
        async for chunk in backend.stream(request()):
            received.append(chunk)
    assert received and not any(chunk.is_final for chunk in received)
    assert caught.value.deployment == f"{provider}/{model}"
    assert_secret_free(caught.value)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_error_event_mid_stream_raises(
    provider: str, fake: FakeProviderServer, transport: Transport
) -> None:
    model = PROVIDERS[provider][0]
    fake.set_behavior(
        model, ModelBehavior(reply="one two three four", chunk_size=4, mid_stream_error=1)
    )
    backend = backend_for(provider, fake, transport)
    with pytest.raises(ProviderError) as caught:
        await collect(backend, request())
    assert caught.value.provider == provider
    assert caught.value.deployment == f"{provider}/{model}"


async def test_stream_without_end_marker_is_not_a_success(
    loopback: Loopback, transport: Transport
) -> None:
    loopback.sse_chunks = [b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n']
    backend = DeploymentBackend(
        Deployment(provider="openai", model="gpt-4o-mini"),
        endpoint=get_endpoint("openai"),
        transport=transport,
        base_url=loopback.url("/sse"),
    )
    with pytest.raises(ResponseDecodeError):
        await collect(backend, request())


async def test_missing_usage_is_estimated_and_marked(
    loopback: Loopback, transport: Transport
) -> None:
    # An OpenAI-compatible server that ignores stream_options: no usage anywhere.
    loopback.sse_chunks = [
        b'data: {"model":"llama3.2","choices":[{"index":0,"delta":{"content":"Hello there, '
        b'how can I help?"}}]}\n\n',
        b'data: {"model":"llama3.2","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    backend = DeploymentBackend(
        Deployment(provider="ollama", model="llama3.2"),
        endpoint=get_endpoint("ollama"),
        transport=transport,
        base_url=loopback.url("/sse"),
        pricer=Pricer(),
    )
    final = (await collect(backend, request()))[-1]
    assert final.is_final
    assert final.usage is not None
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    assert final.raw["usage_estimated"] is True
    assert final.cost == 0.0  # a local model


# -- time limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
async def test_hanging_provider_hits_the_deployment_timeout(
    streaming: bool, fake: FakeProviderServer, transport: Transport
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(hang=True))
    backend = backend_for("openai", fake, transport, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as caught:
        if streaming:
            await collect(backend, request())
        else:
            await backend.chat(request())
    assert time.monotonic() - started < 2.0
    assert caught.value.deployment == "openai/gpt-4o-mini"


async def test_passed_deadline_fails_before_sending(
    fake: FakeProviderServer, transport: Transport
) -> None:
    clock = ManualClock(start=100.0)
    backend = backend_for("openai", fake, transport, clock=clock)
    with pytest.raises(ProviderTimeoutError, match="deadline"):
        await backend.chat(request(deadline=99.0))
    with pytest.raises(ProviderTimeoutError, match="deadline"):
        await collect(backend, request(deadline=100.0))
    assert fake.requests == []


async def test_deadline_bounds_the_whole_stream(
    fake: FakeProviderServer, transport: Transport
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(reply="a b c d e f g h", chunk_size=2))
    clock = ManualClock(start=0.0)
    backend = backend_for("openai", fake, transport, clock=clock)
    received: list[ChatChunk] = []
    with pytest.raises(ProviderTimeoutError, match="deadline"):
        async for chunk in backend.stream(request(deadline=10.0)):
            received.append(chunk)
            clock.advance(30.0)  # the consumer took its time
    assert received and not any(chunk.is_final for chunk in received)


async def test_refused_connection_is_tagged(transport: Transport) -> None:
    port = closed_port()
    backend = DeploymentBackend(
        Deployment(
            provider="openai", model="gpt-4o-mini", api_key=SecretStr(SECRET), name="primary"
        ),
        endpoint=get_endpoint("openai"),
        transport=transport,
        base_url=f"http://127.0.0.1:{port}/v1",
    )
    with pytest.raises(ProviderConnectionError, match="connection refused") as caught:
        await backend.chat(request())
    assert (caught.value.provider, caught.value.deployment) == ("openai", "primary")
    assert str(caught.value).startswith("[primary]")
    assert_secret_free(caught.value)


# -- the httpx seam --------------------------------------------------------------------------


async def test_stream_over_httpx_mock_transport_with_awkward_splits() -> None:
    events: list[dict[str, Any]] = [
        {"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": text}}]}
        for text in ("Bon", "jour ", "à ", "tous")
    ]
    events.append(
        {
            "id": "c1",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
    )
    events.append(
        {
            "id": "c1",
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
        }
    )
    body = "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events).encode()
    body += b"data: [DONE]\n\n"

    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for start in range(0, len(body), 7):  # cuts through lines and UTF-8 characters
                yield body[start : start + 7]

    def handler(http_request: httpx.Request) -> httpx.Response:
        assert http_request.headers["authorization"] == f"Bearer {SECRET}"
        assert json.loads(http_request.content)["stream"] is True
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Trickle())

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    backend = DeploymentBackend(
        Deployment(provider="openai", model="gpt-4o-mini", api_key=SecretStr(SECRET)),
        endpoint=get_endpoint("openai"),
        transport=HttpxTransport(client),
        base_url="https://api.openai.com/v1",
        pricer=Pricer(),
    )
    *content, final = await collect(backend, request())
    assert "".join(chunk.text for chunk in content) == "Bonjour à tous"
    assert final.usage is not None and final.usage.output_tokens == 4
    assert final.cost is not None and final.cost > 0
    await client.aclose()


async def test_backend_repr_hides_the_key(transport: Transport) -> None:
    backend = DeploymentBackend(
        Deployment(provider="openai", model="gpt-4o-mini", api_key=SecretStr(SECRET)),
        endpoint=get_endpoint("openai"),
        transport=transport,
        base_url="https://api.openai.com/v1",
    )
    assert SECRET not in repr(backend)
