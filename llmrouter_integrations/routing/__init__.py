"""Routing: which deployments may serve a request, in which order, and how each is doing.

`planner` filters (capabilities, context window, circuits, budgets, capacity) and ranks with a
`strategies` strategy; `catalog` holds model facts and shipped priors (data/); `health` keeps
latency, errors and circuits (`circuit`: when one opens).

    >>> from llmrouter_integrations.routing import BalancedStrategy, RoutingPlanner
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import Catalog, ModelInfo
    from .circuit import BreakerPolicy, CircuitState, classify_failure
    from .health import DeploymentHealth, HealthTracker
    from .planner import (
        BudgetAwarePlanner,
        Planner,
        PriorityPlanner,
        Route,
        RoutePlan,
        RoutingPlanner,
    )
    from .strategies import (
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
        make_strategy,
    )

__all__ = [
    "BalancedStrategy",
    "BreakerPolicy",
    "BudgetAwarePlanner",
    "Candidate",
    "Catalog",
    "CircuitState",
    "CostStrategy",
    "DeploymentHealth",
    "HealthTracker",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "ModelInfo",
    "Planner",
    "PriorityPlanner",
    "PriorityStrategy",
    "QualityStrategy",
    "RoundRobinStrategy",
    "Route",
    "RoutePlan",
    "RoutingPlanner",
    "RoutingStrategy",
    "WeightedStrategy",
    "classify_failure",
    "make_strategy",
]

# Each name loads its module on first use, so importing the package costs nothing.
_WHERE = {
    "BalancedStrategy": "strategies",
    "BreakerPolicy": "circuit",
    "BudgetAwarePlanner": "planner",
    "Candidate": "strategies",
    "Catalog": "catalog",
    "CircuitState": "circuit",
    "CostStrategy": "strategies",
    "DeploymentHealth": "health",
    "HealthTracker": "health",
    "LatencyStrategy": "strategies",
    "LeastBusyStrategy": "strategies",
    "ModelInfo": "catalog",
    "Planner": "planner",
    "PriorityPlanner": "planner",
    "PriorityStrategy": "strategies",
    "QualityStrategy": "strategies",
    "RoundRobinStrategy": "strategies",
    "Route": "planner",
    "RoutePlan": "planner",
    "RoutingPlanner": "planner",
    "RoutingStrategy": "strategies",
    "WeightedStrategy": "strategies",
    "classify_failure": "circuit",
    "make_strategy": "strategies",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
