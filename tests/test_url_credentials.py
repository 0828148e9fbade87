"""Credentials in URLs (`user:password@`, `?api_key=`) are used to connect and shown nowhere:
not in reprs, LangChain's dumps()/llm string/identifying params, LlamaIndex metadata or
to_dict(), store reprs or errors; a URL an HTTP library cannot send is refused at construction.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import quote, quote_plus, unquote

import httpx
import pytest

from llmrouter_integrations import ConfigurationError, Deployment, RetryPolicy, Router
from llmrouter_integrations.errors import RouterError
from llmrouter_integrations.state.url import parse_store_url
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior
from llmrouter_integrations.testing._fake_behavior import mask_key

ONE_TRY = RetryPolicy(max_attempts=1)
# Passwords as they sit in a URL (percent-encoded where a URL needs it) and as sent.
PASSWORDS = {
    "plain": "hunter2-Pw-0427",
    "reserved": quote("p@ss/w?rd#x:y", safe=""),
    "sub-delims": "p!$&'()*+,;=w-91",
    "unicode": quote("pässwörd-ü", safe=""),
    "short": "Qz",
}
QUERY_NAMES = ["api_key", "key", "access_token", "X-Amz-Signature", "client_secret"]


def leaked(secret: str, text: str) -> bool:
    raw = unquote(secret)
    forms = {secret, raw, quote(raw, safe=""), quote_plus(raw), json.dumps(raw)[1:-1]}
    return any(form in text for form in forms)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def _with_userinfo(base_url: str, userinfo: str) -> str:
    return base_url.replace("http://", f"http://{userinfo}@", 1)


def _shown(deployment: Deployment) -> list[str]:
    """Every representation of a deployment, a router and both framework models."""
    from langchain_core.load import dumpd, dumps

    from llmrouter_integrations.langchain import ChatLLMRouter
    from llmrouter_integrations.llama_index import LLMRouter

    router = Router(deployments=[deployment])
    chat = ChatLLMRouter(deployments=[deployment], ledger="memory")
    llm = LLMRouter(deployments=[deployment])
    try:
        return [
            repr(deployment),
            str(deployment),
            repr(router),
            _backend_repr(deployment),
            repr(chat),
            str(chat),
            dumps(chat),
            json.dumps(dumpd(chat)),
            repr(chat._identifying_params),
            chat._get_llm_string(),
            repr(chat._get_ls_params()),
            repr(llm),
            repr(llm.metadata),
            repr(llm.to_dict()),
            llm.to_json(),
        ]
    finally:
        router.close()
        chat.close()
        llm.router.close()


def _backend_repr(deployment: Deployment) -> str:
    """The HTTP layer's repr: it holds the URL it sends to."""
    from llmrouter_integrations.layers.http import DeploymentBackend
    from llmrouter_integrations.providers.endpoints import get_endpoint
    from llmrouter_integrations.transport.aiohttp import AiohttpTransport

    backend = DeploymentBackend(
        deployment,
        endpoint=get_endpoint(deployment.provider),
        transport=AiohttpTransport(),
        base_url=deployment.base_url or "",
    )
    return repr(backend)


@pytest.mark.parametrize("shape", list(PASSWORDS))
def test_a_password_in_base_url_is_shown_nowhere(fake: FakeProviderServer, shape: str) -> None:
    password = PASSWORDS[shape]
    url = _with_userinfo(fake.anthropic_base_url, f"proxy-user:{password}")
    deployment = Deployment("anthropic", "claude-haiku-4-5", api_key="sk-ant-0123", base_url=url)
    texts = _shown(deployment)
    assert [text for text in texts if leaked(password, text)] == []
    # Still clear where it goes: the host stays, the credentials are visibly withheld.
    host = fake.anthropic_base_url.split("//")[1]
    assert f"http://***@{host}" in repr(deployment)


