"""The Anthropic Messages dialect: bodies, replies and streams."""

from __future__ import annotations

import json
from typing import Any

import pytest
from wire_fixtures import (
    ANTHROPIC_ERROR_EVENT,
    ANTHROPIC_TEXT_STREAM,
    ANTHROPIC_TOOL_STREAM,
    joined_tool_calls,
    pieces_at,
    run_stream,
    two_way_splits,
)

from llmrouter_integrations.errors import (
    ContextWindowExceededError,
    OverloadedError,
    ProviderStatusError,
    RateLimitError,
    ResponseDecodeError,
)
from llmrouter_integrations.providers.anthropic_messages import ANTHROPIC_MESSAGES
from llmrouter_integrations.providers.endpoints import get_endpoint
from llmrouter_integrations.types import (
    ChatRequest,
    ContentPart,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

ANTHROPIC = get_endpoint("anthropic")


def body_for(request: ChatRequest, *, stream: bool = False) -> Any:
    body = ANTHROPIC_MESSAGES.build_body(
        request, model="claude-haiku-4-5", stream=stream, endpoint=ANTHROPIC
    )
    json.dumps(body)
    return body


def event(kind: str, **payload: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n".encode()


def new_state() -> Any:
    return ANTHROPIC_MESSAGES.new_stream_state(model="claude-haiku-4-5")


# --- request bodies ------------------------------------------------------------------------


def test_headers() -> None:
    headers = ANTHROPIC_MESSAGES.build_headers("sk-ant-test", ANTHROPIC)
    assert headers["x-api-key"] == "sk-ant-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert "Authorization" not in headers
    assert "x-api-key" not in ANTHROPIC_MESSAGES.build_headers(None, ANTHROPIC)
    assert ANTHROPIC_MESSAGES.path == "/v1/messages"


def test_system_messages_go_top_level_and_max_tokens_defaults() -> None:
    body = body_for(
        ChatRequest(
            messages=[
                Message(role="system", content="Be terse."),
                Message(role="user", content="hi"),
                Message(role="system", content=[ContentPart(type="text", text="Use French.")]),
            ]
        )
    )
    assert body["system"] == "Be terse.\n\nUse French."
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["max_tokens"] == 4096
    assert body_for(ChatRequest(messages=[], max_tokens=10))["max_tokens"] == 10
    assert "system" not in body_for(ChatRequest(messages=[Message(role="user", content="x")]))


def test_tool_turns_consecutive_roles_merged_results_first() -> None:
    request = ChatRequest(
        messages=[
            Message(role="user", content="Weather in Paris and Rome?"),
            Message(role="user", content="Quickly."),
            Message(
                role="assistant",
                content="Checking.",
                tool_calls=[
                    ToolCall(id="toolu_1", name="get_weather", arguments={"city": "Paris"}),
                    ToolCall(id="toolu_2", name="get_weather", arguments={"city": "Rome"}),
                ],
            ),
            Message(role="tool", tool_call_id="toolu_1", content="18C"),
            Message(role="tool", tool_call_id="toolu_2", content="25C"),
            Message(role="user", content="And tomorrow?"),
        ]
    )
    user, assistant, results = body_for(request)["messages"]
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather in Paris and Rome?"},
            {"type": "text", "text": "Quickly."},
        ],
    }
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "25C"},
            {"type": "text", "text": "And tomorrow?"},
        ],
    }


def test_tool_results_are_moved_before_text_in_their_turn() -> None:
    request = ChatRequest(
        messages=[
            Message(role="assistant", tool_calls=[ToolCall("toolu_1", "f", {})]),
            Message(role="user", content="Here you go:"),
            Message(role="tool", tool_call_id="toolu_1", content=""),
        ]
    )
    turn = body_for(request)["messages"][1]
    assert [block["type"] for block in turn["content"]] == ["tool_result", "text"]
    assert "content" not in turn["content"][0]  # an empty result sends no content


