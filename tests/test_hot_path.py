"""The request path's shortcuts give the same answers as the long way round.

Each shortcut (a memo, a fast parser, a special case) is checked against the general code
it stands in for, including the inputs that must fall back to it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal
from typing import Any

import httpx
import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict

from llmrouter_integrations.admission import RateLimits, RequestQueue
from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.costs.ledger import CostLedger, LedgerEntry, MemoryLedgerStore
from llmrouter_integrations.costs.tokens import estimate_input_tokens
from llmrouter_integrations.errors import ServerError
from llmrouter_integrations.layers.http import _encode_json, _parse_json
from llmrouter_integrations.providers._common import (
    int_or_none,
    lowercase_view,
    parse_duration,
)
from llmrouter_integrations.providers._json import load_json
from llmrouter_integrations.routing.catalog import ModelInfo
from llmrouter_integrations.routing.health import BreakerPolicy, DeploymentHealth, HealthTracker
from llmrouter_integrations.routing.strategies import BalancedStrategy, Candidate
from llmrouter_integrations.types import ChatRequest, Deployment, Message, ToolSpec


def model_info(quality: float | None, *, speed: float | None = None) -> ModelInfo:
    return ModelInfo(
        context_window=128_000,
        max_output_tokens=16_384,
        tools=True,
        vision=False,
        json_schema=True,
        reasoning=False,
        quality=quality,
        output_tokens_per_s=speed,
        ttft_s=None,
    )


def ask(*texts: str) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text) for text in texts])


# -- the token estimate, kept on the request ---------------------------------------------------


def test_token_estimate_is_redone_when_the_conversation_grows() -> None:
    request = ask("hello")
    first = estimate_input_tokens(request)
    assert estimate_input_tokens(request) == first
    request.messages.append(Message(role="user", content="and a much longer follow-up question"))
    fresh = ChatRequest(messages=list(request.messages))
    assert estimate_input_tokens(request) == estimate_input_tokens(fresh) > first


def test_token_estimate_is_redone_when_tools_or_messages_are_replaced() -> None:
    request = ask("hello")
    before = estimate_input_tokens(request)
    request.tools = [ToolSpec(name="lookup", description="find a record by a long key")]
    with_tools = estimate_input_tokens(request)
    assert with_tools > before
    request.messages = [Message(role="user", content="hi")]
    assert estimate_input_tokens(request) < with_tools


def test_the_memo_is_invisible_in_equality_repr_and_copies() -> None:
    request = ask("hello")
    estimate_input_tokens(request)
    assert request == ask("hello")
    assert "_token_estimate" not in repr(request)
    copy = dataclasses.replace(request, max_tokens=5)
    copy.messages = [Message(role="user", content="something else entirely, and longer")]
    assert estimate_input_tokens(copy) != estimate_input_tokens(request)


# -- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        CIMultiDictProxy(CIMultiDict({"X-RateLimit-Remaining-Requests": "7"})),
        CIMultiDict({"X-RateLimit-Remaining-Requests": "7"}),
        httpx.Headers({"X-RateLimit-Remaining-Requests": "7"}),
        MultiDict({"X-RateLimit-Remaining-Requests": "7"}),  # case-sensitive: copied
        {"X-RateLimit-Remaining-Requests": "7"},
    ],
)
def test_lowercase_view_reads_any_header_mapping_by_lower_case_name(headers: Any) -> None:
    assert lowercase_view(headers).get("x-ratelimit-remaining-requests") == "7"


def test_header_numbers_and_durations() -> None:
    assert [parse_duration("6m0s"), parse_duration("6m0s"), parse_duration(" 120ms ")] == [
        360.0,
        360.0,
        0.12,
    ]
    assert parse_duration("soon") is None and parse_duration("") is None
    assert [int_or_none(v) for v in ("42", " 42 ", "42.9", "1e3", "inf", "nan", "x")] == [
        42,
        42,
        42,
        1000,
        None,
        None,
        None,
    ]


# -- JSON in and out ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "x", "choices": [{"message": {"content": "\\u00e9 \xc3\xa9"}}]}',
        b'  {"a": 1}\n',
        b'{"a": 1}\r\n\t ',
        b"[1, 2.5, null, true]",
        '{"a": "é"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"a": 1}',
        b'{"big": 123456789012345678901234567890, "f": 1e400, "n": NaN}',
    ],
)
def test_reply_parsing_matches_json_loads(body: bytes) -> None:
    expected = json.loads(body)
    parsed = _parse_json(body)
    assert json.dumps(parsed) == json.dumps(expected)


@pytest.mark.parametrize("body", [b'{"a": 1} trailing', b'{"a": 1}\x0c', b"", b"{bad", b"\xff\xfe"])
def test_reply_parsing_fails_like_json_loads(body: bytes) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(body)
    with pytest.raises(ValueError) as got:
        _parse_json(body)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)


@pytest.mark.parametrize(
    "text",
    [
        '{"choices":[{"delta":{"content":"\\u00e9 é \\ud83d\\ude00"}}]}',
        '  {"a": 1}',
        '{"a": 1}\r\n\t ',
        "[1, 2.5, null, true]",
        '"just a string"',
        '{"big": 123456789012345678901234567890, "f": 1e400, "n": NaN, "i": -Infinity}',
    ],
)
def test_stream_event_parsing_matches_json_loads(text: str) -> None:
    assert json.dumps(load_json(text)) == json.dumps(json.loads(text))


@pytest.mark.parametrize(
    "text", ['{"a": 1} trailing', '{"a": 1}\x0c', "", "{bad", '\ufeff{"a": 1}', '{"a": "\x01"}']
)
def test_stream_event_parsing_fails_like_json_loads(text: str) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        load_json(text)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)


def test_request_bodies_match_the_standard_encoder() -> None:
    standard = json.JSONEncoder(separators=(",", ":")).encode
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": 'héllo \u2028 "quoted" \n 🙂'}],
        "temperature": 0.1,
        "max_tokens": 2**70,
        "stop": None,
        "flags": [True, False, -0.0, 1e-9, math.inf, math.nan],
        "nested": {"a": {"b": [[]]}},
    }
    assert _encode_json(body) == standard(body)


def test_request_bodies_that_cannot_be_encoded_raise_the_standard_errors() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        _encode_json({"price": Decimal("0.1")})
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match="Circular reference"):
        _encode_json(circular)
    assert _encode_json({"after": "errors"}) == '{"after":"errors"}'


# -- ranking a single candidate ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "quality", "latency_s"),
    [
        (Decimal("0.0002"), 0.8, 0.4),
        (None, None, None),
        (Decimal("0"), 0.5, None),
        (None, 0.9, 2.0),
    ],
)
def test_one_candidate_scores_like_the_general_min_max(
    cost: Decimal | None, quality: float | None, latency_s: float | None
) -> None:
    strategy = BalancedStrategy(weights={"cost": 2, "quality": 1, "latency": 0.5})
    record = DeploymentHealth(latency_s=latency_s, latency_samples=1 if latency_s else 0)
    record.recent_error_rate = 0.25
    info = model_info(quality, speed=50.0 if quality == 0.5 else None)
    request = ask("hi")

    def candidate(name: str) -> Candidate:
        deployment = Deployment(provider="openai", model="gpt-4o-mini", name=name)
        return Candidate(deployment, info, cost, 10)

    alone = strategy.rank(request, [candidate("a")], {"a": record})
    # Two identical candidates take the general path and must score exactly alike.
    twins = strategy.rank(request, [candidate("a"), candidate("b")], {"a": record, "b": record})
    assert alone[0].score == twins[0].score == twins[1].score
    assert alone[0].score_parts == twins[0].score_parts
    assert list(alone[0].score_parts) == list(twins[0].score_parts)


def test_one_candidate_with_a_nan_quality_scores_nan_as_min_max_does() -> None:
    info = model_info(math.nan)
    deployment = Deployment(provider="openai", model="gpt-4o-mini")
    ranked = BalancedStrategy().rank(ask("hi"), [Candidate(deployment, info, None, 10)], {})
    assert math.isnan(ranked[0].score_parts["quality"]) and math.isnan(ranked[0].score or 0.0)


# -- breaker error rate, kept as outcomes come and go ---------------------------------------------


def test_error_rate_over_the_window_stays_exact_as_old_outcomes_leave() -> None:
    policy = BreakerPolicy(window=5, failure_threshold=100, min_calls=100)
    tracker = HealthTracker(["a"], policy=policy, clock=ManualClock())
    pattern = [True, False, True, True, False, False, False, True, False, True, True, True]
    for position, failed in enumerate(pattern, 1):
        if failed:
            tracker.record_failure("a", ServerError("boom", status_code=500))
        else:
            tracker.record_success("a", latency_s=0.1)
        window = pattern[max(0, position - 5) : position]
        assert tracker.snapshot()["a"].error_rate == sum(window) / len(window)


# -- the memory ledger, counting in batches -------------------------------------------------------


def row(cost: str, when: float = 1.8e9) -> LedgerEntry:
    return LedgerEntry(
        time=when, deployment="d", provider="openai", model="m", cost=Decimal(cost), input_tokens=3
    )


def test_every_read_sees_every_row_even_between_batches() -> None:
    ledger = CostLedger(MemoryLedgerStore(max_entries=5))
    for count in range(1, 80):
        ledger.record(row("0.001"))
        assert ledger.requests == count
        assert ledger.total == Decimal("0.001") * count
        assert len(ledger.entries()) == min(count, 5)
    assert ledger.by_provider()["openai"].input_tokens == 3 * 79


# -- the queue's no-wait grant ---------------------------------------------------------------------


async def test_try_grant_gives_capacity_at_once_only_when_nobody_waits() -> None:
    clock = ManualClock()
    limits = RateLimits(
        [Deployment(provider="openai", model="gpt-4o-mini", name="a", max_concurrency=1)],
        clock=clock,
    )
    queue = RequestQueue(limits, clock=clock, max_wait=5)
    grant = queue.try_grant(["a"], 10)
    assert grant is not None and grant.deployment == "a"
    assert queue.try_grant(["a"], 10) is None  # the first grant still holds the only slot
    queue.settle(grant)
    permit = limits.try_acquire("a", 10)
    assert permit is not None
    assert queue.try_grant(["a"], 10) is None  # the slot is taken for real now
    limits.release(permit)
    assert queue.try_grant(["a"], 10) is not None
