"""Documents and audio in requests to the fake server, validated as the real APIs do.

    >>> content_problem("anthropic", body, ModelBehavior())     # None, or a 400 Problem

(How they count as tokens: `_fake_replies.media_tokens`.)
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ._fake_behavior import ModelBehavior
from ._fake_errors import Problem
from ._fake_wire import Flavor

__all__ = ["content_problem"]

# Blocks of the other wire format that Anthropic's schema refuses by tag.
_NOT_ANTHROPIC = ("input_audio", "file", "image_url", "audio")
_ANTHROPIC_TAGS = (
    "'text', 'image', 'document', 'search_result', 'tool_use', 'tool_result', 'thinking', "
    "'redacted_thinking', 'server_tool_use', 'web_search_tool_result'"
)


def _decodes(data: Any) -> bytes | None:
    if not isinstance(data, str) or not data:
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def content_problem(
    flavor: Flavor, body: dict[str, Any], behavior: ModelBehavior
) -> Problem | None:
    """The 400 a real provider gives for a bad document/file/audio part, or None."""
    for index, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for position, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            where = f"messages.{index}.content.{position}"
            if flavor == "anthropic":
                problem = _anthropic_part(part, where, behavior)
                inner = part.get("content") if part.get("type") == "tool_result" else None
                for k, block in enumerate(inner if isinstance(inner, list) else ()):
                    if problem is None and isinstance(block, dict):
                        problem = _anthropic_part(block, f"{where}.content.{k}", behavior)
            else:
                problem = _openai_part(part, f"messages[{index}].content[{position}]", behavior)
            if problem is not None:
                return problem
    return None


def _anthropic_part(part: dict[str, Any], where: str, behavior: ModelBehavior) -> Problem | None:
    kind = part.get("type")
    if kind in _NOT_ANTHROPIC:
        text = (
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the "
            f"expected tags: {_ANTHROPIC_TAGS}"
        )
        return Problem(400, text, "invalid_request_error")
    if kind != "document":
        return None
    source = part.get("source") or {}
    source_type = source.get("type")
    if source_type == "base64":
        if source.get("media_type") != "application/pdf":
            text = f"{where}.document.source.base64.media_type: Input should be 'application/pdf'"
            return Problem(400, text, "invalid_request_error")
        raw = _decodes(source.get("data"))
        if raw is None or not raw.startswith(b"%PDF-"):
            return Problem(
                400, f"{where}: The PDF specified was not valid.", "invalid_request_error"
            )
    elif source_type == "url":
        url = str(source.get("url") or "")
        if not url.startswith(("https://", "http://")):
            text = f"{where}.document.source.url: Invalid URL format: {url}"
            return Problem(400, text, "invalid_request_error")
    elif source_type == "text":
        if source.get("media_type") != "text/plain" or not isinstance(source.get("data"), str):
            text = f"{where}.document.source.text.media_type: Input should be 'text/plain'"
            return Problem(400, text, "invalid_request_error")
        return None
    elif source_type not in ("content", "file"):
        text = (
            f"{where}.document.source: Input tag '{source_type}' found using 'type' does not "
            "match any of the expected tags: 'base64', 'content', 'text', 'url', 'file'"
        )
        return Problem(400, text, "invalid_request_error")
    if behavior.pdf is False:
        return Problem(
            400, f"{where}: This model does not support PDF input.", "invalid_request_error"
        )
    return None


def _openai_part(part: dict[str, Any], where: str, behavior: ModelBehavior) -> Problem | None:
    kind = part.get("type")
    if kind == "file":
        spec = part.get("file") or {}
        if spec.get("file_id"):
            return _refused("file", where, behavior.pdf)
        data = spec.get("file_data")
        if not isinstance(data, str) or not data.startswith("data:"):
            text = (
                f"Invalid '{where}.file.file_data'. Expected a base64-encoded data URL with an "
                "application/pdf MIME type (e.g. 'data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ=='),"
                " but got a value without the 'data:' prefix."
            )
            return Problem(
                400, text, "invalid_request_error", "invalid_value", f"{where}.file.file_data"
            )
        head, _, payload = data[5:].partition(",")
        raw = _decodes(payload) if head.endswith(";base64") else None
        if head != "application/pdf;base64" or raw is None or not raw.startswith(b"%PDF-"):
            text = (
                f"Invalid file data: '{where}.file.file_data'. Expected a base64-encoded data URL "
                "with an application/pdf MIME type holding a valid PDF."
            )
            return Problem(
                400, text, "invalid_request_error", "invalid_value", f"{where}.file.file_data"
            )
        if not spec.get("filename"):
            text = f"Missing required parameter: '{where}.file.filename'."
            return Problem(
                400,
                text,
                "invalid_request_error",
                "missing_required_parameter",
                f"{where}.file.filename",
            )
        return _refused("file", where, behavior.pdf)
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        fmt = audio.get("format")
        if fmt not in ("wav", "mp3"):
            text = f"Invalid value: '{fmt}'. Supported values are: 'wav' and 'mp3'."
            return Problem(
                400, text, "invalid_request_error", "invalid_value", f"{where}.input_audio.format"
            )
        if _decodes(audio.get("data")) is None:
            text = f"Invalid '{where}.input_audio.data'. Expected a base64-encoded string."
            return Problem(
                400, text, "invalid_request_error", "invalid_value", f"{where}.input_audio.data"
            )
        return _refused("input_audio", where, behavior.audio)
    return None


def _refused(kind: str, where: str, accepted: bool | None) -> Problem | None:
    if accepted is not False:
        return None
    text = f"Invalid content type. '{kind}' is not supported by this model ({where})."
    return Problem(400, text, "invalid_request_error", "invalid_value", where)
