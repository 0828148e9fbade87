"""ChatLLMRouter configuration: the Router it builds, and its description as keyless data.

What is serialised or hashed (LangChain's `dumpd`, `_identifying_params`, cache keys)
never holds an API key, an auth header or a URL's password; keys come back from the
environment.

    >>> public_deployment(Deployment("openai", "gpt-4o-mini", api_key="sk-..."))
    {'provider': 'openai', 'model': 'gpt-4o-mini'}
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import SecretStr

from .._secrets import mask_url
from ..types import Deployment

__all__ = [
    "API_KEY_ENV",
    "PLAIN_OPTIONS",
    "ROUTER_OPTIONS",
    "deployment_identity",
    "describe_strategy",
    "public_deployment",
    "router_arguments",
    "router_options",
    "secret_from_env",
]

API_KEY_ENV = "LLMROUTER_API_KEY"
_SECRET_HEADER_HINTS = ("auth", "key", "token", "secret", "cookie")


def secret_from_env() -> SecretStr | None:
    """The LLMROUTER_API_KEY environment variable, if set."""
    value = os.environ.get(API_KEY_ENV)
    return SecretStr(value) if value else None


# ChatLLMRouter fields that are Router(...) options of the same name (`router_cache` is
# Router's `cache`); PLAIN_OPTIONS are plain values, kept when the model is serialised.
ROUTER_OPTIONS = (
    "strategy",
    "retry",
    "breaker",
    "budgets",
    "ledger",
    "router_cache",
    "cache_ttl_s",
    "state",
    "state_failure",
    "fallback_on",
    "on_event",
    "instrument",
    "max_queue_wait",
    "rate_limit_wait",
    "strict_params",
    "prompt_cache",
)
PLAIN_OPTIONS = (
    "cache_ttl_s",
    "max_queue_wait",
    "rate_limit_wait",
    "strict_params",
    "prompt_cache",
)
_NONE_MEANS_NO_LIMIT = ("max_queue_wait", "rate_limit_wait")


def router_options(model: Any, fields_set: Collection[str]) -> dict[str, Any]:
    """The Router options a ChatLLMRouter was given: those set explicitly, by Router's names
    (None left out, except where it means "no limit")."""
    options = {}
    for name in ROUTER_OPTIONS:
        value = getattr(model, name)
        if name in fields_set and (value is not None or name in _NONE_MEANS_NO_LIMIT):
            options["cache" if name == "router_cache" else name] = value
    return options


def router_arguments(
    deployments: Sequence[Deployment],
    *,
    api_key: SecretStr | None,
    max_retries: int | None,
    options: Mapping[str, Any],
    router_kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """`Router(...)` arguments: deployments (copies, `api_key` filling missing keys), the
    options that are set, and a retry policy from `max_retries` unless `retry` is given."""
    copies = []
    for deployment in deployments:
        # A copy: the router writes keys found in the environment into its deployments.
        copy = dataclasses.replace(deployment)
        if copy.api_key is None and api_key is not None:
            copy.api_key = api_key
        copies.append(copy)
    arguments: dict[str, Any] = {"deployments": copies, **router_kwargs}
    arguments.update(options)
    if "retry" not in arguments and max_retries is not None:
        from ..layers.retry import RetryPolicy

        arguments["retry"] = RetryPolicy(max_attempts=max_retries + 1)
    return arguments


def public_deployment(deployment: Deployment) -> dict[str, Any]:
    """A deployment as JSON data with nothing secret in it (no key, no auth headers)."""
    data: dict[str, Any] = {"provider": deployment.provider, "model": deployment.model}
    if deployment.name and deployment.name != f"{deployment.provider}/{deployment.model}":
        data["name"] = deployment.name
    defaults = {field.name: field.default for field in dataclasses.fields(Deployment)}
    for field in dataclasses.fields(Deployment):
        if field.name in ("provider", "model", "name", "api_key", "headers"):
            continue
        value = getattr(deployment, field.name)
        if value is not None and value != defaults[field.name] and value != ():
            data[field.name] = list(value) if isinstance(value, tuple) else value
    if deployment.base_url:  # a password in it stays behind: pass it again after loading
        data["base_url"] = mask_url(deployment.base_url)
    headers = {
        name: value
        for name, value in deployment.headers.items()
        if not any(hint in name.lower() for hint in _SECRET_HEADER_HINTS)
    }
    if headers:
        data["headers"] = headers
    return data


def deployment_identity(deployment: Deployment) -> str:
    """`name=provider/model@base_url`: what a cache key must tell apart (credentials in the
    URL masked: LangChain's cache stores this string)."""
    base_url = f"@{mask_url(deployment.base_url)}" if deployment.base_url else ""
    return f"{deployment.key}={deployment.provider}/{deployment.model}{base_url}"


def describe_strategy(strategy: Any) -> str:
    """A stable text for a strategy name or object."""
    if strategy is None or isinstance(strategy, str):
        return str(strategy or "default")
    return type(strategy).__name__
