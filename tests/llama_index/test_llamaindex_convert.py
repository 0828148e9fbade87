"""LlamaIndex <-> router type conversion: every block type, tool calls, usage, streams."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    ChatResponse,
    CitableBlock,
    CitationBlock,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.callbacks.token_counting import get_tokens_from_response
from llama_index.core.tools import FunctionTool

from llmrouter_integrations.errors import ServerError
from llmrouter_integrations.llama_index._convert import (
    StreamAccumulator,
    from_router_message,
    normalise_tool_choice,
    to_chat_response,
    to_router_message,
    to_router_messages,
    tool_selections,
    tools_to_specs,
)
from llmrouter_integrations.types import (
    Attempt,
    ChatChunk,
    ContentPart,
    CostDetail,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmrouter_integrations.types import ChatResponse as RouterChatResponse

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_roles_map_to_the_four_router_roles() -> None:
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="s"),
        ChatMessage(role=MessageRole.DEVELOPER, content="d"),
        ChatMessage(role=MessageRole.USER, content="u"),
        ChatMessage(role=MessageRole.ASSISTANT, content="a"),
        ChatMessage(role=MessageRole.CHATBOT, content="c"),
        ChatMessage(role=MessageRole.MODEL, content="m"),
    ]
    assert [m.role for m in to_router_messages(messages)] == [
        "system",
        "system",
        "user",
        "assistant",
        "assistant",
        "assistant",
    ]


def test_text_blocks_join_like_chat_message_content() -> None:
    message = ChatMessage(role="user", blocks=[TextBlock(text="one"), TextBlock(text="two")])
    converted = to_router_message(message)
    assert converted.content == message.content == "one\ntwo"


def test_image_url_base64_and_path_blocks(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "dot.png"
    path.write_bytes(PNG)
    message = ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="what is this?"),
            ImageBlock(url="https://example.com/cat.jpg", detail="low"),
            ImageBlock(image=PNG),
            ImageBlock(path=path),
            ImageBlock(url="data:image/gif;base64,R0lGOD"),
        ],
    )
    parts = to_router_message(message).content
    assert isinstance(parts, list)
    assert parts[0] == ContentPart(type="text", text="what is this?")
    assert parts[1].image_url == "https://example.com/cat.jpg" and parts[1].detail == "low"
    assert parts[2].media_type == "image/png"
    assert base64.b64decode(parts[2].data or "") == PNG
    assert parts[3].media_type == "image/png"
    assert base64.b64decode(parts[3].data or "") == PNG
    assert (parts[4].media_type, parts[4].data) == ("image/gif", "R0lGOD")


def test_text_and_pdf_documents_become_file_parts() -> None:
    doc = DocumentBlock(
        data=b"The moon is made of rock.", document_mimetype="text/plain", title="moon.txt"
    )
    (text_doc,) = to_router_message(ChatMessage(role="user", blocks=[doc])).content or []
    assert isinstance(text_doc, ContentPart)
    assert (text_doc.type, text_doc.text, text_doc.filename) == (
        "file",
        "The moon is made of rock.",
        "moon.txt",
    )
    pdf = DocumentBlock(data=b"%PDF-1.4 ...", document_mimetype="application/pdf")
    (pdf_part,) = to_router_message(ChatMessage(role="user", blocks=[pdf])).content or []
    assert isinstance(pdf_part, ContentPart)
    assert (pdf_part.type, pdf_part.media_type) == ("file", "application/pdf")
    assert base64.b64decode(pdf_part.data or "") == b"%PDF-1.4 ..."
    by_url = DocumentBlock(url="https://example.com/a.pdf", document_mimetype="application/pdf")
    (url_part,) = to_router_message(ChatMessage(role="user", blocks=[by_url])).content or []
    assert isinstance(url_part, ContentPart) and url_part.url == "https://example.com/a.pdf"


def test_other_binary_documents_are_refused_not_dropped() -> None:
    docx = DocumentBlock(data=b"PK\x03\x04", document_mimetype="application/msword")
    with pytest.raises(ValueError, match="application/msword"):
        to_router_message(ChatMessage(role="user", blocks=[docx]))


def test_audio_becomes_an_audio_part() -> None:
    block = AudioBlock(audio=b"RIFF....WAVE", format="wav")
    content = to_router_message(ChatMessage(role="user", blocks=[TextBlock(text="hi"), block]))
    assert isinstance(content.content, list)
    audio = content.content[1]
    assert (audio.type, audio.media_type) == ("audio", "audio/wav")
    assert base64.b64decode(audio.data or "") == b"RIFF....WAVE"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (VideoBlock(url="https://example.com/v.mp4"), "not supported"),
        (AudioBlock(audio=b"fLaC....", format="flac"), "wav or mp3"),
        (AudioBlock(url="https://example.com/a.wav", format="wav"), "not by URL"),
    ],
)
def test_content_no_provider_takes_is_refused_not_dropped(block: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_router_message(ChatMessage(role="user", blocks=[TextBlock(text="hi"), block]))


def test_unsigned_thinking_is_display_only_cache_points_mark_a_breakpoint() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[
            ThinkingBlock(content="let me think"),
            TextBlock(text="answer"),
            CachePoint(cache_control=CacheControl(type="ephemeral")),
            CitationBlock(
                cited_content=TextBlock(text="quoted"),
                source="doc1",
                title="Doc",
                additional_location_info={},
            ),
        ],
    )
    content = to_router_message(message).content
    assert isinstance(content, list)
    assert [(p.text, p.cache_control) for p in content] == [
        ("answer", {"type": "ephemeral", "ttl": "5m"}),  # LlamaIndex's default ttl
        ("quoted", None),
    ]
    citable = CitableBlock(title="t", source="s", content=[TextBlock(text="cite me")])
    assert to_router_message(ChatMessage(role="user", blocks=[citable])).content == "cite me"


def test_tool_call_blocks_and_tool_results_round_trip() -> None:
    assistant = ChatMessage(
        role="assistant",
        blocks=[
            ToolCallBlock(tool_call_id="call_1", tool_name="add", tool_kwargs={"a": 1, "b": 2}),
            ToolCallBlock(tool_call_id="call_2", tool_name="mul", tool_kwargs='{"a": 3, "b": 4}'),
        ],
    )
    tool = ChatMessage(
        role="tool", blocks=[TextBlock(text="3")], additional_kwargs={"tool_call_id": "call_1"}
    )
    converted = to_router_messages([assistant, tool])
    assert converted[0].content is None
    assert converted[0].tool_calls == [
        ToolCall(id="call_1", name="add", arguments={"a": 1, "b": 2}),
        ToolCall(id="call_2", name="mul", arguments={"a": 3, "b": 4}),
    ]
    assert (converted[1].role, converted[1].tool_call_id, converted[1].content) == (
        "tool",
        "call_1",
        "3",
    )
    back = from_router_message(converted[0])
    assert [(b.tool_call_id, b.tool_name, b.tool_kwargs) for b in back.blocks] == [
        ("call_1", "add", {"a": 1, "b": 2}),
        ("call_2", "mul", {"a": 3, "b": 4}),
    ]
    assert from_router_message(converted[1]).additional_kwargs == {"tool_call_id": "call_1"}


def test_legacy_additional_kwargs_tool_calls_dicts_and_objects() -> None:
    class Function:
        name = "lookup"
        arguments = '{"q": "paris"}'

    class SdkCall:
        id = "call_obj"
        function = Function()

    as_dicts = ChatMessage(
        role="assistant",
        content="",
        additional_kwargs={
            "tool_calls": [
                {"id": "call_d", "type": "function", "function": {"name": "add", "arguments": "{}"}}
            ]
        },
    )
    as_objects = ChatMessage(role="assistant", additional_kwargs={"tool_calls": [SdkCall()]})
    assert to_router_message(as_dicts).tool_calls == [ToolCall("call_d", "add", {})]
    assert to_router_message(as_objects).tool_calls == [
        ToolCall("call_obj", "lookup", {"q": "paris"})
    ]


def test_tools_to_specs_uses_the_tools_openai_schema() -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    (spec,) = tools_to_specs([FunctionTool.from_defaults(fn=add)])
    assert spec.name == "add"
    assert "Add two integers" in spec.description
    assert spec.parameters["properties"]["a"]["type"] == "integer"
    assert spec.parameters["required"] == ["a", "b"]


@pytest.mark.parametrize(
    ("choice", "required", "expected"),
    [
        (None, False, None),
        (None, True, "required"),
        ("auto", True, "auto"),
        ("add", False, "add"),
        ({"type": "function", "function": {"name": "add"}}, False, "add"),
        ({"type": "tool", "name": "add"}, False, "add"),
        ({"type": "any"}, False, "required"),
        ("any", False, "required"),
    ],
)
def test_tool_choice_spellings(choice: object, required: bool, expected: str | None) -> None:
    assert normalise_tool_choice(choice, required) == expected


def _router_response(**changes: object) -> RouterChatResponse:
    response = RouterChatResponse(
        message=Message(role="assistant", content="Paris."),
        finish_reason="stop",
        usage=Usage(input_tokens=12, output_tokens=3, total_tokens=15, cached_input_tokens=4),
        cost=0.00042,
        cost_detail=CostDetail(input=Decimal("0.0004"), output=Decimal("0.00002")),
        provider="anthropic",
        model="claude-haiku-4-5-20251001",
        deployment="backup",
        latency_s=0.25,
        attempts=[Attempt("primary", ServerError("upstream exploded", status_code=500), 0.01)],
        raw={"id": "msg_1", "content": [{"type": "text", "text": "Paris."}]},
        route={"order": ["primary", "backup"], "why": Decimal("1.5")},
        id="msg_1",
    )
    for key, value in changes.items():
        setattr(response, key, value)
    return response


def test_chat_response_carries_usage_cost_and_router_facts() -> None:
    response = to_chat_response(_router_response())
    assert response.message.content == "Paris."
    assert response.raw["usage"]["prompt_tokens"] == 12
    assert response.raw["usage"]["completion_tokens"] == 3
    assert response.raw["model"] == "claude-haiku-4-5-20251001"
    assert get_tokens_from_response(response) == (12, 3)
    extras = response.additional_kwargs
    assert extras["prompt_tokens"] == 12 and extras["total_tokens"] == 15
    assert extras["cached_input_tokens"] == 4
    assert extras["cost"] == pytest.approx(0.00042)
    assert (extras["provider"], extras["deployment"], extras["cached"]) == (
        "anthropic",
        "backup",
        False,
    )
    assert extras["attempts"][0]["deployment"] == "primary"
    assert extras["attempts"][0]["error_type"] == "ServerError"
    assert extras["route"] == {"order": ["primary", "backup"], "why": 1.5}
    # Everything must survive JSON (agents put raw into events; caches serialise).
    json.dumps(response.raw)
    json.dumps(response.additional_kwargs)


def test_cache_hit_is_marked_with_the_saving() -> None:
    response = to_chat_response(_router_response(cached=True, cost=0.0, original_cost=0.00042))
    assert response.additional_kwargs["cached"] is True
    assert response.additional_kwargs["cost"] == 0.0
    assert response.additional_kwargs["original_cost"] == pytest.approx(0.00042)


def test_tool_call_response_becomes_tool_call_blocks() -> None:
    router_response = _router_response(
        message=Message(role="assistant", tool_calls=[ToolCall("call_9", "add", {"a": 1, "b": 2})]),
        finish_reason="tool_calls",
    )
    response = to_chat_response(router_response)
    assert response.message.content is None
    (selection,) = tool_selections(response)
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == (
        "call_9",
        "add",
        {"a": 1, "b": 2},
    )


def test_no_tool_call_raises_only_when_asked() -> None:
    response = ChatResponse(message=ChatMessage(role="assistant", content="no tools"))
    assert tool_selections(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="0 tool calls"):
        tool_selections(response)


def _final_chunk(**changes: object) -> ChatChunk:
    chunk = ChatChunk(
        is_final=True,
        finish_reason="tool_calls",
        usage=Usage(input_tokens=20, output_tokens=7, total_tokens=27),
        cost=0.001,
        provider="openai",
        model="gpt-4o-mini-2024-07-18",
        deployment="openai/gpt-4o-mini",
    )
    for key, value in changes.items():
        setattr(chunk, key, value)
    return chunk


def test_stream_accumulates_text_and_tool_calls_across_chunks() -> None:
    acc = StreamAccumulator()
    chunks = [
        ChatChunk(text="Let me "),
        ChatChunk(text="check.", reasoning="hmm"),
        ChatChunk(tool_call_deltas=[ToolCallDelta(index=0, id="call_a", name="add")]),
        ChatChunk(tool_call_deltas=[ToolCallDelta(index=0, arguments='{"a": 1, ')]),
        ChatChunk(
            tool_call_deltas=[
                ToolCallDelta(index=0, arguments='"b": 2}'),
                ToolCallDelta(index=1, id="call_b", name="mul", arguments='{"a": 5}'),
            ]
        ),
        _final_chunk(),
    ]
    responses = [acc.add(chunk) for chunk in chunks]
    assert [r.delta for r in responses] == ["Let me ", "check.", "", "", "", ""]
    assert responses[1].additional_kwargs["thinking_delta"] == "hmm"
    assert responses[1].message.content == "Let me check."
    # Mid-stream: partial arguments, as a string; reading them must not raise.
    mid = responses[3]
    (block,) = [b for b in mid.message.blocks if isinstance(b, ToolCallBlock)]
    assert block.tool_kwargs == '{"a": 1, '
    assert tool_selections(mid, error_on_no_tool_call=False)[0].tool_kwargs == {"a": 1}
    final = responses[-1]
    assert [s.tool_kwargs for s in tool_selections(final)] == [{"a": 1, "b": 2}, {"a": 5}]
    assert [s.tool_id for s in tool_selections(final)] == ["call_a", "call_b"]
    assert any(isinstance(b, ThinkingBlock) and b.content == "hmm" for b in final.message.blocks)
    assert final.raw["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 7,
        "total_tokens": 27,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 0,
        "estimated": False,
    }
    assert final.additional_kwargs["cost"] == 0.001
    assert final.additional_kwargs["model"] == "gpt-4o-mini-2024-07-18"
    assert get_tokens_from_response(final) == (20, 7)
    # Each yielded message is its own snapshot.
    assert responses[0].message.content == "Let me "


def test_stream_of_text_only_ends_with_usage_on_the_last_response() -> None:
    acc = StreamAccumulator()
    responses = [
        acc.add(c) for c in (ChatChunk(text="Hi"), ChatChunk(text="!"), _final_chunk(text=""))
    ]
    assert "".join(r.delta or "" for r in responses) == responses[-1].message.content == "Hi!"
    assert "usage" not in (responses[0].raw or {})
    assert responses[-1].raw["usage"]["prompt_tokens"] == 20
