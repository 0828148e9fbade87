"""A key or header no HTTP request can carry is refused at construction with a
ConfigurationError naming the deployment, never showing the key."""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from llmrouter_integrations import APILoader, ConfigurationError, Deployment, Router

BAD_KEYS = [
    "sk-live-trailing-newline-0123\n",
    "sk-live-inner\r\nX-Injected: 1",
    "sk-live-tab\tinside-0123",
    "sk-live-nul\x00-0123",
    "sk-live-del\x7f-0123",
    "sk-live-unicode-é-0123",
    "\u2028sk-live-line-separator",
]


def _assert_hidden(error: BaseException, key: str) -> None:
    text = "".join(traceback.format_exception(error)) + repr(error)
    core = key.strip()
    for shown in (key, core, repr(key)[1:-1], core[:12]):
        assert shown not in text
    assert core.encode() not in pickle.dumps(error)


def _ways(key: str) -> list[tuple[str, Callable[[], Any]]]:
    env = {"OPENAI_API_KEY": key}
    return [
        ("Deployment", lambda: Deployment("openai", "gpt-4o-mini", api_key=key)),
        (
            "Router dict",
            lambda: Router(deployments=[{"provider": "openai", "model": "m", "api_key": key}]),
        ),
        ("Router env", lambda: Router(deployments=["openai/gpt-4o-mini"], environ=env)),
        ("from_env", lambda: Router.from_env(environ=env)),
        ("APILoader keys", lambda: APILoader(api_keys={"openai": key}, environ={})),
        ("APILoader env", lambda: APILoader(provider="openai", environ=env)),
    ]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_key_with_a_control_or_non_ascii_character_is_refused_at_construction(key: str) -> None:
    for way, build in _ways(key):
        with pytest.raises(ConfigurationError, match="openai/") as caught:
            build()
        assert "API key" in str(caught.value), way
        _assert_hidden(caught.value, key)


def test_a_healthy_deployment_is_not_hidden_behind_a_bad_key_at_call_time() -> None:
    # Before: the bad key raised a bare ValueError per request (aiohttp) and the router never
    # reached the good deployment. Now the mistake surfaces once, when the router is built.
    with pytest.raises(ConfigurationError, match="openai/gpt-4o-mini"):
        Router(
            deployments=[
                Deployment("openai", "gpt-4o-mini", api_key="sk-good-key-but-newline\n"),
                Deployment("anthropic", "claude-haiku-4-5", api_key="sk-ant-good-0123456789"),
            ]
        )


def test_a_header_with_a_newline_is_refused_without_its_value() -> None:
    with pytest.raises(ConfigurationError, match="X-Team") as caught:
        Deployment("openai", "m", api_key="sk-fine", headers={"X-Team": "secret-team-id\n"})
    assert "secret-team-id" not in str(caught.value)


@pytest.mark.parametrize("key", ["sk-ok-0123456789", "a", "sk with spaces", "k\"'\\%=+/"])
def test_printable_ascii_keys_are_accepted(key: str) -> None:
    assert Deployment("openai", "m", api_key=key).api_key is not None
