"""The routing planner: filters deployments for one request, ranks the rest, says why.

Filters run in this order, and the first one a deployment fails is its reason:

1. `deployments=` of the request;
2. capabilities the request needs (tools; vision when a message has an image, pdf for a
   PDF, audio for audio; JSON schema
   when `response_format` asks for one);
3. context window: estimated input tokens + `max_tokens` (or a small reserve) must fit,
   and `max_tokens` must not exceed the model's maximum output;
4. circuit breaker state;
5. `max_cost_usd` of the request against the estimated worst-case cost;
6. budgets (a hook the budget layer provides).

Deployments at capacity (rate limit or concurrency) are not removed but tried last.
When every deployment left is removed only by its circuit, the one closest to recovery is
tried anyway (one early probe) rather than failing at once.

    >>> planner = RoutingPlanner(deployments, strategy=make_strategy("balanced"), catalog=Catalog(),
    ...                          health=tracker, pricer=Pricer(), prices_provider_of=lambda d: d.provider,
    ...                          is_local=lambda d: False)
    >>> plan = planner.plan(request)
    >>> print(plan.explanation)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from ..costs.budget import BudgetRefusal
from ..costs.pricing import Pricer
from ..costs.tokens import DEFAULT_MAX_OUTPUT_TOKENS, estimate_input_tokens
from ..errors import NoDeploymentAvailableError
from ..types import ChatRequest, Deployment, Usage
from .affinity import PrefixAffinity
from .catalog import Catalog, ModelInfo
from .health import HealthTracker
from .strategies import Candidate, RoutingStrategy, make_strategy, strategy_name

__all__ = [
    "CONTEXT_OUTPUT_RESERVE",
    "BudgetAwarePlanner",
    "Planner",
    "PriorityPlanner",
    "Route",
    "RoutePlan",
    "RoutingPlanner",
    "required_capabilities",
]


@dataclass(slots=True)
class RoutePlan:
    """The fallback order for one request, best first, and why (shown on `response.route`)."""

    order: list[str]
    explanation: Any = None


class Planner(Protocol):
    """Decides which deployments may serve a request, and in which order."""

    def plan(self, request: ChatRequest) -> RoutePlan: ...


class PriorityPlanner:
    """Deployments in the order given, restricted by the request's `deployments=`."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)

    def plan(self, request: ChatRequest) -> RoutePlan:
        if request.deployments is None:
            return RoutePlan(list(self.names))
        wanted = set(request.deployments)
        order = [n for n in self.names if n in wanted]
        if not order:
            raise NoDeploymentAvailableError(
                "no deployment can take this request",
                reasons={n: f"not in deployments={list(request.deployments)}" for n in self.names},
            )
        return RoutePlan(order)


# Room left for the answer when a request sets no max_tokens: the provider stops at the
# window anyway, so only a prompt that leaves almost nothing is refused up front.
CONTEXT_OUTPUT_RESERVE = 256

BudgetCheck = Callable[[ChatRequest, Deployment, "Decimal | None"], "str | None"]
CapacityCheck = Callable[[Deployment, int], bool]


@dataclass
class Route:
    """Why a request went where it went: `response.route`, printable and JSON-ready.

    >>> print(response.route)
    route by balanced: 3 considered, 1 filtered, order a -> b
    ...
    """

    strategy: str
    considered: list[str]
    filtered: dict[str, str]
    scores: dict[str, dict[str, float]]
    order: list[str]
    notes: dict[str, str] = field(default_factory=dict)
    estimated_input_tokens: int | None = None

    def __str__(self) -> str:
        lines = [
            f"route by {self.strategy}: {len(self.considered)} considered, "
            f"{len(self.filtered)} filtered, order {' -> '.join(self.order) or '(none)'}"
        ]
        if self.estimated_input_tokens is not None:
            lines.append(f"  estimated input: ~{self.estimated_input_tokens:,} tokens")
        for rank, name in enumerate(self.order, 1):
            parts = self.scores.get(name, {})
            shown = ", ".join(f"{key} {_fmt(value)}" for key, value in parts.items())
            note = f"  [{self.notes[name]}]" if name in self.notes else ""
            lines.append(f"  {rank}. {name}" + (f"  ({shown})" if shown else "") + note)
        for name, reason in self.filtered.items():
            lines.append(f"  x  {name}: {reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for LangChain `response_metadata` and LlamaIndex kwargs."""
        return {
            "strategy": self.strategy,
            "considered": list(self.considered),
            "filtered": dict(self.filtered),
            "scores": {
                name: {key: round(value, 6) for key, value in parts.items()}
                for name, parts in self.scores.items()
            },
            "order": list(self.order),
            "notes": dict(self.notes),
            "estimated_input_tokens": self.estimated_input_tokens,
        }


def _fmt(value: float) -> str:
    if value == 0 or abs(value) >= 0.01:
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.2e}"


