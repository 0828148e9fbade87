"""LangChain content in every shape LangChain users send: files, audio, cache breakpoints,
reasoning out and signed thinking back in (conversion only; the wire is tested end to end)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from llmrouter_integrations.langchain._blocks import UnsupportedContentError
from llmrouter_integrations.langchain._convert import (
    PROVIDER_BLOCKS_KEY,
    chunk_to_message_chunk,
    response_to_message,
    to_router_messages,
)
from llmrouter_integrations.langchain._tools import to_openai_tool, to_tool_spec
from llmrouter_integrations.types import (
    ChatChunk,
    ChatResponse,
    ContentPart,
    Message,
    ProviderBlock,
    Usage,
)

PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()
WAV = base64.b64encode(b"RIFF....WAVEfmt ").decode()
THINKING = {"type": "thinking", "thinking": "2 + 2 = 4", "signature": "EqQBCgIYAhIM"}
EPHEMERAL = {"type": "ephemeral"}


def only_part(block: dict[str, Any]) -> ContentPart:
    content = to_router_messages([HumanMessage([block])])[0].content
    assert isinstance(content, list) and len(content) == 1
    return content[0]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "file", "base64": PDF, "mime_type": "application/pdf"},  # v1
        {"type": "file", "source_type": "base64", "data": PDF, "mime_type": "application/pdf"},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}"}},  # OpenAI
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        },
    ],
)
def test_every_pdf_shape_becomes_a_file_part(block: dict[str, Any]) -> None:
    part = only_part(block)
    assert (part.type, part.media_type, part.data) == ("file", "application/pdf", PDF)


def test_file_names_and_urls_are_kept() -> None:
    named = only_part(
        {
            "type": "file",
            "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "r.pdf"},
        }
    )
    assert named.filename == "r.pdf"
    by_url = only_part({"type": "file", "url": "https://x/a.pdf"})
    assert (by_url.type, by_url.url) == ("file", "https://x/a.pdf")
    anthropic = only_part({"type": "document", "source": {"type": "url", "url": "https://x/b.pdf"}})
    assert anthropic.url == "https://x/b.pdf"


@pytest.mark.parametrize(
    "block",
    [
        {"type": "text-plain", "text": "notes", "mime_type": "text/plain"},
        {"type": "file", "source_type": "text", "text": "notes"},
        {"type": "file", "base64": base64.b64encode(b"notes").decode(), "mime_type": "text/plain"},
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
        },
    ],
)
def test_text_documents_become_text_file_parts(block: dict[str, Any]) -> None:
    part = only_part(block)
    assert (part.type, part.text, part.media_type) == ("file", "notes", "text/plain")


@pytest.mark.parametrize(
    ("block", "media_type"),
    [
        ({"type": "audio", "base64": WAV, "mime_type": "audio/wav"}, "audio/wav"),
        (
            {"type": "audio", "source_type": "base64", "data": WAV, "mime_type": "audio/mpeg"},
            "audio/mpeg",
        ),
        ({"type": "input_audio", "input_audio": {"data": WAV, "format": "mp3"}}, "audio/mpeg"),
    ],
)
def test_audio_shapes_become_audio_parts(block: dict[str, Any], media_type: str) -> None:
    part = only_part(block)
    assert (part.type, part.data, part.media_type) == ("audio", WAV, media_type)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": "audio", "url": "https://x/a.wav"}, "must carry base64 data"),
        ({"type": "audio", "base64": WAV, "mime_type": "audio/ogg"}, "must be wav or mp3"),
        ({"type": "input_audio", "input_audio": {"data": WAV, "format": "flac"}}, "'flac'"),
        ({"type": "file", "file_id": "file-abc"}, "by provider file id"),
        ({"type": "file", "file": {"file_id": "file-abc"}}, "by provider file id"),
    ],
)
def test_content_no_provider_can_take_is_refused_clearly(
    block: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsupportedContentError, match=message):
        to_router_messages([HumanMessage([block])])


def test_a_pdf_in_a_tool_message_is_a_file_part() -> None:
    message = ToolMessage(
        content_blocks=[{"type": "file", "base64": PDF, "mime_type": "application/pdf"}],
        tool_call_id="1",
    )
    content = to_router_messages([message])[0].content
    assert isinstance(content, list) and content[0].type == "file"


def test_cache_control_on_system_human_and_tool_blocks() -> None:
    system, human, tool = to_router_messages(
        [
            SystemMessage([{"type": "text", "text": "long rules", "cache_control": EPHEMERAL}]),
            HumanMessage(
                [
                    {
                        "type": "text",
                        "text": "doc",
                        "extras": {"cache_control": {"type": "ephemeral", "ttl": "1h"}},
                    }
                ]
            ),
            ToolMessage(
                [{"type": "text", "text": "result", "cache_control": EPHEMERAL}], tool_call_id="t"
            ),
        ]
    )
    for message, expected in (
        (system, EPHEMERAL),
        (human, {"type": "ephemeral", "ttl": "1h"}),
        (tool, EPHEMERAL),
    ):
        assert isinstance(message.content, list)
        assert message.content[-1].cache_control == expected


def test_a_system_prompt_without_breakpoints_stays_a_string() -> None:
    system = to_router_messages([SystemMessage([{"type": "text", "text": "a"}, "b"])])[0]
    assert system.content == "ab"


def test_cache_control_on_a_tool_definition_reaches_the_tool_spec() -> None:
    anthropic_tool = {
        "name": "color_picker",
        "description": "Pick a color.",
        "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}},
        "cache_control": EPHEMERAL,
    }
    spec = to_tool_spec(to_openai_tool(anthropic_tool))
    assert (spec.name, spec.cache_control) == ("color_picker", EPHEMERAL)
    assert (
        to_tool_spec(to_openai_tool({**anthropic_tool, "cache_control": None})).cache_control
        is None
    )


def _thinking_response() -> ChatResponse:
    block = ProviderBlock(dialect="anthropic_messages", data=dict(THINKING))
    message = Message(
        role="assistant",
        content=[ContentPart(type="provider", block=block), ContentPart(type="text", text="4")],
        reasoning="2 + 2 = 4",
    )
    return ChatResponse(
        message=message,
        finish_reason="stop",
        usage=Usage(input_tokens=10, output_tokens=30, total_tokens=40, reasoning_tokens=20),
        model="claude-sonnet-4-5",
    )


def test_reasoning_surfaces_as_a_reasoning_content_block_and_text_stays_text() -> None:
    message = response_to_message(_thinking_response())
    assert message.content == "4"
    assert message.content_blocks[0] == {"type": "reasoning", "reasoning": "2 + 2 = 4"}
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_token_details"] == {"reasoning": 20}


def test_signed_thinking_replays_unmodified_on_the_next_turn() -> None:
    answer = response_to_message(_thinking_response())
    history = to_router_messages([HumanMessage("2 + 2?"), answer, HumanMessage("and 3 + 3?")])
    assert history[1].blocks == [ProviderBlock(dialect="anthropic_messages", data=THINKING)]
    assert history[1].text == "4"


def test_streamed_thinking_merges_into_one_replayable_message() -> None:
    block = ProviderBlock(dialect="anthropic_messages", data=dict(THINKING))
    chunks = [
        ChatChunk(reasoning="2 + 2 "),
        ChatChunk(reasoning="= 4"),
        ChatChunk(blocks=[block]),
        ChatChunk(text="4"),
        ChatChunk(is_final=True, finish_reason="stop", usage=Usage(1, 2, 3), model="m"),
    ]
    merged: AIMessageChunk | None = None
    for chunk in chunks:
        piece = chunk_to_message_chunk(chunk)
        merged = piece if merged is None else merged + piece
    assert merged is not None
    assert merged.content == "4"
    assert merged.additional_kwargs["reasoning_content"] == "2 + 2 = 4"
    assert merged.additional_kwargs[PROVIDER_BLOCKS_KEY] == [
        {"dialect": "anthropic_messages", "data": THINKING}
    ]
    assert to_router_messages([merged])[0].blocks == [block]


def test_chat_anthropic_history_and_v1_reasoning_blocks_replay_too() -> None:
    native = AIMessage([THINKING, {"type": "text", "text": "4"}])
    v1 = AIMessage(
        [
            {
                "type": "reasoning",
                "reasoning": "2 + 2 = 4",
                "extras": {"signature": "EqQBCgIYAhIM"},
            },
            {"type": "text", "text": "4"},
        ]
    )
    redacted = AIMessage([{"type": "redacted_thinking", "data": "EmwKAhgB"}, "4"])
    unsigned = AIMessage([{"type": "reasoning", "reasoning": "display only"}, "4"])
    converted = to_router_messages([native, v1, redacted, unsigned])
    assert converted[0].blocks[0].data == THINKING
    assert converted[1].blocks[0].data == THINKING
    assert converted[2].blocks[0].data == {"type": "redacted_thinking", "data": "EmwKAhgB"}
    assert converted[3].blocks == [] and converted[3].content == "4"
