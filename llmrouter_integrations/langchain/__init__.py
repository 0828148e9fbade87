"""LangChain integration: `ChatLLMRouter` (a BaseChatModel) and cost callbacks.

>>> from llmrouter_integrations.langchain import ChatLLMRouter, get_router_callback
>>> model = ChatLLMRouter(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
>>> with get_router_callback() as cb:
...     model.invoke("Hello")
>>> cb.total_cost
"""

from __future__ import annotations

from .._optional import require

require("langchain_core", package="langchain-core", extra="langchain", feature=__name__)

from .callbacks import ProviderTotals, RouterCostCallbackHandler, get_router_callback
from .chat_model import ChatLLMRouter

__all__ = ["ChatLLMRouter", "ProviderTotals", "RouterCostCallbackHandler", "get_router_callback"]
