"""Decoding what providers send as JSON: fast for a stream event, errors as the tree wants."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import ResponseDecodeError
from ._common import shorten

__all__ = ["load_event_object", "load_json"]

# json's C scanner, called directly: `json.loads(text)` adds two whitespace regex passes in
# Python around the same scan (about a microsecond per stream event).
_scan_json: Callable[[str, int], tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]


def load_json(text: str) -> Any:
    """`json.loads(text)`, faster for compact JSON such as a stream event's data; anything
    else (whitespace around it, a BOM, an error) goes through `json.loads`, errors and all."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError):
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def load_event_object(data: str, model: str | None) -> dict[str, Any]:
    """A stream event's data as a JSON object, else `ResponseDecodeError` saying what it was.

    >>> load_event_object('{"type": "ping"}', "claude-haiku-4-5")
    {'type': 'ping'}
    """
    try:
        payload = load_json(data)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ResponseDecodeError(
            f"stream event is not JSON: {shorten(data, 80)!r}", model=model
        ) from None
    if not isinstance(payload, dict):
        raise ResponseDecodeError("stream event is not a JSON object", model=model)
    return payload
