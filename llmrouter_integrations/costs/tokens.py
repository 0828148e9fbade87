"""Local, dependency-free token estimates for budgets, context-window checks and TPM limits.

Estimates lean high on purpose (about 3.5 characters a token plus per-message overhead):
a budget reservation or a context-window filter must not under-count.

    >>> estimate_input_tokens(ChatRequest(messages=[Message(role="user", content="hello")]))
    9
"""

from __future__ import annotations

import json

from ..types import ChatRequest, ContentPart, Message

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "OUTPUT_CAP_KEYS",
    "estimate_input_tokens",
    "estimate_text_tokens",
    "output_cap",
]

_CHARS_PER_TOKEN = 3.5
_PER_MESSAGE = 4
_PER_IMAGE = 1_000
# PDFs cost text plus a page image per page: about one token per 15 bytes (20 base64
# characters) is the high side of what Anthropic and OpenAI bill; a PDF by URL is unseen.
_PDF_CHARS = 20
_PER_DOCUMENT_URL = 3_000
# Audio is billed by duration: a token per ~1000 base64 characters is high for wav and mp3.
_AUDIO_CHARS = 1_000
# Worst-case output when a request names no max_tokens (used by budgets and TPM limits).
DEFAULT_MAX_OUTPUT_TOKENS = 4_096
# Spellings of the output cap a user may pass through `extra_body` (OpenAI, Anthropic, Gemini).
OUTPUT_CAP_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def output_cap(request: ChatRequest, default: int = DEFAULT_MAX_OUTPUT_TOKENS) -> int:
    """The most output tokens this request may produce: `max_tokens`, else the largest cap
    given in `extra_body`, else `default`.

    >>> output_cap(ChatRequest(messages=[], extra_body={"max_completion_tokens": 300}))
    300
    """
    if request.max_tokens is not None:
        return request.max_tokens
    caps = [
        value
        for key in OUTPUT_CAP_KEYS
        if type(value := request.extra_body.get(key)) is int and value > 0
    ]
    return max(caps) if caps else default


def estimate_text_tokens(text: str) -> int:
    """Tokens in a piece of text, rounded up."""
    if not text:
        return 0
    return int(len(text) / _CHARS_PER_TOKEN) + 1


def _part_tokens(part: ContentPart) -> int:
    """Media lean high by size, so a big PDF cannot slip past a budget or a context window."""
    if part.type == "text" or (part.type == "file" and part.text is not None):
        return estimate_text_tokens(part.text or "")
    if part.type == "file":
        return _PER_DOCUMENT_URL if part.data is None else len(part.data) // _PDF_CHARS + 100
    if part.type == "audio":
        return len(part.data or "") // _AUDIO_CHARS + 100
    if part.type == "provider":
        return estimate_text_tokens(json.dumps(part.block.data)) if part.block else 0
    return _PER_IMAGE


def _message_tokens(message: Message) -> int:
    tokens = _PER_MESSAGE
    if isinstance(message.content, str):
        tokens += estimate_text_tokens(message.content)
    elif message.content:
        for part in message.content:
            tokens += _part_tokens(part)
    for call in message.tool_calls:
        tokens += estimate_text_tokens(call.name) + estimate_text_tokens(json.dumps(call.arguments))
    return tokens


def estimate_input_tokens(request: ChatRequest) -> int:
    """Prompt tokens of a request: messages, tool schemas and the response schema.

    Several layers ask for the same request, so the estimate is kept on it; it is redone
    when the messages list (or its length), the tools or the response format change.
    """
    messages, tools, response_format = request.messages, request.tools, request.response_format
    memo = request._token_estimate
    if (
        memo is not None
        and memo[0] is messages
        and memo[1] == len(messages)
        and memo[2] is tools
        and memo[3] is response_format
    ):
        tokens: int = memo[4]
        return tokens
    tokens = _estimate_input_tokens(request)
    request._token_estimate = (messages, len(messages), tools, response_format, tokens)
    return tokens


def _estimate_input_tokens(request: ChatRequest) -> int:
    tokens = 3 + sum(_message_tokens(m) for m in request.messages)
    for tool in request.tools or ():
        tokens += 8 + estimate_text_tokens(tool.name + tool.description)
        tokens += estimate_text_tokens(json.dumps(tool.parameters, separators=(",", ":")))
    if request.response_format:
        tokens += estimate_text_tokens(json.dumps(request.response_format, separators=(",", ":")))
    return tokens
