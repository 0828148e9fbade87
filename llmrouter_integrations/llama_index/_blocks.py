"""LlamaIndex content blocks as router content parts, and thinking back as `ThinkingBlock`s.

>>> parts_of(DocumentBlock(data=pdf_bytes, document_mimetype="application/pdf"))[0].type
'file'
>>> thinking_blocks(router_message)[0].additional_information["signature"]
'EqQBCg...'
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    CitableBlock,
    CitationBlock,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    VideoBlock,
)

from ..types import ContentPart, Message, ProviderBlock

__all__ = ["PROVIDER_BLOCK_KEY", "cache_control_of", "parts_of", "thinking_blocks"]

# Where a ThinkingBlock keeps the provider's own block (Anthropic's signed thinking), so
# it goes back byte for byte on the next turn: {"dialect": ..., "data": {...}}.
PROVIDER_BLOCK_KEY = "provider_block"
_ANTHROPIC = "anthropic_messages"
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "mpeg": "audio/mpeg"}
# Documents any provider can take as plain text.
_TEXT_DOCUMENT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml")


def cache_control_of(block: CachePoint) -> dict[str, Any]:
    """A `CachePoint` as Anthropic's `cache_control` (`{"type": "ephemeral", "ttl"?}`)."""
    return {k: v for k, v in block.cache_control.model_dump().items() if v is not None}


def parts_of(block: Any) -> list[ContentPart]:
    """The router parts for one LlamaIndex block (none for a `CachePoint` or a thinking block
    without a signature; `to_router_message` handles those)."""
    if isinstance(block, TextBlock):
        return [ContentPart(type="text", text=block.text)]
    if isinstance(block, ImageBlock):
        return [_image_part(block)]
    if isinstance(block, DocumentBlock):
        return [_document_part(block)]
    if isinstance(block, AudioBlock):
        return [_audio_part(block)]
    if isinstance(block, ThinkingBlock):
        part = _thinking_part(block)
        return [] if part is None else [part]
    if isinstance(block, CitableBlock):
        return [part for inner in block.content for part in parts_of(inner)]
    if isinstance(block, CitationBlock):
        return parts_of(block.cited_content)
    if isinstance(block, CachePoint):
        return []
    if isinstance(block, VideoBlock):
        raise ValueError(
            "VideoBlock is not supported: llmrouter sends text, images, documents and audio, "
            "and dropping the video would silently change the question"
        )
    raise ValueError(f"unsupported LlamaIndex content block: {type(block).__name__}")


def _image_part(block: ImageBlock) -> ContentPart:
    if block.url is not None and block.image is None:
        url = str(block.url)
        if url.startswith("data:"):
            media_type, _, data = url[5:].partition(";base64,")
            return ContentPart(type="image", media_type=media_type, data=data, detail=block.detail)
        return ContentPart(type="image", image_url=url, detail=block.detail)
    # Bytes or a local path: inline it as base64 (the validator already base64-encoded bytes).
    data = block.resolve_image(as_base64=True).read().decode("ascii")
    media_type = block.image_mimetype or "image/png"
    return ContentPart(type="image", media_type=media_type, data=data, detail=block.detail)


def _document_part(block: DocumentBlock) -> ContentPart:
    """A PDF (base64, or by URL without fetching it here) or a text document."""
    mimetype = block.document_mimetype or ""
    title = block.title if block.title and block.title != "input_document" else None
    if block.url and block.data is None and block.path is None:
        if mimetype.startswith(_TEXT_DOCUMENT_TYPES):
            raise ValueError(
                f"a text DocumentBlock by URL ({block.url}) is not fetched by llmrouter; "
                "pass its text as data"
            )
        return ContentPart(type="file", url=str(block.url), filename=title)
    raw = block.resolve_document().read()
    if mimetype.startswith(_TEXT_DOCUMENT_TYPES):
        text = raw.decode("utf-8", errors="replace")
        return ContentPart(type="file", text=text, media_type="text/plain", filename=title)
    if mimetype not in ("application/pdf", ""):
        raise ValueError(
            f"DocumentBlock of type {mimetype!r} is not supported: llmrouter passes PDFs and "
            "text documents (extract the text of other formats first)"
        )
    data = base64.b64encode(raw).decode("ascii")
    return ContentPart(type="file", data=data, media_type="application/pdf", filename=title)


def _audio_part(block: AudioBlock) -> ContentPart:
    if block.audio is None and block.path is None:
        raise ValueError(
            "an AudioBlock needs its audio inline or as a local path: providers take audio as "
            "base64, not by URL"
        )
    media_type = _AUDIO_TYPES.get((block.format or "").lower())
    if media_type is None:
        raise ValueError(f"audio must be wav or mp3, got format {block.format!r}")
    data = block.resolve_audio(as_base64=True).read().decode("ascii")
    return ContentPart(type="audio", data=data, media_type=media_type)


def _thinking_part(block: ThinkingBlock) -> ContentPart | None:
    """A signed thinking block to replay; reasoning text alone is for display and dropped."""
    info = block.additional_information
    stored = info.get(PROVIDER_BLOCK_KEY)
    if isinstance(stored, Mapping) and isinstance(stored.get("data"), Mapping):
        provider = ProviderBlock(dialect=str(stored.get("dialect")), data=dict(stored["data"]))
        return ContentPart(type="provider", block=provider)
    signature = info.get("signature")
    if signature and block.content is not None:  # llama-index-llms-anthropic's own shape
        data = {"type": "thinking", "thinking": block.content, "signature": str(signature)}
        return ContentPart(type="provider", block=ProviderBlock(dialect=_ANTHROPIC, data=data))
    return None


def thinking_blocks(message: Message) -> list[ThinkingBlock]:
    """A reply's reasoning as `ThinkingBlock`s: one per signed provider block (signature and
    the block itself kept for replay), or one with the reasoning text when there are none."""
    blocks = [
        ThinkingBlock(
            content=_thinking_text(block),
            additional_information={
                **({"signature": block.data["signature"]} if "signature" in block.data else {}),
                PROVIDER_BLOCK_KEY: {"dialect": block.dialect, "data": dict(block.data)},
            },
        )
        for block in message.blocks
    ]
    if not blocks and message.reasoning:
        blocks.append(ThinkingBlock(content=message.reasoning))
    return blocks


def _thinking_text(block: ProviderBlock) -> str | None:
    text = block.data.get("thinking")
    return text if isinstance(text, str) else None
