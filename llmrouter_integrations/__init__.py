"""One LLM model object over many providers: fallback, retries, cost caps, cache, rate limits.

    >>> from llmrouter_integrations import Router
    >>> with Router(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]) as router:
    ...     print(router.complete("Explain quantum computing", max_tokens=200).text)

LangChain: `from llmrouter_integrations.langchain import ChatLLMRouter`.
LlamaIndex: `from llmrouter_integrations.llama_index import LLMRouter`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
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
    from .admission.limits import RateLimitWaitError
    from .compat import APILoader
    from .core.clock import ManualClock, SystemClock
    from .core.events import RouterEvent, listen_to_events
    from .costs.budget import Budget
    from .costs.ledger import CostLedger, LedgerEntry
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
    from .state import (
        CacheStore,
        LedgerStore,
        MemoryCacheStore,
        MemoryLedgerStore,
        RedisCacheStore,
        SQLiteCacheStore,
        SQLiteLedgerStore,
    )
    from .telemetry import InstrumentationSettings, instrument_all


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


# Everything but the errors and the data types loads on first use (PEP 562), so a plain
# `import llmrouter_integrations` stays light: the router's layers, planner and stores are
# imported when `Router` (or another of these names) is first looked up.
_LAZY = {
    "APILoader": ".compat",
    "BalancedStrategy": ".routing.strategies",
    "BreakerPolicy": ".routing.health",
    "Budget": ".costs.budget",
    "CacheStore": ".state",
    "Candidate": ".routing.strategies",
    "CostLedger": ".costs.ledger",
    "CostStrategy": ".routing.strategies",
    "DeploymentHealth": ".routing.health",
    "InstrumentationSettings": ".telemetry",
    "LatencyStrategy": ".routing.strategies",
    "LeastBusyStrategy": ".routing.strategies",
    "LedgerEntry": ".costs.ledger",
    "LedgerStore": ".state",
    "ManualClock": ".core.clock",
    "MemoryCacheStore": ".state",
    "MemoryLedgerStore": ".state",
    "PriorityStrategy": ".routing.strategies",
    "QualityStrategy": ".routing.strategies",
    "RateLimitWaitError": ".admission.limits",
    "RedisCacheStore": ".state",
    "RetryPolicy": ".layers.retry",
    "RoundRobinStrategy": ".routing.strategies",
    "Router": ".router",
    "RouterEvent": ".core.events",
    "RoutingStrategy": ".routing.strategies",
    "SQLiteCacheStore": ".state",
    "SQLiteLedgerStore": ".state",
    "SystemClock": ".core.clock",
    "WeightedStrategy": ".routing.strategies",
    "instrument_all": ".telemetry",
    "listen_to_events": ".core.events",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrouter_integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # looked up once; later reads are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
