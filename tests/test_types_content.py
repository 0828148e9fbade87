"""Content parts beyond text and images: files, audio, provider blocks, cache_control, reasoning."""

from __future__ import annotations

import pytest

from llmrouter_integrations.types import (
    ChatChunk,
    ChatResponse,
    ContentPart,
    Message,
    ProviderBlock,
    message_from_dict,
)

PDF_B64 = "JVBERi0xLjQK"  # "%PDF-1.4\n"


def test_openai_file_part_becomes_a_pdf_part() -> None:
    message = message_from_dict(
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {"file_data": f"data:application/pdf;base64,{PDF_B64}",
                             "filename": "a.pdf"},
                }
            ],
        }
    )  # fmt: skip
    assert message.content == [
        ContentPart(type="file", media_type="application/pdf", data=PDF_B64, filename="a.pdf")
    ]


def test_anthropic_document_sources_base64_url_and_text() -> None:
    parts = message_from_dict(
        {
            "role": "user",
            "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                "data": PDF_B64}},
                {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                "data": "plain words"}, "title": "notes.txt",
                 "cache_control": {"type": "ephemeral"}},
            ],
        }
    ).content  # fmt: skip
    assert isinstance(parts, list)
    assert parts[0].data == PDF_B64 and parts[0].media_type == "application/pdf"
    assert parts[1].url == "https://x.test/a.pdf"
    assert parts[2].text == "plain words" and parts[2].filename == "notes.txt"
    assert parts[2].cache_control == {"type": "ephemeral"}


def test_input_audio_formats() -> None:
    message = message_from_dict(
        {"role": "user", "content": [{"type": "input_audio",
                                       "input_audio": {"data": "UklGRg==", "format": "mp3"}}]}
    )  # fmt: skip
    assert isinstance(message.content, list)
    assert message.content[0].media_type == "audio/mpeg"
    assert message.content[0].audio_format == "mp3"
    with pytest.raises(ValueError, match="wav' or 'mp3'"):
        message_from_dict(
            {"role": "user", "content": [{"type": "input_audio",
                                           "input_audio": {"data": "x", "format": "flac"}}]}
        )  # fmt: skip


def test_file_part_without_data_url_is_refused() -> None:
    with pytest.raises(ValueError, match="data: URL"):
        message_from_dict(
            {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-123"}}]}
        )


def test_thinking_blocks_are_kept_for_anthropic_and_reasoning_text_is_read() -> None:
    thinking = {"type": "thinking", "thinking": "add them", "signature": "sig=="}
    redacted = {"type": "redacted_thinking", "data": "opaque"}
    message = message_from_dict(
        {
            "role": "assistant",
            "content": [thinking, redacted, {"type": "text", "text": "4"}],
            "reasoning_content": "add them",
        }
    )
    assert message.blocks == [
        ProviderBlock("anthropic_messages", thinking),
        ProviderBlock("anthropic_messages", redacted),
    ]
    assert [b.kind for b in message.blocks] == ["thinking", "redacted_thinking"]
    assert message.text == "4"
    assert ChatResponse(message=message).reasoning == "add them"


def test_message_level_cache_control_and_chunk_with_only_a_block_counts_as_content() -> None:
    message = message_from_dict(
        {"role": "system", "content": "rules", "cache_control": {"type": "ephemeral"}}
    )
    assert message.cache_control == {"type": "ephemeral"}
    assert Message("user", "hi").blocks == []
    chunk = ChatChunk(blocks=[ProviderBlock("anthropic_messages", {"type": "redacted_thinking"})])
    assert chunk.has_content
