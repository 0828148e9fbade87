"""The httpx transport across event loops: asyncio.run(...) then a sync call works on a
user's client, our own clients are one per loop, and a closed client is a clear error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from llmrouter_integrations import ConfigurationError, Deployment, RetryPolicy, Router
from llmrouter_integrations.testing import FakeProviderServer
from llmrouter_integrations.transport.base import HTTPRequest
from llmrouter_integrations.transport.httpx import HttpxTransport

KEY = "sk-test-loops-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


def two(fake: FakeProviderServer, client: httpx.AsyncClient) -> Router:
    return Router(
        deployments=[
            Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url),
            Deployment(
                "anthropic", "claude-haiku-4-5", api_key=KEY, base_url=fake.anthropic_base_url
            ),
        ],
        strategy="priority",
        http_client=client,
        retry=RetryPolicy(max_attempts=1),
    )


def test_a_users_client_survives_asyncio_run_then_a_sync_call(fake: FakeProviderServer) -> None:
    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=4))
    router = two(fake, client)
    try:
        # Several pooled connections on the first loop, all dead once asyncio.run returns.
        async def warm() -> None:
            await asyncio.gather(*(router.acomplete(f"hi {n}") for n in range(4)))

        asyncio.run(warm())
        for _ in range(3):
            response = router.complete("again")
            assert response.deployment == "openai/gpt-4o-mini" and response.attempts == []
        chunks = list(router.stream("and a stream"))
        assert chunks[-1].deployment == "openai/gpt-4o-mini"
        health = router.health()["openai/gpt-4o-mini"]
        assert health.circuit == "closed" and health.error_rate == 0
    finally:
        router.close()
        asyncio.run(client.aclose())


def test_a_closed_client_is_a_configuration_error_not_a_deployment_failure(
    fake: FakeProviderServer,
) -> None:
    client = httpx.AsyncClient()
    asyncio.run(client.aclose())
    router = two(fake, client)
    before = fake.request_count()
    try:
        with pytest.raises(ConfigurationError, match="http_client"):
            router.complete("hi")
        assert fake.request_count() == before  # not sent, and no fallback either
        health = router.health()
        assert all(h.circuit == "closed" and h.error_rate == 0 for h in health.values())
    finally:
        router.close()


def test_our_own_clients_are_one_per_event_loop(fake: FakeProviderServer) -> None:
    transport = HttpxTransport()
    seen: list[httpx.AsyncClient] = []

    async def call() -> int:
        seen.append(transport.client)
        request = HTTPRequest(
            "GET", fake.openai_base_url + "/models", {"Authorization": f"Bearer {KEY}"}, b""
        )
        return (await transport.send(request)).status_code

    assert asyncio.run(call()) == 200
    assert asyncio.run(call()) == 200  # a new loop: a new client, no "Event loop is closed"
    assert seen[0] is not seen[1]

    async def close() -> None:
        await transport.aclose()

    asyncio.run(close())
