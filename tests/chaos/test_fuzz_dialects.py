"""Property-based fuzzing of both dialects: replies, error bodies and streams that are mutated
or plain garbage give an answer or an error of our tree, never another exception; a valid
stream split anywhere gives the same chunks as one feed; time stays linear in the events."""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from llmrouter_integrations.errors import ProviderError, ProviderStatusError
from llmrouter_integrations.providers.anthropic_messages import ANTHROPIC_MESSAGES
from llmrouter_integrations.providers.base import Dialect
from llmrouter_integrations.providers.openai_chat import OPENAI_CHAT
from llmrouter_integrations.transport.sse import SSEDecoder, SSEEvent
from llmrouter_integrations.types import ChatChunk

# CI runs a fixed set of cases; FUZZ_EXPLORE=1 FUZZ_EXAMPLES=5000 explores new ones locally.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "250")),
    deadline=None,
    derandomize=not os.environ.get("FUZZ_EXPLORE"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DIALECTS: dict[str, Dialect] = {"openai": OPENAI_CHAT, "anthropic": ANTHROPIC_MESSAGES}

# JSON values with the numbers that break naive code: huge, negative, infinite, NaN.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)

OPENAI_REPLY: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "hi",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "total_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
ANTHROPIC_REPLY: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
    ],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 0},
}
REPLIES = {"openai": OPENAI_REPLY, "anthropic": ANTHROPIC_REPLY}


def openai_events(texts: list[str], arguments: list[str]) -> list[str]:
    base = {"id": "c1", "model": "m"}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": t}}]} for t in texts]
    if arguments:
        opening = {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "f", "arguments": ""},
        }
        out.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [opening]}}]})
        for piece in arguments:
            fragment = {"index": 0, "function": {"arguments": piece}}
            out.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})
    finish = "tool_calls" if arguments else "stop"
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    out.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )
    return [f"data: {json.dumps(event)}\n\n" for event in out] + ["data: [DONE]\n\n"]


