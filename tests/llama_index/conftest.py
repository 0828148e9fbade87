"""Fixtures for the LlamaIndex tests: a fake provider server per module, event capture."""

from __future__ import annotations

from llamaindex_support import fake, recorder

__all__ = ["fake", "recorder"]