def test_images_by_url_base64_and_data_url() -> None:
    parts = [
        ContentPart(type="text", text="Compare"),
        ContentPart(type="text", text=""),  # empty text blocks are refused by the API
        ContentPart(type="image", image_url="https://x.test/a.png"),
        ContentPart(type="image", data="R0lGODlh"),
        ContentPart(type="image", image_url="data:image/webp;base64,UklGRabc"),
    ]
    (message,) = body_for(ChatRequest(messages=[Message(role="user", content=parts)]))["messages"]
    assert message["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGODlh"},
        },
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRabc"},
        },
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "wire"),
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ("get_weather", None, {"type": "tool", "name": "get_weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
)
def test_tools_and_tool_choice(choice: str | None, parallel: bool | None, wire: Any) -> None:
    tool = ToolSpec(name="get_weather", description="Weather now", parameters={"type": "object"})
    body = body_for(
        ChatRequest(
            messages=[Message(role="user", content="hi")],
            tools=[tool],
            tool_choice=choice,
            parallel_tool_calls=parallel,
        )
    )
    assert body["tools"] == [
        {"name": "get_weather", "input_schema": {"type": "object"}, "description": "Weather now"}
    ]
    assert body.get("tool_choice") == wire


def test_options_stop_metadata_stream_and_extra_body() -> None:
    body = body_for(
        ChatRequest(
            messages=[Message(role="user", content="hi")],
            temperature=0.2,
            top_p=0.9,
            stop=["END"],
            user="user-42",
            seed=3,
            metadata={"team": "x"},
            extra_body={"top_k": 5, "metadata": {"user_id": "override"}},
        ),
        stream=True,
    )
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.2, 0.9, 5)
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "override"}
    assert body["stream"] is True
    assert "seed" not in body and "stop" not in body


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"t": {"type": "number"}}, "required": ["t"]}
    body = body_for(
        ChatRequest(
            messages=[Message(role="user", content="hi")],
            response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
        )
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    body = body_for(
        ChatRequest(
            messages=[
                Message(role="system", content="Be terse."),
                Message(role="user", content="hi"),
            ],
            response_format={"type": "json_object"},
        )
    )
    assert body["system"].startswith("Be terse.\n\n")
    assert "JSON object" in body["system"]
    assert "output_config" not in body


# --- non-streamed replies ------------------------------------------------------------------

REPLY = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "I'll check the weather."},
        {
            "type": "tool_use",
            "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
            "name": "get_weather",
            "input": {"location": "Paris"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 377,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 2000,
        "output_tokens": 65,
        "output_tokens_details": {"thinking_tokens": 20},
        "service_tier": "standard",
    },
}


def test_reply_with_text_tool_use_and_cache_usage() -> None:
    parsed = ANTHROPIC_MESSAGES.parse_response(REPLY)
    assert parsed.message.text == "I'll check the weather."
    assert parsed.message.tool_calls == [
        ToolCall("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", {"location": "Paris"})
    ]
    assert parsed.finish_reason == "tool_calls"
    assert parsed.usage == Usage(
        input_tokens=2477,
        output_tokens=65,
        total_tokens=2542,
        cached_input_tokens=2000,
        cache_write_tokens=100,
        reasoning_tokens=20,
    )
    assert (parsed.model, parsed.id) == ("claude-sonnet-4-6", "msg_013Zva2CMHLNnXjNJJKqJ2EF")


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(raw: str, mapped: str) -> None:
    reply = {**REPLY, "stop_reason": raw}
    assert ANTHROPIC_MESSAGES.parse_response(reply).finish_reason == mapped


def test_garbled_and_error_replies() -> None:
    bodies: list[Any] = [[], {"id": "x"}, {"content": ["text"]}]
    for body in bodies:
        with pytest.raises(ResponseDecodeError):
            ANTHROPIC_MESSAGES.parse_response(body)
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(OverloadedError, match="Overloaded"):
        ANTHROPIC_MESSAGES.parse_response(error)


# --- streams -------------------------------------------------------------------------------


def test_text_stream_at_every_split() -> None:
    for pieces in two_way_splits(ANTHROPIC_TEXT_STREAM):
        chunks, final = run_stream(new_state(), pieces)
        assert [c.text for c in chunks] == ["Hello", " there", "!"]
        assert final.is_final and final.finish_reason == "stop"
        assert final.usage == Usage(11, 6, 17)
        assert final.model == "claude-3-opus-latest"
        assert final.id == "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK"


def test_tool_stream_at_every_split() -> None:
    for pieces in two_way_splits(ANTHROPIC_TOOL_STREAM):
        chunks, final = run_stream(new_state(), pieces)
        assert "".join(c.text for c in chunks) == "I'll check the current weather in Paris for you."
        calls = joined_tool_calls(chunks)
        assert calls == {
            0: {
                "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
                "name": "get_weather",
                "arguments": '{"location": "Paris"}',
            }
        }
        assert json.loads(calls[0]["arguments"]) == {"location": "Paris"}
        assert final.finish_reason == "tool_calls"
        assert final.usage == Usage(377, 65, 442)


