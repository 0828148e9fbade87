"""Scrub an API key out of a provider error, its fields and its exception chain: the one place.

>>> forms = secret_forms("sk-live\\\\abc")
>>> error = ProviderError("bad key sk-live\\\\abc")
>>> scrub_error(error, forms).message
'bad key ***'
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

from ..errors import ProviderError

__all__ = ["REDACTED", "scrub_error", "secret_forms"]

REDACTED = "***"
_MAX_DEPTH = 64  # error bodies nest little; deeper structures are withheld, not walked
_MAX_CHAIN = 16


def secret_forms(key: str | None) -> tuple[str, ...]:
    """The key as a provider may echo it: raw, JSON-escaped, repr-escaped, percent-encoded.

    Longest first, so a longer form is replaced before a shorter one inside it.
    """
    if not key:
        return ()
    forms = {
        key,
        json.dumps(key)[1:-1],
        json.dumps(key, ensure_ascii=False)[1:-1],
        repr(key)[1:-1],
        quote(key, safe=""),
        quote_plus(key, safe=""),
    }
    return tuple(sorted(forms, key=len, reverse=True))


def scrub_error(error: ProviderError, forms: tuple[str, ...]) -> ProviderError:
    """Remove every form of the key from `error` (message, args, body, headers, any field),
    and cut from its `__cause__`/`__context__` chain whatever could hold the raw reply or
    the request (a JSONDecodeError's `.doc`, an HTTP library error's `.request` headers).
    Returns `error`, changed in place.
    """
    if forms:
        for name, value in list(vars(error).items()):
            setattr(error, name, _scrub(value, forms, 0))
        error.args = tuple(_scrub(arg, forms, 0) for arg in error.args)
    _cut_chain(error, forms)
    return error


def _scrub(value: Any, forms: tuple[str, ...], depth: int) -> Any:
    if isinstance(value, str):
        for form in forms:
            if form in value:
                value = value.replace(form, REDACTED)
        return value
    if isinstance(value, bytes):
        return _scrub(value.decode("utf-8", "replace"), forms, depth)
    if isinstance(value, (dict, list, tuple)) and depth >= _MAX_DEPTH:
        return "<withheld: nested too deeply>"
    if isinstance(value, dict):
        return {
            _scrub(key, forms, depth + 1): _scrub(item, forms, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(item, forms, depth + 1) for item in value)
    return value


def _cut_chain(error: BaseException, forms: tuple[str, ...]) -> None:
    """Keep only chain links that can hold nothing secret: our own (scrubbed) errors and
    plain errors whose text is clean; the chain ends at the first other link. `raise X
    from None` still sets `__context__`, which tracebacks hide but `e.__context__`,
    debuggers and error trackers do not, so kept links become explicit causes."""
    kept: list[BaseException] = [error]
    current: BaseException = error
    while len(kept) < _MAX_CHAIN:
        link = current.__cause__ if current.__cause__ is not None else current.__context__
        if link is None or any(link is seen for seen in kept):
            break
        if isinstance(link, ProviderError):
            if forms:
                for name, value in list(vars(link).items()):
                    setattr(link, name, _scrub(value, forms, 0))
                link.args = tuple(_scrub(arg, forms, 0) for arg in link.args)
        elif not _harmless(link, forms):
            break
        kept.append(link)
        current = link
    for position, link in enumerate(kept):
        link.__context__ = None
        link.__cause__ = kept[position + 1] if position + 1 < len(kept) else None
        link.__suppress_context__ = True


def _harmless(error: BaseException, forms: tuple[str, ...]) -> bool:
    # HTTP library errors carry the request (and its Authorization header) or the reply;
    # ValueError covers JSONDecodeError (.doc is the raw body) and parser complaints.
    if type(error).__module__.split(".")[0] in ("aiohttp", "httpx", "httpcore", "json"):
        return False
    if not isinstance(error, (OSError, KeyError, IndexError, TypeError, AttributeError)):
        return False
    try:
        text = repr(error.args) + str(vars(error) if hasattr(error, "__dict__") else "")
    except Exception:
        return False
    return not any(form in text for form in forms)
