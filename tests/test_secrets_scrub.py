"""A key echoed by a provider is scrubbed in one place, whatever its shape or length, from the
error, its fields and its whole exception chain (no raw body, no request headers)."""

from __future__ import annotations

import json
import pickle
import socket
import traceback
from collections.abc import Iterator

import httpx
import pytest

from llmrouter_integrations import Deployment, RetryPolicy, Router
from llmrouter_integrations.errors import RouterError
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

ONE_TRY = RetryPolicy(max_attempts=1)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def chain(error: BaseException) -> list[BaseException]:
    links, todo = [], [error]
    while todo:
        link = todo.pop()
        links.append(link)
        todo += [x for x in (link.__cause__, link.__context__) if x is not None]
        todo += list(getattr(link, "exceptions", ()) or ())
    return links


def everything(error: BaseException) -> str:
    parts = ["".join(traceback.format_exception(error)), repr(pickle.dumps(error))]
    for link in chain(error):
        parts += [str(link), repr(link), repr(getattr(link, "__dict__", {})), repr(link.args)]
        parts.append(repr(getattr(link, "doc", "")))
        request = getattr(link, "request", None) or getattr(link, "_request", None)
        parts.append(repr(getattr(request, "headers", "")))
    return "\n".join(parts)


async def failure(router: Router) -> BaseException:
    async with router:
        with pytest.raises(RouterError) as caught:
            await router.acomplete("hi")
    return caught.value


@pytest.mark.parametrize("key", ["sk-live\\with\\backslashes-0123", "k3y", "a\"b'c", "12345"])
async def test_an_echoed_key_of_any_shape_or_length_is_scrubbed(
    fake: FakeProviderServer, key: str
) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}", "code": key}})
    model = f"echo-{abs(hash(key))}"
    fake.set_behavior(model, ModelBehavior(raw_body=body, raw_status=401))
    router = Router(
        deployments=[Deployment("openai", model, api_key=key, base_url=fake.openai_base_url)],
        retry=ONE_TRY,
    )
    text = everything(await failure(router))
    assert "Incorrect API key provided: ***" in text
    for form in (key, json.dumps(key)[1:-1], repr(key)[1:-1]):
        assert form not in text


async def test_a_raw_body_holding_the_key_is_not_kept_in_a_hidden_context(
    fake: FakeProviderServer,
) -> None:
    key = "sk-live-context-0123456789"
    fake.set_behavior("not-json", ModelBehavior(raw_body=f"<html>bad key {key}</html>"))
    router = Router(
        deployments=[Deployment("openai", "not-json", api_key=key, base_url=fake.openai_base_url)],
        retry=ONE_TRY,
    )
    error = await failure(router)
    assert not any(isinstance(link, json.JSONDecodeError) for link in chain(error))
    assert key not in everything(error)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_no_request_headers_in_the_chain_of_a_connection_error(transport: str) -> None:
    key = "sk-live-headers-0123456789"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    router = Router(
        deployments=[
            Deployment("openai", "m", api_key=key, base_url=f"http://127.0.0.1:{port}/v1")
        ],
        http_client=httpx.AsyncClient() if transport == "httpx" else None,
        retry=ONE_TRY,
    )
    error = await failure(router)
    libraries = ("httpx", "httpcore", "aiohttp")
    assert not any(type(link).__module__.startswith(libraries) for link in chain(error))
    assert key not in everything(error)
