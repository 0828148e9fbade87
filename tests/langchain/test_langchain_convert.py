"""LangChain <-> router type conversion: every input shape in, usage and metadata out."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from langchain_core.load import dumps, loads
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from llmrouter_integrations.errors import ServerError
from llmrouter_integrations.langchain._convert import (
    UnsupportedContentError,
    chunk_to_message_chunk,
    jsonable,
    response_to_message,
    to_router_messages,
    usage_to_metadata,
)
from llmrouter_integrations.langchain._tools import to_tool_choice, to_tool_spec
from llmrouter_integrations.types import (
    Attempt,
    ChatChunk,
    ChatResponse,
    CostDetail,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)


def test_plain_conversation_keeps_roles_names_and_text() -> None:
    converted = to_router_messages(
        [SystemMessage("be brief"), HumanMessage("hi", name="bob"), AIMessage("hello")]
    )
    assert [(m.role, m.content, m.name) for m in converted] == [
        ("system", "be brief", None),
        ("user", "hi", "bob"),
        ("assistant", "hello", None),
    ]


def test_text_blocks_collapse_to_a_string() -> None:
    message = HumanMessage([{"type": "text", "text": "a"}, "b"])
    assert to_router_messages([message])[0].content == "ab"


def test_cache_control_on_a_block_keeps_the_parts_and_the_breakpoint() -> None:
    message = HumanMessage(
        [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}, "b"]
    )
    content = to_router_messages([message])[0].content
    assert isinstance(content, list)
    assert [(p.text, p.cache_control) for p in content] == [
        ("a", {"type": "ephemeral"}),
        ("b", None),
    ]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
            {"image_url": "https://x/cat.png", "detail": "low"},
        ),
        (
            {"type": "image_url", "image_url": "data:image/png;base64,AAA"},
            {"image_url": "data:image/png;base64,AAA"},
        ),
        (
            {"type": "image", "base64": "AAA", "mime_type": "image/jpeg"},
            {"data": "AAA", "media_type": "image/jpeg"},
        ),
        ({"type": "image", "url": "https://x/y.png"}, {"image_url": "https://x/y.png"}),
        (
            {"type": "image", "source_type": "base64", "data": "AAA", "mime_type": "image/png"},
            {"data": "AAA", "media_type": "image/png"},
        ),
        (
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/gif", "data": "AAA"},
            },
            {"data": "AAA", "media_type": "image/gif"},
        ),
        (
            {"type": "image", "source": {"type": "url", "url": "https://x/z.png"}},
            {"image_url": "https://x/z.png"},
        ),
    ],
)
def test_every_image_shape_becomes_an_image_part(block: dict, expected: dict) -> None:
    message = HumanMessage([{"type": "text", "text": "look"}, block])
    content = to_router_messages([message])[0].content
    assert isinstance(content, list)
    assert content[0].text == "look"
    image = content[1]
    assert image.type == "image"
    for key, value in expected.items():
        assert getattr(image, key) == value


def test_tool_call_history_round_trips_ids_and_arguments() -> None:
    history = [
        AIMessage(
            "", tool_calls=[{"name": "f", "args": {"a": 1}, "id": "abc123", "type": "tool_call"}]
        ),
        ToolMessage('{"x": 1}', tool_call_id="abc123", status="error"),
    ]
    assistant, result = to_router_messages(history)
    assert assistant.content is None
    assert assistant.tool_calls == [ToolCall(id="abc123", name="f", arguments={"a": 1})]
    assert (result.role, result.tool_call_id, result.content) == ("tool", "abc123", '{"x": 1}')


def test_anthropic_native_history_is_understood() -> None:
    """tool_use blocks without tool_calls, thinking blocks, and tool_result blocks."""
    history = [
        AIMessage(
            [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "let me check"},
                {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}},
            ]
        ),
        HumanMessage(
            [
                {"type": "text", "text": "and then?"},
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "42"}],
                },
            ]
        ),
    ]
    assistant, tool_result, user = to_router_messages(history)
    # The signed thinking is kept (first) for Anthropic to check on the next turn.
    assert isinstance(assistant.content, list)
    assert [p.type for p in assistant.content] == ["provider", "text"]
    assert assistant.blocks[0].data == {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    assert assistant.text == "let me check"
    assert assistant.tool_calls == [ToolCall(id="t1", name="lookup", arguments={"q": "x"})]
    # Tool results come right after the call, before the user's new text.
    assert (tool_result.role, tool_result.tool_call_id, tool_result.content) == ("tool", "t1", "42")
    assert (user.role, user.content) == ("user", "and then?")


def test_invalid_tool_calls_stay_in_history() -> None:
    message = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "f",
                "args": "{not json",
                "id": "bad1",
                "error": "x",
                "type": "invalid_tool_call",
            }
        ],
    )
    assert to_router_messages([message])[0].tool_calls == [
        ToolCall(id="bad1", name="f", arguments={})
    ]


def test_tool_message_with_image_keeps_the_image() -> None:
    message = ToolMessage(
        [{"type": "image", "base64": "AAA", "mime_type": "image/png"}], tool_call_id="1"
    )
    content = to_router_messages([message])[0].content
    assert isinstance(content, list) and content[0].data == "AAA"


def test_chat_message_roles_map() -> None:
    converted = to_router_messages(
        [ChatMessage(role="developer", content="rules"), ChatMessage(role="human", content="q")]
    )
    assert [m.role for m in converted] == ["system", "user"]


def test_video_blocks_are_refused_with_a_clear_error() -> None:
    message = HumanMessage([{"type": "video", "base64": "AAA", "mime_type": "video/mp4"}])
    with pytest.raises(UnsupportedContentError, match="video content blocks are not supported"):
        to_router_messages([message])


class Weather(BaseModel):
    """Weather in a city."""

    city: str = Field(description="the city")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_tools_of_every_shape_become_tool_specs() -> None:
    anthropic_tool = {
        "name": "color_picker",
        "description": "Pick a colour.",
        "input_schema": {"type": "object", "properties": {"fav_color": {"type": "string"}}},
        "cache_control": {"type": "ephemeral"},
    }
    specs = [to_tool_spec(t) for t in (add, Weather, anthropic_tool)]
    assert [s.name for s in specs] == ["add", "Weather", "color_picker"]
    assert specs[0].parameters["properties"].keys() == {"a", "b"}
    assert specs[1].description == "Weather in a city."
    assert specs[2].parameters["properties"] == {"fav_color": {"type": "string"}}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        (False, None),
        (True, "required"),
        ("any", "required"),
        ("required", "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("magic_function", "magic_function"),
        ({"type": "function", "function": {"name": "f"}}, "f"),
        ({"type": "tool", "name": "g"}, "g"),
        ({"type": "any"}, "required"),
        ({"type": "auto"}, "auto"),
    ],
)
def test_tool_choice_forms(choice: object, expected: str | None) -> None:
    assert to_tool_choice(choice) == expected


def test_usage_details_are_ints_and_input_includes_cache() -> None:
    usage = Usage(
        input_tokens=100,
        output_tokens=20,
        total_tokens=120,
        cached_input_tokens=60,
        cache_write_tokens=10,
        reasoning_tokens=5,
    )
    assert usage_to_metadata(usage) == {
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "input_token_details": {"cache_read": 60, "cache_creation": 10},
        "output_token_details": {"reasoning": 5},
    }
    assert usage_to_metadata(Usage(input_tokens=3, output_tokens=4))["total_tokens"] == 7


def _response(**changes: object) -> ChatResponse:
    response = ChatResponse(
        message=Message(
            role="assistant",
            content="hi",
            tool_calls=[ToolCall(id="c1", name="f", arguments={"a": 1})],
        ),
        finish_reason="tool_calls",
        usage=Usage(input_tokens=10, output_tokens=5, total_tokens=15),
        cost=0.00012,
        cost_detail=CostDetail(input=Decimal("0.0001"), output=Decimal("0.00002")),
        provider="anthropic",
        model="claude-haiku-4-5-20251001",
        deployment="backup",
        latency_s=0.25,
        attempts=[
            Attempt(
                deployment="primary", error=ServerError("boom", status_code=500), latency_s=0.01
            )
        ],
        id="msg_1",
    )
    for key, value in changes.items():
        setattr(response, key, value)
    return response


def test_response_becomes_ai_message_with_router_metadata() -> None:
    message = response_to_message(_response())
    assert message.content == "hi"
    assert message.id == "msg_1"
    assert message.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]
    assert message.usage_metadata == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    metadata = message.response_metadata
    assert metadata["model_name"] == "claude-haiku-4-5-20251001"
    assert (metadata["finish_reason"], metadata["provider"], metadata["deployment"]) == (
        "tool_calls",
        "anthropic",
        "backup",
    )
    assert metadata["cost_usd"] == pytest.approx(0.00012)
    assert metadata["cached"] is False
    assert metadata["attempts"][0]["deployment"] == "primary"
    assert metadata["attempts"][0]["error_type"] == "ServerError"
    assert metadata["attempts"][0]["status_code"] == 500
    assert "model_provider" not in metadata  # would switch LangChain to a provider translator
    json.dumps(metadata)  # cacheable by SQLiteCache


def test_cached_response_gets_no_provider_id_and_zero_cost() -> None:
    message = response_to_message(_response(cached=True, cost=0.0, original_cost=0.0003))
    assert message.id is None
    assert message.response_metadata["cached"] is True
    assert message.response_metadata["original_cost_usd"] == pytest.approx(0.0003)


def test_route_objects_are_stored_as_plain_data() -> None:
    class Route:
        def to_dict(self) -> dict[str, object]:
            return {"chosen": "a", "score": Decimal("0.5"), "skipped": ("b",)}

    message = response_to_message(_response(route=Route()))
    assert message.response_metadata["route"] == {"chosen": "a", "score": 0.5, "skipped": ["b"]}
    assert jsonable(float("nan")) is None


def test_ai_message_survives_langchain_serialisation() -> None:
    message = response_to_message(_response())
    assert loads(dumps(message), allowed_objects="messages") == message


def test_stream_chunks_merge_into_one_message_with_usage_once() -> None:
    chunks = [
        ChatChunk(text="Hel", id="r1"),
        ChatChunk(text="lo", id="r1"),
        ChatChunk(tool_call_deltas=[ToolCallDelta(index=0, id="c1", name="f", arguments='{"a"')]),
        ChatChunk(tool_call_deltas=[ToolCallDelta(index=1, id="c2", name="g", arguments="{")]),
        ChatChunk(tool_call_deltas=[ToolCallDelta(index=0, arguments=": 1}")]),
        ChatChunk(tool_call_deltas=[ToolCallDelta(index=1, arguments="}")]),
        ChatChunk(
            is_final=True,
            finish_reason="tool_calls",
            usage=Usage(input_tokens=9, output_tokens=4, total_tokens=13),
            cost=0.001,
            provider="openai",
            model="gpt-4o-mini-2024-07-18",
            deployment="openai/gpt-4o-mini",
        ),
    ]
    converted = [chunk_to_message_chunk(chunk) for chunk in chunks]
    assert all(isinstance(c, AIMessageChunk) for c in converted)
    assert [c.usage_metadata is not None for c in converted] == [False] * 6 + [True]
    merged = converted[0]
    for chunk in converted[1:]:
        merged = merged + chunk
    assert merged.content == "Hello"
    assert merged.chunk_position == "last"
    assert merged.tool_calls == [
        {"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"},
        {"name": "g", "args": {}, "id": "c2", "type": "tool_call"},
    ]
    assert merged.usage_metadata == {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}
    assert merged.response_metadata["model_name"] == "gpt-4o-mini-2024-07-18"
    assert merged.response_metadata["cost_usd"] == pytest.approx(0.001)
    assert merged.id == "r1"


def test_reasoning_deltas_reach_content_blocks() -> None:
    chunk = chunk_to_message_chunk(ChatChunk(reasoning="thinking..."))
    assert chunk.additional_kwargs == {"reasoning_content": "thinking..."}
    assert {"type": "reasoning", "reasoning": "thinking..."}.items() <= chunk.content_blocks[
        0
    ].items()