def test_a_token_used_as_the_user_name_is_shown_nowhere(fake: FakeProviderServer) -> None:
    token = "ghp_UserNameToken0123456789"
    url = _with_userinfo(fake.openai_base_url, token)
    texts = _shown(Deployment("ollama", "llama3.2", base_url=url))
    assert [text for text in texts if token in text] == []


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_a_key_in_the_query_string_is_shown_nowhere(fake: FakeProviderServer, name: str) -> None:
    secret = "QK-" + name.lower().replace("_", "") + "-7f3a9c"
    url = f"{fake.openai_base_url}?{name}={secret}&api-version=2024-10-21"
    texts = _shown(Deployment("openai", "gpt-4o-mini", api_key="sk-test-0123", base_url=url))
    assert [text for text in texts if secret in text] == []
    assert all("api-version=2024-10-21" in text for text in texts[:1])  # the rest stays


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
async def test_credentials_in_the_url_still_reach_the_server(
    fake: FakeProviderServer, client: str
) -> None:
    # Basic auth from user:password (for a proxy in front), the query string after the
    # dialect's path, the API key in its own header: as the provider's SDK would send them.
    password = quote("p@ss/w?rd#x:y-long-enough", safe="")
    url = _with_userinfo(fake.anthropic_base_url, f"proxy-user:{password}") + "?key=QK-12345678"
    options = {"http_client": httpx.AsyncClient()} if client == "httpx" else {}
    model = f"url-creds-{client}"
    deployment = Deployment(
        "anthropic", model, api_key="sk-ant-key-0123", base_url=url, price={"input": 1, "output": 1}
    )
    async with Router(deployments=[deployment], retry=ONE_TRY, **options) as router:
        response = await router.acomplete("hi", max_tokens=8)
    assert response.text
    (request,) = fake.requests_for(model)
    assert request.path == "/v1/messages"
    assert request.query == {"key": mask_key("QK-12345678")}
    token = base64.b64encode(f"proxy-user:{unquote(password)}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {mask_key(token)}"
    assert request.api_key_tail == "0123"  # x-api-key untouched
    if client == "httpx":
        await options["http_client"].aclose()


def test_credentials_in_the_url_next_to_a_bearer_key_are_refused(fake: FakeProviderServer) -> None:
    # Both would go in the one Authorization header: aiohttp raised a bare ValueError at
    # call time, httpx silently dropped the key. Now a clear error at construction.
    url = _with_userinfo(fake.openai_base_url, "proxy-user:hunter2-Pw-0427")
    deployment = Deployment("openai", "gpt-4o-mini", api_key="sk-test-0123", base_url=url)
    for options in ({}, {"http_client": httpx.AsyncClient()}):
        with pytest.raises(ConfigurationError, match="Authorization header") as caught:
            Router(deployments=[deployment], **options)
        assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("password", ["p#ss-9", "p/ss-9", "p?ss-9"])
def test_a_url_no_library_can_send_is_refused_without_showing_it(
    fake: FakeProviderServer, password: str
) -> None:
    # An unescaped "#", "/" or "?" ends the authority early: the rest of the password
    # becomes a port or a path. aiohttp failed every call as a connection error and httpx
    # raised its own InvalidURL; now a ConfigurationError naming the deployment.
    url = _with_userinfo(fake.anthropic_base_url, f"proxy-user:{password}")
    deployment = Deployment("anthropic", "claude-haiku-4-5", api_key="sk-ant-0123", base_url=url)
    for options in ({}, {"http_client": httpx.AsyncClient()}):
        with pytest.raises(ConfigurationError, match="percent-encode") as caught:
            Router(deployments=[deployment], **options)
        assert "ss-9" not in str(caught.value) and "claude-haiku-4-5" in str(caught.value)


async def test_a_password_echoed_by_a_proxy_is_scrubbed(fake: FakeProviderServer) -> None:
    password = "hunter2-Pw-0427"
    url = _with_userinfo(fake.anthropic_base_url, f"proxy-user:{password}") + "?key=QK-9d8c7b6a"
    body = json.dumps(
        {
            "type": "error",
            "error": {"type": "authentication_error", "message": f"proxy: bad {url}"},
        }
    )
    fake.set_behavior("echo-url", ModelBehavior(raw_body=body, raw_status=401))
    deployment = Deployment("anthropic", "echo-url", api_key="sk-ant-0123", base_url=url)
    async with Router(deployments=[deployment], retry=ONE_TRY) as router:
        with pytest.raises(RouterError) as caught:
            await router.acomplete("hi")
    text = repr(caught.value) + str(caught.value) + repr(caught.value.exceptions[0].__dict__)
    assert "proxy: bad" in text
    assert password not in text and "QK-9d8c7b6a" not in text


def test_store_urls_hide_a_password_given_in_the_query() -> None:
    # redis-py takes ?password=...; the store URL's repr and errors hide it like userinfo.
    where = parse_store_url("redis://cache:6379/0?password=hunter2-q", setting="state")
    assert "hunter2-q" not in repr(where)
    with pytest.raises(ConfigurationError) as caught:
        parse_store_url("mysql://cache/0?password=hunter2-q", setting="cache")
    assert "hunter2-q" not in str(caught.value)
