"""The OpenAI chat-completions dialect: bodies, replies, streams, errors and rate-limit headers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from wire_fixtures import (
    GROQ_FINAL_CHUNK,
    OPENAI_ERROR_EVENT,
    OPENAI_TEXT_STREAM,
    OPENAI_TOOL_STREAM,
    OPENROUTER_ERROR_CHUNK,
    joined_tool_calls,
    pieces_at,
    run_stream,
    two_way_splits,
)

from llmrouter_integrations.errors import (
    ContextWindowExceededError,
    ProviderStatusError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from llmrouter_integrations.providers.endpoints import get_endpoint
from llmrouter_integrations.providers.openai_chat import OPENAI_CHAT
from llmrouter_integrations.types import (
    ChatRequest,
    ContentPart,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

OPENAI = get_endpoint("openai")
COMPATIBLE = get_endpoint("openai_compatible")  # no quirks: the plain dialect


def body_for(request: ChatRequest, *, endpoint: Any = COMPATIBLE, stream: bool = False) -> Any:
    body = OPENAI_CHAT.build_body(request, model="m", stream=stream, endpoint=endpoint)
    json.dumps(body)  # whatever we build must be sendable
    return body


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    payload = {
        "id": "chatcmpl-1",
        "model": "served-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


# --- request bodies ------------------------------------------------------------------------


def test_messages_of_every_role_are_sent_in_openai_shape() -> None:
    request = ChatRequest(
        messages=[
            Message(role="system", content="Be terse."),
            Message(
                role="user",
                content=[
                    ContentPart(type="text", text="What is this?"),
                    ContentPart(type="image", image_url="https://x.test/cat.png", detail="low"),
                    ContentPart(type="image", data="iVBORw0KGgoAAA"),
                    ContentPart(type="image", data="/9j/4AAQ", media_type="image/jpeg"),
                ],
            ),
            Message(
                role="assistant",
                tool_calls=[ToolCall(id="call_1", name="look", arguments={"q": "cat"})],
            ),
            Message(role="tool", tool_call_id="call_1", content='{"animal": "cat"}'),
            Message(role="user", content=[ContentPart(type="text", text="Thanks")]),
        ]
    )
    system, user, assistant, tool, last = body_for(request)["messages"]
    assert body_for(request, endpoint=get_endpoint("openai"))["messages"][2]["content"] is None
    assert system == {"role": "system", "content": "Be terse."}
    assert user["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAA"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
    ]
    # A tool-call-only turn: "" for compatible servers (llama.cpp and Ollama refuse null),
    # null for OpenAI itself (tested below).
    assert assistant == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "look", "arguments": '{"q": "cat"}'},
            }
        ],
    }
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": '{"animal": "cat"}'}
    assert last == {"role": "user", "content": "Thanks"}  # text-only parts go as one string


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tools_and_every_tool_choice(choice: str, wire: Any) -> None:
    tool = ToolSpec(
        name="get_weather",
        description="Weather now",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        strict=True,
    )
    body = body_for(
        ChatRequest(messages=[Message(role="user", content="hi")], tools=[tool], tool_choice=choice)
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "description": "Weather now",
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == wire


def test_options_are_passed_and_metadata_is_not() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}}
    request = ChatRequest(
        messages=[Message(role="user", content="hi")],
        max_tokens=100,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        seed=7,
        user="u-1",
        response_format=schema,
        metadata={"team": "a"},
        tools=[ToolSpec(name="t")],
        parallel_tool_calls=False,
    )
    body = body_for(request)
    assert body["model"] == "m"
    assert body["max_tokens"] == 100
    assert (body["temperature"], body["top_p"], body["seed"], body["user"]) == (0.2, 0.9, 7, "u-1")
    assert body["stop"] == ["END"]
    assert body["response_format"] == schema
    assert body["parallel_tool_calls"] is False
    assert "metadata" not in body and "stream" not in body
    json_object = body_for(ChatRequest(messages=[], response_format={"type": "json_object"}))
    assert json_object["response_format"] == {"type": "json_object"}


def test_streaming_always_asks_for_usage_and_extra_body_is_merged_last() -> None:
    request = ChatRequest(
        messages=[Message(role="user", content="hi")],
        temperature=0.5,
        extra_body={"temperature": 0.1, "stream_options": {"include_obfuscation": False}},
    )
    body = body_for(request, stream=True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert body["temperature"] == 0.1


def test_openai_gets_max_completion_tokens_and_reasoning_models_lose_custom_sampling() -> None:
    request = ChatRequest(messages=[], max_tokens=50, temperature=0.3, top_p=0.5)
    for model in ("o3-mini", "o1", "o4-mini", "gpt-5", "gpt-5-mini"):
        body = OPENAI_CHAT.build_body(request, model=model, stream=False, endpoint=OPENAI)
        assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
        assert "temperature" not in body and "top_p" not in body, model
    body = OPENAI_CHAT.build_body(request, model="gpt-4o-mini", stream=False, endpoint=OPENAI)
    assert body["max_completion_tokens"] == 50
    assert (body["temperature"], body["top_p"]) == (0.3, 0.5)
    assert body_for(request)["max_tokens"] == 50  # compatible servers read max_tokens


def test_headers_bearer_key_only_when_there_is_one() -> None:
    headers = OPENAI_CHAT.build_headers("sk-test", OPENAI)
    assert headers["Authorization"] == "Bearer sk-test"
    assert headers["Content-Type"] == "application/json"
    assert "Authorization" not in OPENAI_CHAT.build_headers(None, get_endpoint("ollama"))
    assert OPENAI_CHAT.build_headers("k", get_endpoint("openrouter"))["X-Title"]


# --- non-streamed replies ------------------------------------------------------------------

TEXT_REPLY = {
    "id": "chatcmpl-CDwyrpA4JiYZtZqykYZoH6a4Ea7hL",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": None},
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 9,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
TOOLS_REPLY = {
    "id": "chatcmpl-x",
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_stock_price", "arguments": '{"ticker":"AAPL"}'},
                    },
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 30,
        "total_tokens": 1230,
        "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 12},
    },
}


def test_text_reply() -> None:
    parsed = OPENAI_CHAT.parse_response(TEXT_REPLY)
    assert parsed.message.text == "Hello! How can I help?"
    assert parsed.finish_reason == "stop"
    assert parsed.usage == Usage(12, 9, 21)
    assert parsed.model == "gpt-4o-mini-2024-07-18"
    assert parsed.id == "chatcmpl-CDwyrpA4JiYZtZqykYZoH6a4Ea7hL"
    assert parsed.provider_cost_usd is None


def test_parallel_tool_calls_reply_with_cached_and_reasoning_tokens() -> None:
    parsed = OPENAI_CHAT.parse_response(TOOLS_REPLY)
    assert parsed.message.content is None
    assert parsed.message.tool_calls == [
        ToolCall("call_a", "get_weather", {"location": "Paris"}),
        ToolCall("call_b", "get_stock_price", {"ticker": "AAPL"}),
    ]
    assert parsed.finish_reason == "tool_calls"
    assert parsed.usage == Usage(1200, 30, 1230, cached_input_tokens=1024, reasoning_tokens=12)


def reply_with(arguments: str, finish: str) -> dict[str, Any]:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return {
        "model": "m",
        "choices": [{"message": {"content": None, "tool_calls": [call]}, "finish_reason": finish}],
    }


def test_invalid_tool_arguments_raise_unless_the_answer_was_cut_off() -> None:
    with pytest.raises(ResponseDecodeError, match="not valid JSON"):
        OPENAI_CHAT.parse_response(reply_with('{"city": "Par', "tool_calls"))
    cut = OPENAI_CHAT.parse_response(reply_with('{"city": "Par', "length"))
    assert cut.finish_reason == "length"
    assert cut.message.tool_calls[0].arguments == {}
    empty = OPENAI_CHAT.parse_response(reply_with("", "tool_calls"))
    assert empty.message.tool_calls[0].arguments == {}
    double = OPENAI_CHAT.parse_response(reply_with(json.dumps('{"a": 1}'), "tool_calls"))
    assert double.message.tool_calls[0].arguments == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
    ],
)
def test_finish_reasons(raw: str, mapped: str) -> None:
    reply = {"model": "m", "choices": [{"message": {"content": "x"}, "finish_reason": raw}]}
    assert OPENAI_CHAT.parse_response(reply).finish_reason == mapped


@pytest.mark.parametrize("raw", [None, ""])
def test_a_reply_without_finish_reason_is_truncated_not_complete(raw: str | None) -> None:
    reply = {"model": "m", "choices": [{"message": {"content": "x"}, "finish_reason": raw}]}
    with pytest.raises(ResponseDecodeError, match="truncated"):
        OPENAI_CHAT.parse_response(reply)


def test_refusal_becomes_text_with_content_filter() -> None:
    reply = {
        "model": "m",
        "choices": [
            {"message": {"content": None, "refusal": "I can't help."}, "finish_reason": "stop"}
        ],
    }
    parsed = OPENAI_CHAT.parse_response(reply)
    assert (parsed.message.text, parsed.finish_reason) == ("I can't help.", "content_filter")


def test_openrouter_cost_and_byok_upstream_cost() -> None:
    usage = {
        "prompt_tokens": 194,
        "completion_tokens": 2,
        "total_tokens": 196,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100},
        "cost": 0.95,
        "is_byok": False,
        "cost_details": {"upstream_inference_cost": 19},
    }
    reply = {
        "model": "openai/gpt-4o-mini",
        "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
        "usage": usage,
    }
    parsed = OPENAI_CHAT.parse_response(reply)
    assert parsed.provider_cost_usd == Decimal("0.95")
    assert parsed.usage.cache_write_tokens == 100
    usage["is_byok"] = True
    assert OPENAI_CHAT.parse_response(reply).provider_cost_usd == Decimal("19.95")


def test_deepseek_cache_hits_count_as_cached_input() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
    }
    reply = {
        "model": "deepseek-chat",
        "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
        "usage": usage,
    }
    assert OPENAI_CHAT.parse_response(reply).usage == Usage(100, 5, 105, cached_input_tokens=64)


@pytest.mark.parametrize(
    "body", [[], "text", {"choices": []}, {"choices": [{"finish_reason": "stop"}]}, {"id": "x"}]
)
def test_garbled_replies_raise_decode_errors(body: Any) -> None:
    with pytest.raises(ResponseDecodeError):
        OPENAI_CHAT.parse_response(body)


def test_error_object_in_a_200_reply_raises_the_mapped_error() -> None:
    with pytest.raises(RateLimitError, match="Rate limit reached"):
        OPENAI_CHAT.parse_response({"error": {"code": 429, "message": "Rate limit reached"}})


# --- streams -------------------------------------------------------------------------------


def test_text_stream_with_usage_chunk_at_every_split() -> None:
    expected_chunks, expected_final = run_stream(
        OPENAI_CHAT.new_stream_state(model="gpt-4o"), [OPENAI_TEXT_STREAM]
    )
    assert [c.text for c in expected_chunks] == ["I'm", "."]
    assert expected_final.is_final and expected_final.finish_reason == "stop"
    assert expected_final.usage == Usage(14, 30, 44)
    assert expected_final.model == "gpt-4o-2024-08-06"
    assert expected_final.id == "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL"
    for pieces in two_way_splits(OPENAI_TEXT_STREAM):
        chunks, final = run_stream(OPENAI_CHAT.new_stream_state(model="gpt-4o"), pieces)
        assert [c.text for c in chunks] == ["I'm", "."]
        assert (final.usage, final.finish_reason) == (expected_final.usage, "stop")


def test_recorded_tool_stream_at_every_split() -> None:
    for pieces in two_way_splits(OPENAI_TOOL_STREAM):
        chunks, final = run_stream(OPENAI_CHAT.new_stream_state(model="gpt-4o"), pieces)
        assert joined_tool_calls(chunks) == {
            0: {
                "id": "call_2Uzw0AEZQeOex2CP2TKjcLKc",
                "name": "get_weather",
                "arguments": '{"location":"San Francisco, CA"}',
            }
        }
        assert final.finish_reason == "tool_calls"
        assert final.usage is None  # the server sent none: the caller estimates


def parallel_stream() -> bytes:
    def call(index: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **fields}]}

    return b"".join(
        [
            chunk({"role": "assistant", "content": None}),
            chunk(
                call(
                    0,
                    id="call_a",
                    type="function",
                    function={"name": "get_weather", "arguments": ""},
                )
            ),
            chunk(call(0, function={"arguments": '{"loc'})),
            chunk(
                call(
                    1,
                    id="call_b",
                    type="function",
                    function={"name": "get_stock_price", "arguments": ""},
                )
            ),
            chunk(call(0, function={"arguments": 'ation":"Paris"}'})),
            chunk(call(1, function={"arguments": '{"ticker":"AAPL"}'})),
            chunk({}, "tool_calls"),
            b'data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}}\n\n',
            DONE,
        ]
    )


def test_parallel_tool_calls_are_keyed_by_index_not_order() -> None:
    data = parallel_stream()
    for cuts in ([], [17, 400, 401, 900], list(range(0, len(data), 7))):
        chunks, final = run_stream(OPENAI_CHAT.new_stream_state(model="m"), pieces_at(data, cuts))
        assert joined_tool_calls(chunks) == {
            0: {"id": "call_a", "name": "get_weather", "arguments": '{"location":"Paris"}'},
            1: {"id": "call_b", "name": "get_stock_price", "arguments": '{"ticker":"AAPL"}'},
        }
        assert final.usage == Usage(50, 20, 70)
        assert final.finish_reason == "tool_calls"


def test_single_chunk_tool_call_and_repeated_ids_are_sent_once() -> None:
    whole = {"index": 0, "id": "call_x", "function": {"name": "f", "arguments": '{"a": 1}'}}
    data = (
        chunk({"tool_calls": [whole]})
        + chunk({"tool_calls": [{**whole, "function": {"name": "f", "arguments": ""}}]})
        + chunk({}, "tool_calls")
        + DONE
    )
    chunks, _ = run_stream(OPENAI_CHAT.new_stream_state(model="m"), [data])
    assert joined_tool_calls(chunks) == {0: {"id": "call_x", "name": "f", "arguments": '{"a": 1}'}}


def test_reasoning_deltas_and_refusals() -> None:
    data = (
        chunk({"reasoning": "think "})
        + chunk({"reasoning_content": "more"})
        + chunk({"refusal": "No."})
        + chunk({}, "stop")
        + DONE
    )
    chunks, final = run_stream(OPENAI_CHAT.new_stream_state(model="m"), [data])
    assert [c.reasoning for c in chunks] == ["think ", "more", ""]
    assert chunks[2].text == "No."
    assert final.finish_reason == "content_filter"


def test_groq_usage_in_x_groq_and_standard_usage_wins() -> None:
    _, final = run_stream(OPENAI_CHAT.new_stream_state(model="m"), [GROQ_FINAL_CHUNK])
    assert final.usage == Usage(18, 439, 457)
    assert final.model == "gemma2-9b-it"
    both = GROQ_FINAL_CHUNK.replace(
        DONE,
        b'data: {"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":440}}\n\n' + DONE,
    )
    _, final = run_stream(OPENAI_CHAT.new_stream_state(model="m"), [both])
    assert final.usage == Usage(20, 440, 460)


def test_openrouter_comments_and_stream_cost() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.0004}
    data = (
        b": OPENROUTER PROCESSING\n\n"
        + chunk({"content": "Hi"})
        + b": OPENROUTER PROCESSING\n\n"
        + chunk({}, "stop")
        + b"data: "
        + json.dumps({"choices": [], "usage": usage}).encode()
        + b"\n\n"
        + DONE
    )
    state = OPENAI_CHAT.new_stream_state(model="m")
    chunks, final = run_stream(state, [data])
    assert [c.text for c in chunks] == ["Hi"]
    assert state.provider_cost_usd == Decimal("0.0004")
    assert final.usage == Usage(10, 2, 12)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (OPENAI_ERROR_EVENT, ServerError, "The server had an error while processing your request"),
        (OPENROUTER_ERROR_CHUNK, ServerError, "Provider disconnected unexpectedly"),
        (
            b'data: {"error":{"code":400,"message":"too long","metadata":{"error_type":"context_length_exceeded"}}}\n\n',
            ContextWindowExceededError,
            "too long",
        ),
        (
            b'data: {"error":{"message":"Rate limit","type":"tokens","code":"rate_limit_exceeded"}}\n\n',
            RateLimitError,
            "Rate limit",
        ),
    ],
)
def test_mid_stream_errors_raise_with_the_provider_message(
    data: bytes, error: type[ProviderStatusError], message: str
) -> None:
    state = OPENAI_CHAT.new_stream_state(model="gpt-4o")
    with pytest.raises(error, match=message) as caught:
        run_stream(state, [chunk({"content": "partial"}) + data])
    assert caught.value.model in ("gpt-4o", "served-model")


def test_truncated_stream_raises_in_finish() -> None:
    data = OPENAI_TEXT_STREAM.replace(DONE, b"")
    state = OPENAI_CHAT.new_stream_state(model="m")
    with pytest.raises(ResponseDecodeError, match=r"stream ended before \[DONE\]"):
        run_stream(state, [data])
    assert not state.done


def test_non_json_event_is_a_decode_error() -> None:
    with pytest.raises(ResponseDecodeError, match="not JSON"):
        run_stream(OPENAI_CHAT.new_stream_state(model="m"), [b"data: {oops\n\n"])