def required_capabilities(request: ChatRequest) -> list[str]:
    """What a model must support to serve `request`.

    >>> required_capabilities(ChatRequest(messages=[...], tools=[ToolSpec("f")]))
    ['tools']
    """
    needed: list[str] = []
    if request.tools:
        needed.append("tools")
    kinds = {
        part.type if part.type != "file" or part.text is None else "text"
        for message in request.messages
        if isinstance(message.content, list)
        for part in message.content
    }
    if "image" in kinds:
        needed.append("vision")
    if "file" in kinds:  # a PDF (a plain-text document needs nothing special)
        needed.append("pdf")
    if "audio" in kinds:
        needed.append("audio")
    if request.response_format and request.response_format.get("type") == "json_schema":
        needed.append("json_schema")
    return needed


@dataclass(frozen=True, slots=True)
class _Facts:
    deployment: Deployment
    info: ModelInfo
    prices_provider: str | None
    local: bool


class RoutingPlanner:
    """Implements the fallback layer's `Planner`: `plan(request) -> RoutePlan`.

    `budget_check(request, deployment, estimated_cost)` returns why a budget refuses the
    deployment, or None. `capacity_check(deployment, estimated_input_tokens)` returns
    False when the deployment has no capacity now (it is then tried last).
    Raises `NoDeploymentAvailableError` (with `reasons` per deployment) when none fits.
    """

    def __init__(
        self,
        deployments: Sequence[Deployment],
        *,
        strategy: RoutingStrategy | str | None,
        catalog: Catalog,
        health: HealthTracker,
        pricer: Pricer,
        prices_provider_of: Callable[[Deployment], str | None],
        is_local: Callable[[Deployment], bool],
        budget_check: BudgetCheck | None = None,
        capacity_check: CapacityCheck | None = None,
        affinity: PrefixAffinity | None = None,
    ) -> None:
        self.strategy = make_strategy(strategy)
        self.strategy_name = strategy_name(self.strategy)
        self.health = health
        self.pricer = pricer
        self.budget_check = budget_check
        self.capacity_check = capacity_check
        self.affinity = affinity
        # Facts are looked up once here: a bad override fails at construction, and a
        # request pays nothing for the catalog.
        self._facts = [
            _Facts(d, catalog.for_deployment(d), prices_provider_of(d), is_local(d))
            for d in deployments
        ]
        self._names = tuple(facts.deployment.key for facts in self._facts)
        for name in self._names:
            health.add(name)

    def info(self, name: str) -> ModelInfo:
        """The model facts used for deployment `name`."""
        for facts in self._facts:
            if facts.deployment.key == name:
                return facts.info
        raise KeyError(name)

    def plan(self, request: ChatRequest) -> RoutePlan:
        input_tokens = estimate_input_tokens(request)
        worst_output = request.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        needed = required_capabilities(request)
        allowed = request.deployments
        filtered: dict[str, str] = {}
        notes: dict[str, str] = {}
        candidates: list[Candidate] = []
        only_circuit: list[Candidate] = []  # removed by their circuit and nothing else
        estimate = self.pricer.estimate
        limited = request.max_cost_usd is not None or self.budget_check is not None
        for name, facts in zip(self._names, self._facts):
            reason = self._static_reason(facts, request, needed, input_tokens, allowed)
            if reason is not None:
                filtered[name] = reason
                continue
            circuit = self._circuit_reason(name)
            cost = estimate(
                facts.deployment,
                input_tokens,
                worst_output,
                prices_provider=facts.prices_provider,
                local=facts.local,
            )
            candidate = Candidate(facts.deployment, facts.info, cost, input_tokens)
            reason = self._limit_reason(request, facts.deployment, cost) if limited else None
            if circuit is not None:
                filtered[name] = circuit
                if reason is None:
                    only_circuit.append(candidate)
            elif reason is not None:
                filtered[name] = reason
            else:
                candidates.append(candidate)
        if not candidates and only_circuit:
            chosen = min(only_circuit, key=lambda c: self.health.time_to_recovery(c.name))
            self.health.allow_early_probe(chosen.name)
            notes[chosen.name] = (
                f"{filtered.pop(chosen.name)}; tried anyway as every deployment is resting "
                "and it is closest to recovery"
            )
            candidates.append(chosen)
        if not candidates:
            raise NoDeploymentAvailableError(
                "no deployment can take this request", reasons=filtered
            )

        if self.affinity is not None and len(candidates) > 1:
            self._weigh_cache_affinity(request, candidates)
        ranked = self.strategy.rank(request, candidates, self.health.view())
        order = self._capacity_last(ranked, input_tokens, notes)
        route = Route(
            strategy=self.strategy_name,
            considered=list(self._names),
            filtered=filtered,
            scores=_scores(ranked),
            order=[c.name for c in order],
            notes=notes,
            estimated_input_tokens=input_tokens,
        )
        return RoutePlan(order=route.order, explanation=route)

    # ------------------------------------------------------------- filters
    @staticmethod
    def _static_reason(
        facts: _Facts,
        request: ChatRequest,
        needed: list[str],
        input_tokens: int,
        allowed: tuple[str, ...] | None,
    ) -> str | None:
        """Filters 1-3: what no waiting would change."""
        if allowed is not None and facts.deployment.key not in allowed:
            return f"not in deployments={list(allowed)}"
        info = facts.info
        if needed:
            missing = [c for c in needed if not info.supports(c)]
            if missing:
                return f"does not support {' or '.join(c.replace('_', ' ') for c in missing)}"
        if info.context_window is not None:
            need = input_tokens + (request.max_tokens or CONTEXT_OUTPUT_RESERVE)
            if need > info.context_window:
                return f"needs ~{need:,} tokens, context window is {info.context_window:,}"
        if (
            request.max_tokens is not None
            and info.max_output_tokens is not None
            and request.max_tokens > info.max_output_tokens
        ):
            return (
                f"max_tokens {request.max_tokens:,} is over its maximum output of "
                f"{info.max_output_tokens:,} tokens"
            )
        return None

    def _weigh_cache_affinity(self, request: ChatRequest, candidates: list[Candidate]) -> None:
        """Lower the estimated cost where this request's long prefix is likely cached, by
        what a cache hit saves there (see routing/affinity.py)."""
        assert self.affinity is not None
        held = self.affinity.holder(request)
        if held is None:
            return
        name, tokens = held
        for candidate, facts in zip(candidates, self._facts_of(candidates)):
            if candidate.name != name or candidate.estimated_cost_usd is None:
                continue
            provider, local = facts.prices_provider, facts.local
            full = self.pricer.estimate(
                facts.deployment, tokens, 0, prices_provider=provider, local=local
            )
            cached = self.pricer.cost(
                facts.deployment,
                Usage(tokens, 0, tokens, cached_input_tokens=tokens),
                prices_provider=provider,
                local=local,
            )
            if full is None or cached is None:
                return
            saving = max(Decimal(0), full - cached.total)
            candidate.estimated_cost_usd = max(Decimal(0), candidate.estimated_cost_usd - saving)
            candidate.score_parts["cache_affinity_usd"] = float(saving)

    def _facts_of(self, candidates: list[Candidate]) -> list[_Facts]:
        by_name = {facts.deployment.key: facts for facts in self._facts}
        return [by_name[c.name] for c in candidates]

    def _circuit_reason(self, name: str) -> str | None:
        if self.health.is_available(name):
            return None
        if self.health.state(name) == "half_open":
            return "circuit half-open, a probe call is testing it"
        return f"circuit open, retry in {self.health.time_to_recovery(name):.0f} s"

    def _limit_reason(
        self, request: ChatRequest, deployment: Deployment, cost: Decimal | None
    ) -> str | None:
        """Filters 5-6: the request's cost cap, then budgets."""
        if request.max_cost_usd is not None:
            cap = Decimal(str(request.max_cost_usd))
            if cost is None:
                return f"no price known, so max_cost_usd ${_usd(cap)} cannot be checked"
            if cost > cap:
                return f"estimated ${_usd(cost)} > max_cost_usd ${_usd(cap)}"
        if self.budget_check is not None:
            return self.budget_check(request, deployment, cost)
        return None

    def _capacity_last(
        self, ranked: list[Candidate], input_tokens: int, notes: dict[str, str]
    ) -> list[Candidate]:
        check = self.capacity_check
        if check is None:
            return ranked
        room = [check(candidate.deployment, input_tokens) for candidate in ranked]
        if all(room):
            return ranked  # the usual case: everyone has room, the order stands
        ready: list[Candidate] = []
        saturated: list[Candidate] = []
        for candidate, has_room in zip(ranked, room):
            if has_room:
                ready.append(candidate)
            else:
                saturated.append(candidate)
                notes[candidate.name] = "at capacity (rate limit or concurrency): tried last"
        return ready + saturated