def anthropic_events(texts: list[str], arguments: list[str]) -> list[str]:
    def event(name: str, body: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **body})}\n\n"

    message = {
        "id": "m1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    out = [event("message_start", {"message": message})]
    out.append(
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    )
    out += [
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": t}})
        for t in texts
    ]
    out.append(event("content_block_stop", {"index": 0}))
    if arguments:
        block = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
        out.append(event("content_block_start", {"index": 1, "content_block": block}))
        out += [
            event(
                "content_block_delta",
                {"index": 1, "delta": {"type": "input_json_delta", "partial_json": p}},
            )
            for p in arguments
        ]
        out.append(event("content_block_stop", {"index": 1}))
    stop = "tool_use" if arguments else "end_turn"
    out.append(
        event("message_delta", {"delta": {"stop_reason": stop}, "usage": {"output_tokens": 2}})
    )
    out.append(event("message_stop", {}))
    return out


STREAMS: dict[str, Callable[[list[str], list[str]], list[str]]] = {
    "openai": openai_events,
    "anthropic": anthropic_events,
}


def run_stream(dialect: Dialect, pieces: list[bytes]) -> list[ChatChunk]:
    """Decode and parse a stream; only errors of our tree may come out."""
    state = dialect.new_stream_state(model="m")
    decoder = SSEDecoder()
    chunks: list[ChatChunk] = []
    for piece in pieces:
        for event in decoder.feed(piece):
            chunks += state.feed(event)
    for event in decoder.flush():
        chunks += state.feed(event)
    chunks.append(state.finish())
    return chunks


def comparable(chunks: list[ChatChunk]) -> list[Any]:
    return [
        (
            c.text,
            [(d.index, d.id, d.name, d.arguments) for d in c.tool_call_deltas],
            c.finish_reason,
            c.usage,
            c.is_final,
        )
        for c in chunks
    ]


def mutate(value: Any, path: list[int], replacement: Any) -> Any:
    """`value` with the node picked by `path` (indices into children) replaced."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return replacement
    if isinstance(value, dict):
        keys = list(value)
        key = keys[path[0] % len(keys)]
        return {**value, key: mutate(value[key], path[1:], replacement)}
    position = path[0] % len(value)
    copy = list(value)
    copy[position] = mutate(copy[position], path[1:], replacement)
    return copy


def only_our_errors(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ProviderError:
        return None  # an error of our tree: exactly what is allowed
    # Anything else propagates and fails the property with its own traceback.


@pytest.mark.parametrize("name", list(DIALECTS))
@FUZZ
@given(path=st.lists(st.integers(min_value=0, max_value=50), max_size=6), replacement=_json)
@example(path=[48, 0, 1, 2], replacement=True)  # found: tool_calls=true, a bare TypeError
def test_a_mutated_reply_gives_an_answer_or_our_error(
    name: str, path: list[int], replacement: Any
) -> None:
    body = mutate(REPLIES[name], path, replacement)
    only_our_errors(lambda: DIALECTS[name].parse_response(body))
    # The same bytes as the HTTP layer sees them (Infinity/NaN are valid to Python's json).
    only_our_errors(lambda: DIALECTS[name].parse_response(json.loads(json.dumps(body))))


@pytest.mark.parametrize("name", list(DIALECTS))
@FUZZ
@given(body=_json)
def test_any_json_reply_gives_an_answer_or_our_error(name: str, body: Any) -> None:
    only_our_errors(lambda: DIALECTS[name].parse_response(body))


@pytest.mark.parametrize("name", list(DIALECTS))
@FUZZ
@given(
    status=st.integers(min_value=100, max_value=999),
    body=st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode()),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "retry-after",
                "retry-after-ms",
                "x-should-retry",
                "date",
                "x-ratelimit-reset-requests",
                "anthropic-ratelimit-requests-reset",
                "x-ratelimit-limit-tokens",
            ]
        ),
        st.text(max_size=30),
        max_size=4,
    ),
)
def test_any_error_body_maps_to_one_of_our_errors(
    name: str, status: int, body: bytes, headers: dict[str, str]
) -> None:
    dialect = DIALECTS[name]
    error = dialect.parse_error(status, body, headers)
    assert isinstance(error, ProviderStatusError)
    str(error), repr(error)
    dialect.parse_rate_limits(headers)


@pytest.mark.parametrize("name", list(DIALECTS))
@FUZZ
@given(
    texts=st.lists(st.text(max_size=12), max_size=5),
    arguments=st.lists(st.text(alphabet='{}":a1 ,[]', max_size=6), max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=5_000), max_size=10),
)
def test_any_split_of_a_valid_stream_gives_the_chunks_of_one_feed(
    name: str, texts: list[str], arguments: list[str], cuts: list[int]
) -> None:
    data = "".join(STREAMS[name](texts, arguments)).encode()
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    whole = run_stream(DIALECTS[name], [data])
    assert "".join(c.text for c in whole) == "".join(texts)
    assert comparable(run_stream(DIALECTS[name], pieces)) == comparable(whole)


@pytest.mark.parametrize("name", list(DIALECTS))
@FUZZ
@given(
    texts=st.lists(st.text(max_size=8), max_size=4),
    position=st.integers(min_value=0, max_value=40),
    path=st.lists(st.integers(min_value=0, max_value=20), max_size=5),
    replacement=_json,
    event_name=st.sampled_from([None, "error", "message_delta", "ping", "\x00"]),
)
@example(texts=[], position=0, path=[2], replacement=True, event_name=None)  # found: choices=true
@example(texts=["", "", ""], position=40, path=[1], replacement=[], event_name=None)  # found
def test_a_mutated_stream_event_gives_chunks_or_our_error(
    name: str,
    texts: list[str],
    position: int,
    path: list[int],
    replacement: Any,
    event_name: str | None,
) -> None:
    events = STREAMS[name](texts, ["{}"])
    index = position % len(events)
    head, _, data = events[index].rpartition("data: ")
    try:
        payload = json.loads(data)
    except ValueError:
        payload = data.strip()
    mutated = mutate(payload, path, replacement)
    prefix = f"event: {event_name}\n" if event_name is not None else head
    events[index] = f"{prefix}data: {json.dumps(mutated)}\n\n"
    only_our_errors(lambda: run_stream(DIALECTS[name], ["".join(events).encode()]))


@pytest.mark.parametrize("name", list(DIALECTS))
@FUZZ
@given(
    events=st.lists(
        st.builds(
            SSEEvent,
            event=st.sampled_from(
                [
                    "message",
                    "error",
                    "message_start",
                    "content_block_delta",
                    "message_delta",
                    "message_stop",
                    "ping",
                ]
            ),
            data=st.text(max_size=60) | _json.map(json.dumps) | st.just("[DONE]"),
        ),
        max_size=12,
    )
)
def test_garbage_events_give_chunks_or_our_error(name: str, events: list[SSEEvent]) -> None:
    def run() -> None:
        state = DIALECTS[name].new_stream_state(model="m")
        for event in events:
            state.feed(event)
        state.finish()

    only_our_errors(run)


def _cpu_time(function: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            function()
            best = min(best, time.process_time() - started)
        finally:
            gc.enable()
    return best


@pytest.mark.parametrize("name", list(DIALECTS))
def test_stream_parsing_takes_linear_time_in_the_events(name: str) -> None:
    # 8x the events (text deltas and tool-argument fragments) must cost about 8x, not 64x.
    def data(n: int) -> bytes:
        return "".join(STREAMS[name](["tok "] * n, ['{"a": "', *["x"] * n, '"}'])).encode()

    small_data, large_data = data(1_000), data(8_000)
    small = _cpu_time(lambda: run_stream(DIALECTS[name], [small_data]))
    large = _cpu_time(lambda: run_stream(DIALECTS[name], [large_data]))
    assert large / max(small, 1e-4) < 32, (small, large)
