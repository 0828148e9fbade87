"""LangChain content blocks (v1, v0, OpenAI and Anthropic shapes) as router content parts.

>>> to_part({"type": "file", "base64": pdf_b64, "mime_type": "application/pdf"}).type
'file'
>>> to_part({"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}})
ContentPart(type='text', text='rules', ..., cache_control={'type': 'ephemeral'}, ...)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from ..content import split_data_url
from ..types import ContentPart, ProviderBlock

__all__ = [
    "ANTHROPIC_DIALECT",
    "UnsupportedContentError",
    "cache_control_of",
    "provider_part",
    "to_part",
]

ANTHROPIC_DIALECT = "anthropic_messages"

# History blocks only the provider that produced them understands. Assistant turns keep
# Anthropic's signed ones (see `provider_part`); anywhere else they carry nothing to send.
_PROVIDER_PRIVATE = frozenset(
    {"thinking", "redacted_thinking", "reasoning", "server_tool_call", "server_tool_result"}
)
# Blocks already represented elsewhere on the message (AIMessage.tool_calls).
_TOOL_CALL_BLOCKS = frozenset({"tool_use", "tool_call", "tool_call_chunk", "invalid_tool_call"})
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


class UnsupportedContentError(ValueError):
    """A message holds content the router cannot carry (video, files by provider id...)."""


def cache_control_of(block: Mapping[str, Any]) -> dict[str, Any] | None:
    """A block's prompt-cache breakpoint: Anthropic's `cache_control` key, or LangChain v1's
    `extras={"cache_control": ...}`."""
    value = block.get("cache_control")
    if value is None and isinstance(block.get("extras"), Mapping):
        value = block["extras"].get("cache_control")
    return dict(value) if isinstance(value, Mapping) else None


def to_part(block: Any) -> ContentPart | None:
    """One content block as a part; None for blocks that carry nothing to send."""
    if isinstance(block, str):
        return ContentPart(type="text", text=block)
    if not isinstance(block, Mapping):
        raise UnsupportedContentError(f"unsupported content block: {block!r}")
    part = _part_body(block)
    if part is not None:
        part.cache_control = cache_control_of(block)
    return part


def provider_part(block: Mapping[str, Any]) -> ContentPart | None:
    """An Anthropic signed reasoning block from an assistant turn, kept to replay unmodified.

    Accepts Anthropic's own `thinking` / `redacted_thinking` blocks (ChatAnthropic's
    history) and LangChain v1 `reasoning` blocks that carry a signature in `extras`.
    Reasoning without a signature is display text and None is returned.
    """
    kind = block.get("type")
    signed = {"thinking": "signature", "redacted_thinking": "data"}.get(str(kind))
    if signed is not None and block.get(signed):
        data = dict(block)
    elif kind == "reasoning" and isinstance(block.get("extras"), Mapping):
        signature = block["extras"].get("signature")
        if not signature:
            return None
        data = {"type": "thinking", "thinking": str(block.get("reasoning") or "")}
        data["signature"] = signature
    else:
        return None
    data.pop("index", None)  # LangChain's stream bookkeeping, not part of the block
    return ContentPart(type="provider", block=ProviderBlock(dialect=ANTHROPIC_DIALECT, data=data))


def _part_body(block: Mapping[str, Any]) -> ContentPart | None:
    kind = block.get("type")
    if kind == "text":
        return ContentPart(type="text", text=str(block.get("text") or ""))
    if kind in _PROVIDER_PRIVATE or kind in _TOOL_CALL_BLOCKS or kind == "non_standard":
        return None
    if kind in ("image_url", "image"):
        return _image(block)
    if kind in ("file", "document", "text-plain"):
        return _file(block)
    if kind in ("audio", "input_audio"):
        return _audio(block)
    if kind == "video":
        raise UnsupportedContentError(
            "video content blocks are not supported by llmrouter_integrations; "
            "text, images, files (PDF, text) and audio are"
        )
    raise UnsupportedContentError(f"unsupported content block type: {kind!r}")


def _inline_data(block: Mapping[str, Any]) -> str | None:
    """Base64 data in the v1 (`base64`) or v0 (`source_type="base64"`, `data`) shape."""
    data = block.get("base64")
    if not data and block.get("source_type") == "base64":
        data = block.get("data")
    return str(data) if data else None


def _refuse_file_id(block: Mapping[str, Any], what: str) -> None:
    if block.get("file_id") or (block.get("id") and block.get("source_type") == "id"):
        raise UnsupportedContentError(
            f"{what} blocks by provider file id cannot be routed (each provider keeps its "
            "own files); send the data as base64 or a URL"
        )


def _image(block: Mapping[str, Any]) -> ContentPart:
    if block.get("type") == "image_url":
        image = block.get("image_url")
        if isinstance(image, Mapping):
            return ContentPart(
                type="image", image_url=str(image["url"]), detail=image.get("detail")
            )
        return ContentPart(type="image", image_url=str(image))
    source = block.get("source")
    if isinstance(source, Mapping):  # Anthropic: {"type": "base64"|"url", ...}
        if source.get("type") == "base64":
            return ContentPart(
                type="image", media_type=source.get("media_type"), data=source.get("data")
            )
        return ContentPart(type="image", image_url=str(source.get("url")))
    _refuse_file_id(block, "image")
    data = _inline_data(block)
    if data:
        return ContentPart(
            type="image", media_type=str(block.get("mime_type") or "image/png"), data=data
        )
    url = block.get("url")
    if url:
        return ContentPart(type="image", image_url=str(url))
    raise UnsupportedContentError("image blocks must carry base64 data or a URL")


def _file(block: Mapping[str, Any]) -> ContentPart:
    kind = block.get("type")
    title = block.get("filename") or block.get("title") or _extra(block, "filename")
    if kind == "text-plain":  # v1 PlainTextContentBlock: a text document
        return _text_document(str(block.get("text") or ""), title)
    if kind == "document":  # Anthropic: {"source": {"type": "base64"|"url"|"text", ...}}
        return _anthropic_document(block)
    spec = block.get("file")
    if isinstance(spec, Mapping):  # OpenAI: {"file": {"file_data": "data:...", "filename"}}
        if spec.get("file_id"):
            _refuse_file_id(spec, "file")
        inline = split_data_url(str(spec.get("file_data") or ""))
        if inline is None:
            raise UnsupportedContentError("an OpenAI file block needs file_data as a data: URL")
        media_type, payload = inline
        return _binary_file(media_type, payload, spec.get("filename") or title)
    _refuse_file_id(block, "file")
    data = _inline_data(block)
    mime_type = block.get("mime_type")
    if data:
        return _binary_file(str(mime_type) if mime_type else None, data, title)
    if block.get("source_type") == "text" or (block.get("text") and mime_type == "text/plain"):
        return _text_document(str(block.get("text") or ""), title)
    if block.get("url"):
        return ContentPart(type="file", url=str(block["url"]), filename=title)
    raise UnsupportedContentError("file blocks must carry base64 data, text or a URL")


def _extra(block: Mapping[str, Any], key: str) -> Any:
    extras = block.get("extras")
    return extras.get(key) if isinstance(extras, Mapping) else None


def _text_document(text: str, title: Any) -> ContentPart:
    return ContentPart(
        type="file", text=text, media_type="text/plain", filename=str(title) if title else None
    )


def _binary_file(media_type: str | None, data: str, title: Any) -> ContentPart:
    filename = str(title) if title else None
    if media_type == "text/plain":  # a text file sent as bytes is still a text document
        try:
            return _text_document(base64.b64decode(data, validate=True).decode("utf-8"), filename)
        except (binascii.Error, UnicodeDecodeError):
            pass
    return ContentPart(
        type="file", data=data, media_type=media_type or "application/pdf", filename=filename
    )


def _anthropic_document(block: Mapping[str, Any]) -> ContentPart:
    source = block.get("source")
    source = source if isinstance(source, Mapping) else {}
    title = block.get("title")
    kind = source.get("type")
    if kind == "base64":
        return _binary_file(source.get("media_type"), str(source.get("data") or ""), title)
    if kind == "url":
        return ContentPart(type="file", url=str(source.get("url")), filename=title)
    if kind == "text":
        return _text_document(str(source.get("data") or ""), title)
    if kind == "content":  # custom content: a list of text blocks
        blocks = source.get("content")
        texts = [b.get("text") or "" for b in blocks or () if isinstance(b, Mapping)]
        return _text_document("\n".join(texts), title)
    raise UnsupportedContentError(f"unsupported document source type: {kind!r}")


def _audio(block: Mapping[str, Any]) -> ContentPart:
    if block.get("type") == "input_audio":  # OpenAI: {"input_audio": {"data", "format"}}
        spec = block.get("input_audio")
        spec = spec if isinstance(spec, Mapping) else {}
        media_type = _AUDIO_TYPES.get(str(spec.get("format")))
        if media_type is None or not spec.get("data"):
            raise UnsupportedContentError(
                f"input_audio needs base64 data and format 'wav' or 'mp3', got "
                f"format {spec.get('format')!r}"
            )
        return ContentPart(type="audio", data=str(spec["data"]), media_type=media_type)
    _refuse_file_id(block, "audio")
    data = _inline_data(block)
    if not data:
        raise UnsupportedContentError(
            "audio blocks must carry base64 data (providers take audio inline, not by URL)"
        )
    part = ContentPart(type="audio", data=data, media_type=str(block.get("mime_type") or ""))
    if part.audio_format is None:
        raise UnsupportedContentError(
            f"audio must be wav or mp3 (audio/wav, audio/mpeg), got {block.get('mime_type')!r}"
        )
    return part