def _scores(ranked: list[Candidate]) -> dict[str, dict[str, float]]:
    scores: dict[str, dict[str, float]] = {}
    for candidate in ranked:
        parts = dict(candidate.score_parts)
        if candidate.score is not None:
            parts["score"] = candidate.score
        if "cost_usd" not in parts and candidate.estimated_cost_usd is not None:
            parts["cost_usd"] = float(candidate.estimated_cost_usd)
        scores[candidate.name] = parts
    return scores


def _usd(amount: Decimal) -> str:
    return f"{amount:.6f}".rstrip("0").rstrip(".") if amount < 1 else f"{amount:.2f}"


class BudgetAwarePlanner:
    """When budgets are the only reason nothing can serve, say so with BudgetExceededError.

    >>> planner = BudgetAwarePlanner(RoutingPlanner(deployments, budget_check=budgets.check))
    """

    def __init__(self, inner: RoutingPlanner) -> None:
        self.inner = inner

    def plan(self, request: ChatRequest) -> RoutePlan:
        try:
            return self.inner.plan(request)
        except NoDeploymentAvailableError as error:
            reasons = list(error.reasons.values())
            if reasons and all(isinstance(r, BudgetRefusal) for r in reasons):
                raise reasons[0].error from None  # type: ignore[attr-defined]
            raise
