"""Infrastructure every layer shares: the ChatBackend seam, the clock, events, the sync bridge.

>>> from llmrouter_integrations.core import ChatBackend, ManualClock, run_sync
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backend import ChatBackend, WrapperBackend, aclose_stream, closing_stream
from .clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from .events import EventHandler, EventHub, RouterEvent, listen_to_events

if TYPE_CHECKING:
    from ._sync import blocked_caller_loop, is_bridge_loop, iterate_sync, run_sync

__all__ = [
    "SYSTEM_CLOCK",
    "ChatBackend",
    "Clock",
    "EventHandler",
    "EventHub",
    "ManualClock",
    "RouterEvent",
    "SystemClock",
    "WrapperBackend",
    "aclose_stream",
    "blocked_caller_loop",
    "closing_stream",
    "is_bridge_loop",
    "iterate_sync",
    "listen_to_events",
    "run_sync",
]


def __getattr__(name: str) -> Any:
    # The sync bridge registers exit and fork hooks when imported: only when first used.
    if name in ("blocked_caller_loop", "is_bridge_loop", "iterate_sync", "run_sync"):
        from . import _sync

        return getattr(_sync, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
