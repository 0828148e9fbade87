"""The built-in provider endpoints, as data rows: URL, dialect, key variable, quirks.

>>> endpoint = get_endpoint("groq")
>>> resolve_base_url(endpoint, None, {})
'https://api.groq.com/openai/v1'
>>> get_dialect(endpoint.dialect).path
'/chat/completions'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..errors import ConfigurationError
from ..types import ChatRequest
from .anthropic_messages import ANTHROPIC_MESSAGES
from .base import Dialect, Endpoint
from .openai_chat import OPENAI_CHAT, is_openai_reasoning_model

__all__ = ["ENDPOINTS", "Endpoint", "get_dialect", "get_endpoint", "resolve_base_url"]


def _openai_quirks(body: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """OpenAI deprecated `max_tokens` and its reasoning models refuse it and custom sampling."""
    if "max_tokens" in body:
        body["max_completion_tokens"] = body.pop("max_tokens")
    if ("temperature" in body or "top_p" in body) and is_openai_reasoning_model(
        str(body.get("model", ""))
    ):
        for key in ("temperature", "top_p"):
            if key in body and body[key] != 1:
                del body[key]
    return body


def _openrouter_quirks(body: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """Ask for usage with cost; OpenRouter now always sends it, older deployments needed this."""
    body.setdefault("usage", {"include": True})
    return body


_GROQ_REFUSED = ("logprobs", "top_logprobs", "logit_bias")


def _groq_quirks(body: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """Groq answers 400 to logprobs, logit_bias, n != 1 and a `name` on messages."""
    for key in _GROQ_REFUSED:
        body.pop(key, None)
    if body.get("n", 1) != 1:
        del body["n"]
    _drop_message_names(body)
    return body


def _mistral_quirks(body: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """Mistral refuses unknown fields (422): no `user`, `stream_options` or message names;
    its seed is called `random_seed`. It sends usage on the last chunk by itself."""
    body.pop("user", None)
    body.pop("stream_options", None)
    if "seed" in body:
        body["random_seed"] = body.pop("seed")
    _drop_message_names(body)
    return body


def _drop_message_names(body: dict[str, Any]) -> None:
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            message.pop("name", None)


def _row(**fields: Any) -> Endpoint:
    headers = MappingProxyType(dict(fields.pop("headers", {})))
    return Endpoint(headers=headers, **fields)


# Ollama and vLLM need no quirks: the dialect already sends `max_tokens`, which they read.
ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType(
    {
        row.name: row
        for row in (
            _row(
                name="openai",
                dialect="openai_chat",
                base_url="https://api.openai.com/v1",
                api_key_env="OPENAI_API_KEY",
                base_url_env="OPENAI_BASE_URL",
                default_model="gpt-4o-mini",
                prices_provider="openai",
                quirks=_openai_quirks,
                reasoning_style="openai",
            ),
            _row(
                name="anthropic",
                dialect="anthropic_messages",
                base_url="https://api.anthropic.com",
                api_key_env="ANTHROPIC_API_KEY",
                base_url_env="ANTHROPIC_BASE_URL",
                default_model="claude-haiku-4-5",
                prices_provider="anthropic",
            ),
            _row(
                name="openrouter",
                dialect="openai_chat",
                base_url="https://openrouter.ai/api/v1",
                api_key_env="OPENROUTER_API_KEY",
                base_url_env="OPENROUTER_BASE_URL",
                default_model="openai/gpt-4o-mini",
                # Attribution shown on openrouter.ai; add your own `HTTP-Referer` through
                # Deployment.headers to be listed under your app.
                headers={"X-Title": "llmrouter_integrations"},
                prices_provider="openrouter",
                quirks=_openrouter_quirks,
                reasoning_style="openrouter",
                cache_marks=True,
            ),
            _row(
                name="groq",
                dialect="openai_chat",
                base_url="https://api.groq.com/openai/v1",
                api_key_env="GROQ_API_KEY",
                base_url_env="GROQ_BASE_URL",
                default_model="openai/gpt-oss-20b",
                prices_provider="groq",
                quirks=_groq_quirks,
                reasoning_style="groq",
            ),
            _row(
                name="ollama",
                dialect="openai_chat",
                base_url="http://localhost:11434/v1",
                api_key_env=None,
                base_url_env="OLLAMA_BASE_URL",
                default_model="llama3.2",
                local=True,
                key_required=False,
                null_tool_call_content=False,
            ),
            _row(
                name="vllm",
                dialect="openai_chat",
                base_url="http://localhost:8000/v1",
                api_key_env="VLLM_API_KEY",  # only if the server was started with --api-key
                base_url_env="VLLM_BASE_URL",
                default_model="",
                local=True,
                key_required=False,
            ),
            _row(
                name="together",
                dialect="openai_chat",
                base_url="https://api.together.xyz/v1",
                api_key_env="TOGETHER_API_KEY",
                base_url_env="TOGETHER_BASE_URL",
                default_model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
                prices_provider="together",
            ),
            _row(
                name="deepseek",
                dialect="openai_chat",
                base_url="https://api.deepseek.com",
                api_key_env="DEEPSEEK_API_KEY",
                base_url_env="DEEPSEEK_BASE_URL",
                default_model="deepseek-chat",
                prices_provider="deepseek",
                reasoning_style="none",
            ),
            _row(
                name="mistral",
                dialect="openai_chat",
                base_url="https://api.mistral.ai/v1",
                api_key_env="MISTRAL_API_KEY",
                base_url_env="MISTRAL_BASE_URL",
                default_model="mistral-small-latest",
                prices_provider="mistral",
                quirks=_mistral_quirks,
            ),
            _row(
                name="fireworks",
                dialect="openai_chat",
                base_url="https://api.fireworks.ai/inference/v1",
                api_key_env="FIREWORKS_API_KEY",
                base_url_env="FIREWORKS_BASE_URL",
                default_model="accounts/fireworks/models/llama-v3p1-8b-instruct",
                prices_provider="fireworks",
            ),
            _row(
                name="openai_compatible",
                dialect="openai_chat",
                base_url="",  # no default: the deployment must say where the server is
                api_key_env="OPENAI_COMPATIBLE_API_KEY",
                base_url_env="OPENAI_COMPATIBLE_BASE_URL",
                default_model="",
                local=True,
                key_required=False,
                null_tool_call_content=False,  # llama.cpp, LM Studio, mlx-lm
            ),
        )
    }
)

_DIALECTS: Mapping[str, Dialect] = MappingProxyType(
    {OPENAI_CHAT.name: OPENAI_CHAT, ANTHROPIC_MESSAGES.name: ANTHROPIC_MESSAGES}
)


def get_endpoint(name: str) -> Endpoint:
    """The built-in endpoint called `name` ("openai", "groq", "openai-compatible"...).

    >>> get_endpoint("anthropic").base_url
    'https://api.anthropic.com'
    """
    key = name.strip().lower().replace("-", "_")
    try:
        return ENDPOINTS[key]
    except KeyError:
        known = ", ".join(sorted(ENDPOINTS))
        raise ConfigurationError(f"unknown provider {name!r}; known providers: {known}") from None


def get_dialect(name: str) -> Dialect:
    """The wire format called `name`: "openai_chat" or "anthropic_messages"."""
    try:
        return _DIALECTS[name]
    except KeyError:
        known = ", ".join(sorted(_DIALECTS))
        raise ConfigurationError(f"unknown dialect {name!r}; known dialects: {known}") from None


def resolve_base_url(endpoint: Endpoint, explicit: str | None, environ: Mapping[str, str]) -> str:
    """The base URL to use: the deployment's own, else the endpoint's env var, else the default.

    A trailing "/" is dropped, and so is a trailing "/v1" on Anthropic URLs (the dialect's
    path already has it), so a URL copied from either convention works. An empty result
    means the endpoint has no default and the caller must demand one.

        >>> resolve_base_url(get_endpoint("ollama"), None, {"OLLAMA_BASE_URL": "http://gpu:11434/v1/"})
        'http://gpu:11434/v1'
    """
    url = (explicit or "").strip()
    if not url and endpoint.base_url_env:
        url = environ.get(endpoint.base_url_env, "").strip()
    if not url:
        url = endpoint.base_url
    url = url.rstrip("/")
    if endpoint.dialect == ANTHROPIC_MESSAGES.name and url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url