def test_parallel_tool_blocks_are_numbered_over_tool_blocks_only() -> None:
    start = {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 10, "output_tokens": 1}}
    data = b"".join(
        [
            event("message_start", message=start),
            event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Both."}),
            event("content_block_stop", index=0),
            event(
                "content_block_start",
                index=1,
                content_block={"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}},
            ),
            event(
                "content_block_delta",
                index=1,
                delta={"type": "input_json_delta", "partial_json": '{"x": '},
            ),
            event(
                "content_block_start",
                index=2,
                content_block={"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}},
            ),
            event(
                "content_block_delta",
                index=2,
                delta={"type": "input_json_delta", "partial_json": "{}"},
            ),
            event(
                "content_block_delta",
                index=1,
                delta={"type": "input_json_delta", "partial_json": "1}"},
            ),
            event("ping"),
            event("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 30}),
            event("message_stop"),
        ]
    )
    chunks, final = run_stream(new_state(), pieces_at(data, range(0, len(data), 13)))
    assert joined_tool_calls(chunks) == {
        0: {"id": "toolu_a", "name": "f", "arguments": '{"x": 1}'},
        1: {"id": "toolu_b", "name": "g", "arguments": "{}"},
    }
    assert final.usage == Usage(10, 30, 40)


def test_usage_is_a_running_total_last_value_wins() -> None:
    start = {
        "id": "msg_1",
        "model": "claude-x",
        "usage": {
            "input_tokens": 29,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 50,
            "output_tokens": 1,
        },
    }
    data = b"".join(
        [
            event("message_start", message=start),
            event("message_delta", delta={"stop_reason": None}, usage={"output_tokens": 5}),
            event(
                "message_delta",
                delta={"stop_reason": "end_turn"},
                usage={"output_tokens": 12, "cache_read_input_tokens": 120},
            ),
            event("message_stop"),
        ]
    )
    _, final = run_stream(new_state(), [data])
    assert final.usage == Usage(
        input_tokens=29 + 120 + 50,
        output_tokens=12,
        total_tokens=211,
        cached_input_tokens=120,
        cache_write_tokens=50,
    )


def test_thinking_deltas_refusal_and_unknown_events() -> None:
    data = b"".join(
        [
            event(
                "message_start",
                message={"id": "m", "model": "c", "usage": {"input_tokens": 3, "output_tokens": 0}},
            ),
            event(
                "content_block_start",
                index=0,
                content_block={"type": "thinking", "thinking": "", "signature": ""},
            ),
            event(
                "content_block_delta",
                index=0,
                delta={"type": "thinking_delta", "thinking": "Let me see"},
            ),
            event(
                "content_block_delta",
                index=0,
                delta={"type": "signature_delta", "signature": "abc"},
            ),
            event("brand_new_event", whatever=1),
            event(
                "message_delta",
                delta={"stop_reason": "refusal", "stop_details": {"type": "refusal"}},
                usage={"output_tokens": 0},
            ),
            event("message_stop"),
        ]
    )
    chunks, final = run_stream(new_state(), [data])
    assert [c.reasoning for c in chunks] == ["Let me see"]
    assert final.finish_reason == "content_filter"


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (ANTHROPIC_ERROR_EVENT, OverloadedError, "Overloaded"),
        (
            event("error", error={"type": "rate_limit_error", "message": "Slow down"}),
            RateLimitError,
            "Slow down",
        ),
        (
            event(
                "error",
                error={"type": "invalid_request_error", "message": "prompt is too long: 1 > 0"},
            ),
            ContextWindowExceededError,
            "prompt is too long",
        ),
    ],
)
def test_error_events_raise_the_mapped_error(
    data: bytes, error: type[ProviderStatusError], message: str
) -> None:
    head = ANTHROPIC_TEXT_STREAM.split(b"event: content_block_stop")[0]
    with pytest.raises(error, match=message) as caught:
        run_stream(new_state(), [head + data])
    assert caught.value.model == "claude-3-opus-latest"


def test_truncated_stream_raises_in_finish() -> None:
    cut = ANTHROPIC_TOOL_STREAM.split(b"event: message_stop")[0]
    state = new_state()
    with pytest.raises(ResponseDecodeError, match="stream ended before message_stop"):
        run_stream(state, [cut])
    assert not state.done


def test_input_json_for_a_text_block_is_a_decode_error() -> None:
    data = event(
        "content_block_delta", index=0, delta={"type": "input_json_delta", "partial_json": "{"}
    )
    with pytest.raises(ResponseDecodeError):
        run_stream(new_state(), [data])
