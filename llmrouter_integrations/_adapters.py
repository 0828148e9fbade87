"""What the LangChain and LlamaIndex adapters share: JSON-safe copies and attempts as JSON.

Both frameworks put the router's facts about an answer (route, attempts, raw provider
reply) where their caches and tracers serialise them, so both need the same conversion.

    >>> jsonable({"cost": Decimal("0.0002"), "route": response.route})
    {'cost': 0.0002, 'route': {...}}
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from .types import Attempt

__all__ = ["attempts_to_json", "jsonable"]


def jsonable(value: Any) -> Any:
    """A copy of `value` made of JSON types only (so framework caches can store it).

    Decimals become floats, non-finite floats None, bytes base64 text, exceptions
    "Type: message", objects with `to_dict`/`model_dump` and dataclasses their fields.

    >>> jsonable({"n": Decimal("1.5"), "tags": ("a",), "bad": float("nan")})
    {'n': 1.5, 'tags': ['a'], 'bad': None}
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    to_dict = getattr(value, "to_dict", None) or getattr(value, "model_dump", None)
    if callable(to_dict):
        return jsonable(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return str(value)


def attempts_to_json(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    """The failures before an answer, one dict each: deployment, error type and message,
    HTTP status (None if the call never got one) and latency.

    >>> attempts_to_json(response.attempts)[0]["error_type"]
    'RateLimitError'
    """
    return [
        {
            "deployment": attempt.deployment,
            "error_type": type(attempt.error).__name__,
            "error": str(attempt.error),
            "status_code": getattr(attempt.error, "status_code", None),
            "latency_s": round(float(attempt.latency_s), 6),
        }
        for attempt in attempts
    ]
