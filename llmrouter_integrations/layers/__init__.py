"""The policy layers, one module each, in stack order (outermost first):

    ledger → cache → queue → fallback → per deployment: budget → breaker → retry →
    ratelimit → http

Each wraps a `core.backend.ChatBackend` and is one; `_assemble.py` stacks them. `params`
(options a deployment does not take) sits just above http.

    >>> from llmrouter_integrations.layers import CacheBackend, RetryBackend
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .breaker import CircuitBreakerBackend
    from .budget import BudgetBackend
    from .cache import CacheBackend
    from .fallback import FallbackBackend
    from .http import DeploymentBackend
    from .ledger import LedgerBackend
    from .params import ParamsBackend
    from .queue import QueueBackend
    from .ratelimit import RateLimitBackend
    from .retry import RetryBackend, RetryPolicy

__all__ = [
    "BudgetBackend",
    "CacheBackend",
    "CircuitBreakerBackend",
    "DeploymentBackend",
    "FallbackBackend",
    "LedgerBackend",
    "ParamsBackend",
    "QueueBackend",
    "RateLimitBackend",
    "RetryBackend",
    "RetryPolicy",
]

# Each name loads its module on first use, so importing the package costs nothing.
_WHERE = {
    "BudgetBackend": "budget",
    "CacheBackend": "cache",
    "CircuitBreakerBackend": "breaker",
    "DeploymentBackend": "http",
    "FallbackBackend": "fallback",
    "LedgerBackend": "ledger",
    "ParamsBackend": "params",
    "QueueBackend": "queue",
    "RateLimitBackend": "ratelimit",
    "RetryBackend": "retry",
    "RetryPolicy": "retry",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
