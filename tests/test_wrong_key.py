"""A wrong API key is caught with one `except AuthenticationError`, however many deployments,
through the Router, ChatLLMRouter and LLMRouter alike, against the loopback fake."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    AuthenticationError,
    Deployment,
    RetryPolicy,
    Router,
)
from llmrouter_integrations.errors import ServerError
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

GOOD = "sk-test-good-key-0123456789"
WRONG = "sk-test-wrong-key-9876543210"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[GOOD]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()


def deployments(fake: FakeProviderServer, count: int, key: str = WRONG) -> list[Deployment]:
    models = ["gpt-4o-mini", "gpt-4o", "claude-haiku-4-5"][:count]
    return [
        Deployment("anthropic", m, api_key=key, base_url=fake.anthropic_base_url)
        if m.startswith("claude")
        else Deployment("openai", m, api_key=key, base_url=fake.openai_base_url)
        for m in models
    ]


def _router(fake: FakeProviderServer, count: int) -> Router:
    return Router(
        strategy="priority", deployments=deployments(fake, count), retry=RetryPolicy(max_attempts=1)
    )


def _via_router(fake: FakeProviderServer, count: int) -> None:
    with _router(fake, count) as router:
        router.complete("hi")


def _via_langchain(fake: FakeProviderServer, count: int) -> None:
    from llmrouter_integrations.langchain import ChatLLMRouter

    model = ChatLLMRouter(strategy="priority", deployments=deployments(fake, count), max_retries=0)
    try:
        model.invoke("hi")
    finally:
        model.close()


def _via_llama_index(fake: FakeProviderServer, count: int) -> None:
    from llama_index.core.llms import ChatMessage

    from llmrouter_integrations.llama_index import LLMRouter

    with _router(fake, count) as router:
        LLMRouter(router=router).chat([ChatMessage(role="user", content="hi")])


CALLERS: dict[str, Callable[[FakeProviderServer, int], None]] = {
    "router": _via_router,
    "langchain": _via_langchain,
    "llama_index": _via_llama_index,
}


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_one_except_catches_a_wrong_key(fake: FakeProviderServer, caller: str, count: int) -> None:
    with pytest.raises(AuthenticationError) as caught:
        CALLERS[caller](fake, count)
    error: Any = caught.value
    # Still the documented error for "every deployment failed", with every attempt.
    assert isinstance(error, AllDeploymentsFailedError)
    assert len(error.exceptions) == count
    assert all(isinstance(e, AuthenticationError) for e in error.exceptions)
    assert error.status_code == 401 and error.deployment == error.exceptions[-1].deployment
    assert WRONG not in str(error) and WRONG not in repr(error)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, AuthenticationError) and isinstance(copy, AllDeploymentsFailedError)


def test_mixed_causes_are_not_one_kind(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o", ModelBehavior(permanent_error=500))
    healthy_but_down = Deployment("openai", "gpt-4o", api_key=GOOD, base_url=fake.openai_base_url)
    broken = [*deployments(fake, 1), healthy_but_down]
    router = Router(strategy="priority", deployments=broken, retry=RetryPolicy(max_attempts=1))
    with router, pytest.raises(AllDeploymentsFailedError) as caught:
        router.complete("hi")
    assert not isinstance(caught.value, AuthenticationError)
    # The group still hands each kind out: `except*` or subgroup picks the wrong key.
    picked = caught.value.subgroup(AuthenticationError)
    assert picked is not None and len(picked.exceptions) == 1
    assert isinstance(caught.value.exceptions[1], ServerError)
