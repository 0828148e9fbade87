"""One LLM model object over many providers: fallback, retries, cost caps, cache, rate limits.

    >>> from llmrouter_integrations import Router
    >>> with Router(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]) as router:
    ...     print(router.complete("Explain quantum computing", max_tokens=200).text)

LangChain: `from llmrouter_integrations.langchain import ChatLLMRouter`.
LlamaIndex: `from llmrouter_integrations.llama_index import LLMRouter`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .admission.limits import RateLimitWaitError
from .compat import APILoader
from .core.clock import ManualClock, SystemClock
from .core.events import RouterEvent, listen_to_events
from .costs.ledger import CostLedger, LedgerEntry
from .errors import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    ContextWindowExceededError,
    NoDeploymentAvailableError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderTimeoutError,
    QueueTimeoutError,
    RateLimitError,
    RequestTooLargeError,
    ResponseDecodeError,
    RouterError,
    RoutingError,
    ServerError,
    StateUnavailableError,
    SyncCallInEventLoopError,
)
from .layers.retry import RetryPolicy
from .router import Router
from .routing.health import BreakerPolicy, DeploymentHealth
from .routing.strategies import (
    BalancedStrategy,
    Candidate,
    CostStrategy,
    LatencyStrategy,
    LeastBusyStrategy,
    PriorityStrategy,
    QualityStrategy,
    RoundRobinStrategy,
    RoutingStrategy,
    WeightedStrategy,
)
from .state import CacheStore, LedgerStore, MemoryLedgerStore
from .telemetry import InstrumentationSettings, instrument_all
from .types import (
    Attempt,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ContentPart,
    CostDetail,
    Deployment,
    FinishReason,
    Message,
    ProviderBlock,
    ReasoningEffort,
    Role,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    from .costs.budget import Budget
    from .state import MemoryCacheStore, RedisCacheStore, SQLiteCacheStore, SQLiteLedgerStore


__all__ = [
    "APILoader",
    "AllDeploymentsFailedError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BalancedStrategy",
    "BreakerPolicy",
    "Budget",
    "BudgetExceededError",
    "CacheStore",
    "Candidate",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "CircuitOpenError",
    "ConfigurationError",
    "ContentPart",
    "ContextWindowExceededError",
    "CostDetail",
    "CostLedger",
    "CostStrategy",
    "Deployment",
    "DeploymentHealth",
    "FinishReason",
    "InstrumentationSettings",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "LedgerEntry",
    "LedgerStore",
    "ManualClock",
    "MemoryCacheStore",
    "MemoryLedgerStore",
    "Message",
    "NoDeploymentAvailableError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "PriorityStrategy",
    "ProviderBlock",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderStatusError",
    "ProviderTimeoutError",
    "QualityStrategy",
    "QueueTimeoutError",
    "RateLimitError",
    "RateLimitWaitError",
    "ReasoningEffort",
    "RedisCacheStore",
    "RequestTooLargeError",
    "ResponseDecodeError",
    "RetryPolicy",
    "Role",
    "RoundRobinStrategy",
    "Router",
    "RouterError",
    "RouterEvent",
    "RoutingError",
    "RoutingStrategy",
    "SQLiteCacheStore",
    "SQLiteLedgerStore",
    "ServerError",
    "StateUnavailableError",
    "SyncCallInEventLoopError",
    "SystemClock",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Usage",
    "WeightedStrategy",
    "instrument_all",
    "listen_to_events",
]


_STORES = ("MemoryCacheStore", "RedisCacheStore", "SQLiteCacheStore", "SQLiteLedgerStore")


def __getattr__(name: str) -> Any:
    # Loaded on first use to keep `import llmrouter_integrations` light: Budget lives with
    # the budget arithmetic, the stores' modules import sqlite3 or redis.
    if name == "Budget":
        from .costs.budget import Budget

        return Budget
    if name in _STORES:
        from . import state

        return getattr(state, name)
    raise AttributeError(f"module 'llmrouter_integrations' has no attribute {name!r}")
