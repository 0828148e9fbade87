"""Content parts of a message (text, image, file, audio, provider-private blocks), read from dicts.

`types.py` re-exports `ContentPart` and `ProviderBlock`; `part_from_dict` reads one part of an
OpenAI- or Anthropic-style message.

>>> from llmrouter_integrations.content import ContentPart, part_from_dict
>>> part_from_dict({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}).type
'image'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ContentPart", "PartType", "ProviderBlock", "part_from_dict", "split_data_url"]

PartType = Literal["text", "image", "file", "audio", "provider"]

# Spellings of the two audio formats every provider with audio input takes.
_AUDIO_FORMATS = dict.fromkeys(("audio/wav", "audio/x-wav", "audio/wave"), "wav")
_AUDIO_FORMATS |= dict.fromkeys(("audio/mpeg", "audio/mp3"), "mp3")


@dataclass(slots=True)
class ProviderBlock:
    """A content block only one wire dialect understands, kept exactly as that provider sent it.

    Anthropic's signed `thinking` and `redacted_thinking` blocks are the main case: they must
    go back to Anthropic byte for byte on the next turn of a tool loop, and mean nothing to
    any other provider. A dialect replays the blocks whose `dialect` is its own name and
    drops the others.

    >>> ProviderBlock(
    ...     dialect="anthropic_messages",
    ...     data={"type": "thinking", "thinking": "2 + 2 = 4", "signature": "EqQBCg..."},
    ... )
    """

    dialect: str  # a dialect's name: "anthropic_messages" | "openai_chat"
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        """The block's own type, e.g. "thinking" or "redacted_thinking"."""
        return str(self.data.get("type", ""))


@dataclass(slots=True)
class ContentPart:
    """One part of a multi-part message.

    - `text`: `text`.
    - `image`: `image_url` (http(s) or data: URL), or `data` (base64) with `media_type`.
    - `file`: a document. A PDF as `data` (base64) with `media_type="application/pdf"` or as
      `url`; a plain-text document as `text` with `media_type="text/plain"`. `filename` is
      optional.
    - `audio`: `data` (base64) with `media_type` "audio/wav" or "audio/mpeg" (mp3).
    - `provider`: a `ProviderBlock` in `block`, replayed only to its own dialect.

    Any part may carry `cache_control` (Anthropic's shape: `{"type": "ephemeral"}`, optionally
    with `"ttl": "1h"`): a prompt-cache breakpoint after this part.

    >>> ContentPart(type="image", image_url="https://example.com/cat.png")
    >>> ContentPart(type="file", data=pdf_b64, media_type="application/pdf", filename="a.pdf")
    >>> ContentPart(type="audio", data=wav_b64, media_type="audio/wav")
    >>> ContentPart(type="text", text=long_context, cache_control={"type": "ephemeral"})
    """

    type: PartType
    text: str | None = None
    image_url: str | None = None  # http(s) URL or a data: URL
    media_type: str | None = None  # with `data`, e.g. "image/png", "application/pdf"
    data: str | None = None  # base64, without the data: prefix
    detail: str | None = None  # OpenAI's "auto" | "low" | "high"
    url: str | None = None  # a file's http(s) URL
    filename: str | None = None  # a file's name, e.g. "report.pdf"
    cache_control: dict[str, Any] | None = None
    block: ProviderBlock | None = None  # type "provider" only

    @property
    def audio_format(self) -> str | None:
        """ "wav" or "mp3" for an audio part (from `media_type`), else None."""
        return _AUDIO_FORMATS.get((self.media_type or "").lower())


def split_data_url(url: str) -> tuple[str | None, str] | None:
    """(media type, base64 data) of a base64 data: URL, else None.

    >>> split_data_url("data:application/pdf;base64,JVBERi0=")
    ('application/pdf', 'JVBERi0=')
    """
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, _, data = url[5:].partition(";base64,")
    return head or None, data


def _file_from_dict(kind: str, part: Mapping[str, Any]) -> ContentPart:
    if kind == "file":  # OpenAI: {"file": {"file_data": "data:...;base64,...", "filename": ...}}
        spec = part.get("file") or {}
        inline = split_data_url(str(spec.get("file_data") or ""))
        if inline is None:
            raise ValueError("a file part needs file_data as a base64 data: URL")
        media_type, data = inline
        return ContentPart(
            type="file", media_type=media_type, data=data, filename=spec.get("filename")
        )
    # Anthropic: {"type": "document", "source": {"type": "base64" | "url" | "text", ...}}
    source = part.get("source") or {}
    title = part.get("title")
    if source.get("type") == "base64":
        return ContentPart(
            type="file", media_type=source.get("media_type"), data=source.get("data"),
            filename=title,
        )  # fmt: skip
    if source.get("type") == "url":
        return ContentPart(type="file", url=source.get("url"), filename=title)
    if source.get("type") == "text":
        return ContentPart(
            type="file", media_type=source.get("media_type") or "text/plain",
            text=str(source.get("data") or ""), filename=title,
        )  # fmt: skip
    raise ValueError(f"unsupported document source: {source.get('type')!r}")


def part_from_dict(part: Mapping[str, Any]) -> ContentPart:
    """A `ContentPart` from an OpenAI- or Anthropic-style part dict; ValueError if unknown.

    >>> part_from_dict({"type": "text", "text": "hi"}).text
    'hi'
    """
    result = _part_body(part)
    if isinstance(part.get("cache_control"), Mapping):
        result.cache_control = dict(part["cache_control"])
    return result


def _part_body(part: Mapping[str, Any]) -> ContentPart:
    kind = part.get("type")
    if kind == "text":
        return ContentPart(type="text", text=str(part.get("text", "")))
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        detail = image.get("detail") if isinstance(image, Mapping) else None
        return ContentPart(type="image", image_url=str(url), detail=detail)
    if kind == "image":  # Anthropic-style block
        source = part.get("source") or {}
        if source.get("type") == "base64":
            return ContentPart(
                type="image", media_type=source.get("media_type"), data=source.get("data")
            )
        return ContentPart(type="image", image_url=source.get("url") or part.get("url"))
    if kind in ("file", "document"):
        return _file_from_dict(kind, part)
    if kind == "input_audio":  # OpenAI: {"input_audio": {"data": ..., "format": "wav"|"mp3"}}
        audio = part.get("input_audio") or {}
        media_type = {"wav": "audio/wav", "mp3": "audio/mpeg"}.get(str(audio.get("format")))
        if media_type is None:
            raise ValueError(f"audio format must be 'wav' or 'mp3', got {audio.get('format')!r}")
        return ContentPart(type="audio", data=audio.get("data"), media_type=media_type)
    if kind in ("thinking", "redacted_thinking"):  # Anthropic's own, kept for Anthropic
        return ContentPart(
            type="provider", block=ProviderBlock(dialect="anthropic_messages", data=dict(part))
        )
    raise ValueError(f"unsupported content part type: {kind!r}")
