"""Fallback order, which errors fall through, and what AllDeploymentsFailedError holds."""

from __future__ import annotations

import pytest

from llmrouter_integrations import ManualClock
from llmrouter_integrations.core.events import EventHub, RouterEvent
from llmrouter_integrations.errors import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ContextWindowExceededError,
    NoDeploymentAvailableError,
    NotFoundError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
)
from llmrouter_integrations.layers.fallback import FallbackBackend, make_fallback_predicate
from llmrouter_integrations.routing.planner import PriorityPlanner
from llmrouter_integrations.testing import ScriptedBackend, ScriptedStep
from llmrouter_integrations.types import ChatRequest, Message


def request(**fields: object) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")], **fields)  # type: ignore[arg-type]


def chain(*scripts: list[object], events: EventHub | None = None, **kwargs: object):
    clock = ManualClock()
    backends = {
        name: ScriptedBackend(name, script, clock=clock)  # type: ignore[arg-type]
        for name, script in zip("abc", scripts, strict=False)
    }
    fallback = FallbackBackend(
        backends,
        planner=PriorityPlanner(list(backends)),
        clock=clock,
        events=events,
        **kwargs,  # type: ignore[arg-type]
    )
    return backends, fallback


@pytest.mark.parametrize(
    "error",
    [
        RateLimitError("slow", status_code=429),
        ServerError("boom", status_code=500),
        ProviderConnectionError("refused"),
        AuthenticationError("bad key", status_code=401),
        NotFoundError("no such model", status_code=404),
        ContextWindowExceededError("too long", status_code=400),
        CircuitOpenError("resting"),
    ],
)
async def test_falls_back_on_transient_and_deployment_errors(error: Exception) -> None:
    backends, fallback = chain([error], ["from b"])
    response = await fallback.chat(request())
    assert response.text == "from b" and response.deployment == "b"
    assert [a.deployment for a in response.attempts] == ["a"]
    assert response.attempts[0].error is error


async def test_invalid_request_is_raised_at_once_with_provider_message() -> None:
    bad = BadRequestError("messages: field required", status_code=400)
    backends, fallback = chain([bad], ["from b"])
    with pytest.raises(BadRequestError, match="messages: field required"):
        await fallback.chat(request())
    assert backends["b"].calls == []


async def test_all_failed_lists_every_attempt_in_order() -> None:
    errors = [ServerError("a down", status_code=500), RateLimitError("b busy", status_code=429)]
    _, fallback = chain([errors[0]], [errors[1]])
    with pytest.raises(AllDeploymentsFailedError) as caught:
        await fallback.chat(request())
    failure = caught.value
    assert [a.deployment for a in failure.attempts] == ["a", "b"]
    assert list(failure.exceptions) == errors
    assert "a down" in str(failure) and "b busy" in str(failure)
    # it is an ExceptionGroup too
    assert failure.subgroup(RateLimitError).exceptions == (errors[1],)  # type: ignore[union-attr]


async def test_budget_refusals_everywhere_raise_budget_error() -> None:
    refusal = BudgetExceededError("over", limit_usd=1, spent_usd=1, needed_usd=0.1)
    _, fallback = chain([refusal], [refusal])
    with pytest.raises(BudgetExceededError):
        await fallback.chat(request())


async def test_request_can_restrict_deployments() -> None:
    backends, fallback = chain(["from a"], ["from b"])
    response = await fallback.chat(request(deployments=("b",)))
    assert response.deployment == "b" and backends["a"].calls == []
    with pytest.raises(NoDeploymentAvailableError, match="not in deployments"):
        await fallback.chat(request(deployments=("zzz",)))


async def test_fallback_on_types_replaces_default() -> None:
    predicate = make_fallback_predicate([RateLimitError])
    _, fallback = chain(
        [ServerError("boom", status_code=500)], ["from b"], should_fallback=predicate
    )
    with pytest.raises(ServerError):
        await fallback.chat(request())


async def test_fallback_events() -> None:
    seen: list[RouterEvent] = []
    _, fallback = chain(
        [ServerError("boom", status_code=500)], ["ok"], events=EventHub([seen.append])
    )
    await fallback.chat(request())
    assert [(e.type, e.deployment, e.data["to"]) for e in seen] == [("fallback", "a", "b")]


async def test_deadline_stops_fallback() -> None:
    clock = ManualClock()
    slow = ScriptedStep(error=ServerError("slow failure", status_code=500), delay_s=10)
    a = ScriptedBackend("a", [slow], clock=clock)
    b = ScriptedBackend("b", ["ok"], clock=clock)
    fallback = FallbackBackend({"a": a, "b": b}, planner=PriorityPlanner(["a", "b"]), clock=clock)
    with pytest.raises(AllDeploymentsFailedError, match="timed out"):
        await fallback.chat(request(deadline=5.0))
    assert b.calls == []


async def test_stream_falls_back_before_first_chunk() -> None:
    backends, fallback = chain([ProviderConnectionError("refused")], ["streamed from b"])
    chunks = [c async for c in fallback.stream(request())]
    assert "".join(c.text for c in chunks) == "streamed from b"
    assert chunks[-1].is_final and chunks[-1].deployment == "b"
    assert [a.deployment for a in chunks[-1].attempts] == ["a"]


async def test_stream_broken_after_content_raises_never_truncates() -> None:
    broken = ScriptedStep(
        text="one two three four",
        chunks=4,
        fail_after_chunks=1,
        error=ProviderConnectionError("cut"),
    )
    backends, fallback = chain([broken], ["never used"])
    seen: list[str] = []
    with pytest.raises(ProviderConnectionError, match="cut"):
        async for chunk in fallback.stream(request()):
            seen.append(chunk.text)
    assert seen == ["one"]
    assert backends["b"].calls == []
