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
from .compat import APILoader
from .core.clock import ManualClock, SystemClock
from .core.events import RouterEvent, listen_to_events
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
from .telemetry import InstrumentationSettings, instrument_all
from .types import (
    Attempt,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ContentPart,
    CostDetail,
    Deployment,
    Message,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    from .costs.budget import Budget


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
    "Candidate",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "CircuitOpenError",
    "ConfigurationError",
    "ContentPart",
    "ContextWindowExceededError",
    "CostDetail",
    "CostStrategy",
    "Deployment",
    "DeploymentHealth",
    "InstrumentationSettings",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "ManualClock",
    "Message",
    "NoDeploymentAvailableError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "PriorityStrategy",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderStatusError",
    "ProviderTimeoutError",
    "QualityStrategy",
    "QueueTimeoutError",
    "RateLimitError",
    "RequestTooLargeError",
    "ResponseDecodeError",
    "RetryPolicy",
    "RoundRobinStrategy",
    "Router",
    "RouterError",
    "RouterEvent",
    "RoutingError",
    "RoutingStrategy",
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


def __getattr__(name: str) -> Any:
    # Budget lives with the budget layer; loaded on first use to keep this import light.
    if name == "Budget":
        from .costs.budget import Budget

        return Budget
    raise AttributeError(f"module 'llmrouter_integrations' has no attribute {name!r}")
