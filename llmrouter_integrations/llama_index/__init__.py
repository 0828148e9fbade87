"""LlamaIndex integration: `LLMRouter` (a FunctionCallingLLM) and the router's instrumentation events.

>>> from llama_index.core import Settings
>>> from llmrouter_integrations.llama_index import LLMRouter
>>> Settings.llm = LLMRouter(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
"""

from __future__ import annotations

from .._optional import require

require("llama_index.core", package="llama-index-core", extra="llama-index", feature=__name__)

from .events import (
    RouterBudgetAlertEvent,
    RouterCostEvent,
    RouterCostEventHandler,
    RouterFallbackEvent,
    RouterInstrumentationEvent,
    RouterRetryEvent,
)
from .llm import LLMRouter

__all__ = [
    "LLMRouter",
    "RouterBudgetAlertEvent",
    "RouterCostEvent",
    "RouterCostEventHandler",
    "RouterFallbackEvent",
    "RouterInstrumentationEvent",
    "RouterRetryEvent",
]
