"""Endpoint rows: every built-in provider resolves, env vars override, quirks apply."""

from __future__ import annotations

import pytest

from llmrouter_integrations.errors import ConfigurationError
from llmrouter_integrations.providers.anthropic_messages import ANTHROPIC_MESSAGES
from llmrouter_integrations.providers.endpoints import (
    ENDPOINTS,
    Endpoint,
    get_dialect,
    get_endpoint,
    resolve_base_url,
)
from llmrouter_integrations.providers.openai_chat import OPENAI_CHAT
from llmrouter_integrations.types import ChatRequest, Message

BUILT_IN = [
    "openai",
    "anthropic",
    "openrouter",
    "groq",
    "ollama",
    "vllm",
    "together",
    "deepseek",
    "mistral",
    "fireworks",
    "openai_compatible",
]


def test_every_built_in_provider_is_a_row() -> None:
    assert sorted(ENDPOINTS) == sorted(BUILT_IN)


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_row_resolves(name: str) -> None:
    endpoint = get_endpoint(name)
    assert endpoint.name == name
    dialect = get_dialect(endpoint.dialect)
    assert dialect.name == endpoint.dialect
    url = resolve_base_url(endpoint, None, {})
    assert url == endpoint.base_url and not url.endswith("/")
    if name != "openai_compatible":
        assert url.startswith(("https://", "http://localhost"))
    if endpoint.dialect == "openai_chat":
        assert url == "" or url.endswith("/v1") or name == "deepseek"
    hash(endpoint)  # rows can key dicts and caches


def test_dialects_of_rows() -> None:
    assert get_dialect("openai_chat") is OPENAI_CHAT
    assert get_dialect("anthropic_messages") is ANTHROPIC_MESSAGES
    assert get_endpoint("anthropic").base_url == "https://api.anthropic.com"
    with pytest.raises(ConfigurationError, match="openai_chat"):
        get_dialect("gemini")


def test_local_rows_are_free_and_keyless() -> None:
    for name in ("ollama", "vllm", "openai_compatible"):
        endpoint = get_endpoint(name)
        assert endpoint.local and not endpoint.key_required
    assert get_endpoint("ollama").base_url == "http://localhost:11434/v1"
    assert get_endpoint("vllm").base_url == "http://localhost:8000/v1"
    assert get_endpoint("openai_compatible").base_url == ""
    for name in ("openai", "anthropic", "openrouter", "groq"):
        endpoint = get_endpoint(name)
        assert not endpoint.local and endpoint.key_required and endpoint.api_key_env


def test_default_models_are_priced_by_genai_prices() -> None:
    from genai_prices import Usage, calc_price

    for endpoint in ENDPOINTS.values():
        if endpoint.prices_provider is None:
            continue
        price = calc_price(
            Usage(input_tokens=1000, output_tokens=100),
            model_ref=endpoint.default_model,
            provider_id=endpoint.prices_provider,
        )
        assert price.total_price > 0, endpoint.name


def test_base_url_precedence_explicit_then_env_then_default() -> None:
    groq = get_endpoint("groq")
    environ = {"GROQ_BASE_URL": "http://proxy.local/groq/v1/"}
    assert resolve_base_url(groq, None, environ) == "http://proxy.local/groq/v1"
    assert resolve_base_url(groq, "http://mine/v1/", environ) == "http://mine/v1"
    assert resolve_base_url(groq, None, {"GROQ_BASE_URL": "  "}) == groq.base_url
    ollama = get_endpoint("ollama")
    assert resolve_base_url(ollama, None, {"OLLAMA_BASE_URL": "http://gpu:11434/v1"}) == (
        "http://gpu:11434/v1"
    )


def test_anthropic_urls_lose_a_trailing_v1() -> None:
    anthropic = get_endpoint("anthropic")
    assert resolve_base_url(anthropic, "https://api.anthropic.com/v1/", {}) == (
        "https://api.anthropic.com"
    )
    assert resolve_base_url(anthropic, None, {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/v1"}) == (
        "http://127.0.0.1:9"
    )


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        get_endpoint("gemini")
    message = str(caught.value)
    assert "'gemini'" in message
    for name in BUILT_IN:
        assert name in message
    assert get_endpoint("OpenAI-Compatible") is ENDPOINTS["openai_compatible"]


def build(provider: str, request: ChatRequest, stream: bool = False) -> dict[str, object]:
    return OPENAI_CHAT.build_body(
        request, model="some-model", stream=stream, endpoint=get_endpoint(provider)
    )


def test_openrouter_asks_for_usage_with_cost() -> None:
    body = build("openrouter", ChatRequest(messages=[]))
    assert body["usage"] == {"include": True}
    assert "usage" not in build("openai", ChatRequest(messages=[]))


def test_groq_drops_what_it_refuses() -> None:
    request = ChatRequest(
        messages=[Message(role="user", content="hi", name="ann")],
        max_tokens=20,
        extra_body={"logprobs": True, "top_logprobs": 2, "logit_bias": {"1": 2}, "n": 3},
    )
    body = build("groq", request)
    for key in ("logprobs", "top_logprobs", "logit_bias", "n", "max_completion_tokens"):
        assert key not in body
    assert body["max_tokens"] == 20
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_mistral_gets_only_fields_it_accepts() -> None:
    request = ChatRequest(messages=[Message(role="user", content="hi")], seed=5, user="u")
    body = build("mistral", request, stream=True)
    assert body["random_seed"] == 5
    for key in ("seed", "user", "stream_options"):
        assert key not in body
    assert body["stream"] is True


@pytest.mark.parametrize("provider", ["ollama", "vllm", "together", "deepseek", "fireworks"])
def test_compatible_servers_get_max_tokens(provider: str) -> None:
    body = build(provider, ChatRequest(messages=[], max_tokens=33), stream=True)
    assert body["max_tokens"] == 33 and "max_completion_tokens" not in body
    assert body["stream_options"] == {"include_usage": True}


def test_custom_endpoint_row() -> None:
    lmstudio = Endpoint(
        name="lmstudio",
        dialect="openai_chat",
        base_url="http://localhost:1234/v1",
        api_key_env=None,
        base_url_env="LMSTUDIO_BASE_URL",
        default_model="",
        local=True,
        key_required=False,
        headers={"X-Trace": "1"},
    )
    assert resolve_base_url(lmstudio, None, {"LMSTUDIO_BASE_URL": "http://box:1234/v1"}) == (
        "http://box:1234/v1"
    )
    assert OPENAI_CHAT.build_headers(None, lmstudio)["X-Trace"] == "1"
