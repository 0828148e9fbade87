"""Public test helpers: a loopback fake provider server and scripted in-process backends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .scripted import ScriptedBackend, ScriptedStep

if TYPE_CHECKING:
    from .fake_server import FakeProviderServer, ModelBehavior, RecordedRequest

__all__ = [
    "FakeProviderServer",
    "ModelBehavior",
    "RecordedRequest",
    "ScriptedBackend",
    "ScriptedStep",
]


def __getattr__(name: str) -> Any:
    # The fake server imports aiohttp's web server; load it only when asked for.
    if name in ("FakeProviderServer", "ModelBehavior", "RecordedRequest"):
        from . import fake_server

        return getattr(fake_server, name)
    raise AttributeError(name)
