"""Routing strategies: each ranks the candidate deployments of one request, best first.

The ranked list is the fallback order. Candidates reaching a strategy have already passed
the planner's filters (capabilities, context window, circuit, cost and budget limits).

| name          | ranks by                                   | use it when                           |
|---------------|--------------------------------------------|---------------------------------------|
| `priority`    | the order you listed the deployments       | a primary with backups                |
| `round_robin` | rotating the first choice                  | spreading load over equal deployments |
| `weighted`    | random, in proportion to `Deployment.weight`| splitting traffic by share (A/B, quota) |
| `least_busy`  | fewest calls in flight (per max_concurrency)| concurrency-limited or self-hosted servers |
| `cost`        | estimated cost of this request             | the cheapest answer is good enough    |
| `quality`     | quality score (arena-based or yours)       | the best answer matters most          |
| `latency`     | observed latency, with a little exploration| interactive use: fastest answer       |
| `balanced`    | weighted cost + quality + latency (default)| a sensible mix of all three           |

Any object with `rank(request, candidates, health)` is a strategy too.

    >>> strategy = make_strategy("balanced")
    >>> strategy = BalancedStrategy(weights={"cost": 2, "quality": 1, "latency": 1})
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..types import ChatRequest, Deployment
from .catalog import ModelInfo
from .health import DeploymentHealth

__all__ = [
    "STRATEGIES",
    "BalancedStrategy",
    "Candidate",
    "CostStrategy",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "PriorityStrategy",
    "QualityStrategy",
    "RoundRobinStrategy",
    "RoutingStrategy",
    "WeightedStrategy",
    "make_strategy",
    "strategy_name",
]

_NEUTRAL = 0.5  # the score of an unknown value: neither rewarded nor punished
_TYPICAL_OUTPUT_TOKENS = 256  # for speed priors when the request sets no max_tokens
# For a speed prior without a measured first-token time: about the median of the
# non-reasoning models in the catalog (0.55-2.5 s), so unknown is not mistaken for instant.
_TYPICAL_TTFT_S = 1.0


@dataclass(slots=True)
class Candidate:
    """A deployment that may serve the request, with what the planner estimated for it.

    `estimated_cost_usd` is the worst case (estimated input + max_tokens, or 4096 output
    tokens without it), None when no price is known. Strategies set `score` and
    `score_parts`, which the route explanation shows.
    """

    deployment: Deployment
    info: ModelInfo
    estimated_cost_usd: Decimal | None
    estimated_input_tokens: int
    score: float | None = None
    score_parts: dict[str, float] = field(default_factory=dict)
    name: str = field(init=False)  # the deployment's name, kept at hand for ranking

    def __post_init__(self) -> None:
        self.name = self.deployment.key


@runtime_checkable
class RoutingStrategy(Protocol):
    """Orders candidates best first; the order is the fallback order.

    >>> class Cheapest:
    ...     def rank(self, request, candidates, health):
    ...         return sorted(candidates, key=lambda c: c.estimated_cost_usd or 0)
    """

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]: ...


def strategy_name(strategy: object) -> str:
    """The name a route explanation shows for a strategy."""
    name = getattr(strategy, "name", None)
    return name if isinstance(name, str) else type(strategy).__name__


class PriorityStrategy:
    """Deployments in the order they were configured.

    >>> Router(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"], strategy="priority")
    """

    name = "priority"

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]:
        return list(candidates)


class RoundRobinStrategy:
    """Each request starts one deployment further along; the rest follow in order."""

    name = "round_robin"

    def __init__(self) -> None:
        self._turn = itertools.count()  # next() on a count is atomic under the GIL

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]:
        if not candidates:
            return []
        start = next(self._turn) % len(candidates)
        return candidates[start:] + candidates[:start]


class WeightedStrategy:
    """Random order, a deployment's chance of going first proportional to its `weight`.

    Sampling without replacement (Efraimidis-Spirakis keys `u ** (1 / weight)`), so the
    fallback order is weighted too. Weight 0 puts a deployment last.

    >>> WeightedStrategy(rng=random.Random(7))
    """

    name = "weighted"

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]:
        keyed: list[tuple[float, int, Candidate]] = []
        for position, candidate in enumerate(candidates):
            weight = candidate.deployment.weight
            draw = self.rng.random()
            key = draw ** (1.0 / weight) if weight > 0 else -1.0
            candidate.score_parts["weight"] = weight
            keyed.append((-key, position, candidate))
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [candidate for _, _, candidate in keyed]


class LeastBusyStrategy:
    """Fewest calls in flight (and queued) relative to `max_concurrency`; ties rotate."""

    name = "least_busy"

    def __init__(self) -> None:
        self._turn = itertools.count()

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]:
        if not candidates:
            return []
        offset = next(self._turn) % len(candidates)
        keyed: list[tuple[float, int, Candidate]] = []
        for position, candidate in enumerate(candidates):
            record = health.get(candidate.name)
            busy = (record.in_flight + record.queued) if record is not None else 0
            limit = candidate.deployment.max_concurrency
            load = busy / limit if limit else float(busy)
            candidate.score_parts["in_flight"] = float(busy)
            candidate.score_parts["load"] = load
            keyed.append((load, (position - offset) % len(candidates), candidate))
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [candidate for _, _, candidate in keyed]


class CostStrategy:
    """Cheapest estimated cost for this request first; unknown prices last."""

    name = "cost"

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]:
        for candidate in candidates:
            if candidate.estimated_cost_usd is not None:
                candidate.score_parts["cost_usd"] = float(candidate.estimated_cost_usd)
        # sorted() is stable: equal costs keep the configured order.
        return sorted(
            candidates,
            key=lambda c: (c.estimated_cost_usd is None, c.estimated_cost_usd or Decimal(0)),
        )


class QualityStrategy:
    """Highest quality score first (catalog or `Deployment.quality`); unknown last."""

    name = "quality"

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]:
        for candidate in candidates:
            if candidate.info.quality is not None:
                candidate.score_parts["quality"] = candidate.info.quality
        return sorted(candidates, key=lambda c: (c.info.quality is None, -(c.info.quality or 0.0)))


class LatencyStrategy:
    """Lowest observed latency first, re-measuring the others now and then.

    A deployment never measured goes first (so every one gets measured). Otherwise the
    estimate is the lower of the latency average and the newest sample: one fast answer
    after a slowdown is enough to try a deployment again, and if it is still slow the
    next sample says so. With probability `epsilon` the deployment measured longest ago
    goes first instead, so a provider that recovered while nobody used it is noticed.
    A deployment failing a fraction `e` of its calls (recently) counts as `1 / (1 - e)`
    times slower, since a failure costs the caller its time and a fallback.

    >>> LatencyStrategy(epsilon=0.1, rng=random.Random(0))
    """

    name = "latency"

    def __init__(self, epsilon: float = 0.1, rng: random.Random | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigurationError("LatencyStrategy: epsilon must be between 0 and 1")
        self.epsilon = epsilon
        self.rng = rng or random.Random()

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]:
        unmeasured: list[Candidate] = []
        measured: list[tuple[float, int, Candidate]] = []
        for position, candidate in enumerate(candidates):
            record = health.get(candidate.name)
            latency = _observed_latency(record)
            if latency is None:
                unmeasured.append(candidate)
                continue
            # Failed calls cost time too: failing a fraction e of calls counts as 1/(1-e) slower.
            errors = min(record.recent_error_rate, 0.9) if record is not None else 0.0
            estimate = latency / (1.0 - errors)
            candidate.score_parts["latency_s"] = latency
            if errors:
                candidate.score_parts["error_rate"] = errors
            candidate.score_parts["expected_s"] = estimate
            measured.append((estimate, position, candidate))
        measured.sort(key=lambda item: (item[0], item[1]))
        ranked = unmeasured + [candidate for _, _, candidate in measured]
        if not unmeasured and len(ranked) > 1 and self.rng.random() < self.epsilon:
            stalest = min(ranked[1:], key=lambda c: _measured_at(health.get(c.name)))
            stalest.score_parts["explore"] = 1.0
            ranked.remove(stalest)
            ranked.insert(0, stalest)
        return ranked


def _observed_latency(record: DeploymentHealth | None) -> float | None:
    if record is None or record.latency_samples == 0 or record.latency_s is None:
        return None
    if record.last_latency_s is None:
        return record.latency_s
    return min(record.latency_s, record.last_latency_s)


def _measured_at(record: DeploymentHealth | None) -> float:
    if record is None or record.last_measured_at is None:
        return -math.inf
    return record.last_measured_at


class BalancedStrategy:
    """A weighted mix of cost, quality and latency, each normalised across the candidates.

    Each term scores 1 for the best candidate and 0 for the worst (min-max), so no term
    wins by its units. Cost and latency are compared on a log scale, since they differ by
    multiples (a 10x price gap should count more than a 10% one), and a difference smaller
    than `min_spans` (2x in cost, 1.5x in latency, 0.05 in quality) is not stretched to the
    full range, so noise between near-equal deployments cannot decide. Unknown values
    score a neutral 0.5. Latency is the observed average, or before any call the catalog's
    typical time to first token (1 s if unknown) plus the output at its typical speed.
    Balanced does not explore: a deployment ranked low on priors is measured only when
    traffic falls back to it (use `latency` to chase measured speed). The weighted mean is
    multiplied by `1 - error rate` (the recent one, fading after failures stop), so a
    deployment failing half its calls scores half.

    >>> BalancedStrategy(weights={"cost": 1, "quality": 2, "latency": 0.5})
    """

    name = "balanced"
    DEFAULT_WEIGHTS: Mapping[str, float] = {"cost": 1.0, "quality": 1.0, "latency": 1.0}
    DEFAULT_MIN_SPANS: Mapping[str, float] = {
        "cost": math.log10(2.0),
        "quality": 0.05,
        "latency": math.log10(1.5),
    }

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        min_spans: Mapping[str, float] | None = None,
    ) -> None:
        merged = dict(self.DEFAULT_WEIGHTS if weights is None else weights)
        unknown = set(merged) - set(self.DEFAULT_WEIGHTS)
        if unknown:
            raise ConfigurationError(
                f"BalancedStrategy: unknown weight(s) {sorted(unknown)}; use cost, quality, latency"
            )
        if any(w < 0 for w in merged.values()) or not any(merged.values()):
            raise ConfigurationError("BalancedStrategy: weights must be >= 0 and not all 0")
        self.weights = {key: float(merged.get(key, 0.0)) for key in self.DEFAULT_WEIGHTS}
        self.min_spans = {**self.DEFAULT_MIN_SPANS, **(min_spans or {})}

    def rank(
        self,
        request: ChatRequest,
        candidates: list[Candidate],
        health: Mapping[str, DeploymentHealth],
    ) -> list[Candidate]:
        if len(candidates) == 1:
            return self._rank_one(request, candidates[0], health)
        raw: dict[str, list[float | None]] = {"cost": [], "quality": [], "latency": []}
        for candidate in candidates:
            cost = candidate.estimated_cost_usd
            raw["cost"].append(math.log10(max(float(cost), 1e-6)) if cost is not None else None)
            raw["quality"].append(candidate.info.quality)
            latency = _expected_latency(request, candidate, health.get(candidate.name))
            raw["latency"].append(math.log10(max(latency, 0.01)) if latency is not None else None)
            if cost is not None:
                candidate.score_parts["cost_usd"] = float(cost)
            if latency is not None:
                candidate.score_parts["latency_s"] = latency
        normalised = {
            "cost": _min_max(raw["cost"], self.min_spans["cost"], higher_is_better=False),
            "quality": _min_max(raw["quality"], self.min_spans["quality"], higher_is_better=True),
            "latency": _min_max(raw["latency"], self.min_spans["latency"], higher_is_better=False),
        }
        total_weight = sum(self.weights.values())
        for index, candidate in enumerate(candidates):
            mean = sum(self.weights[t] * normalised[t][index] for t in normalised) / total_weight
            record = health.get(candidate.name)
            reliability = 1.0 - (record.recent_error_rate if record is not None else 0.0)
            parts = candidate.score_parts
            parts["cost"] = normalised["cost"][index]
            parts["quality"] = normalised["quality"][index]
            parts["latency"] = normalised["latency"][index]
            parts["reliability"] = reliability
            candidate.score = mean * reliability
        return sorted(candidates, key=lambda c: -(c.score or 0.0))

    def _rank_one(
        self, request: ChatRequest, candidate: Candidate, health: Mapping[str, DeploymentHealth]
    ) -> list[Candidate]:
        """`rank` for a single candidate (a one-deployment router, or all others filtered):
        each known term is the best there is, so it scores 1 (0.5 when unknown), as
        min-max gives; only a NaN input takes the general formula."""
        record = health.get(candidate.name)
        parts = candidate.score_parts
        spans = self.min_spans
        cost = candidate.estimated_cost_usd
        cost_score = _NEUTRAL
        if cost is not None:
            cost_usd = parts["cost_usd"] = float(cost)
            cost_score = 1.0 if cost_usd == cost_usd else _nan_score(spans["cost"])
        quality = candidate.info.quality
        quality_score = _NEUTRAL
        if quality is not None:
            quality_score = 1.0 if quality == quality else _nan_score(spans["quality"])
        latency = _expected_latency(request, candidate, record)
        latency_score = _NEUTRAL
        if latency is not None:
            parts["latency_s"] = latency
            latency_score = 1.0 if latency == latency else _nan_score(spans["latency"])
        weights = self.weights
        mean = (
            weights["cost"] * cost_score
            + weights["quality"] * quality_score
            + weights["latency"] * latency_score
        ) / sum(weights.values())
        reliability = 1.0 - (record.recent_error_rate if record is not None else 0.0)
        parts["cost"] = cost_score
        parts["quality"] = quality_score
        parts["latency"] = latency_score
        parts["reliability"] = reliability
        candidate.score = mean * reliability
        return [candidate]


def _expected_latency(
    request: ChatRequest, candidate: Candidate, record: DeploymentHealth | None
) -> float | None:
    observed = record.latency_s if record is not None and record.latency_samples else None
    if observed is not None:
        return observed
    info = candidate.info
    if info.output_tokens_per_s:
        output = min(request.max_tokens or _TYPICAL_OUTPUT_TOKENS, 1024)
        ttft = info.ttft_s if info.ttft_s is not None else _TYPICAL_TTFT_S
        return ttft + output / info.output_tokens_per_s
    return info.ttft_s


def _nan_score(min_span: float) -> float:
    """What min-max gives a lone NaN value (NaN, unless the span is not positive)."""
    return _min_max([math.nan], min_span, higher_is_better=False)[0]


def _min_max(values: list[float | None], min_span: float, *, higher_is_better: bool) -> list[float]:
    known = [v for v in values if v is not None]
    if not known:
        return [_NEUTRAL] * len(values)
    best = max(known) if higher_is_better else min(known)
    span = max(max(known) - min(known), min_span)
    if span <= 0:
        return [1.0 if v is not None else _NEUTRAL for v in values]
    return [_NEUTRAL if v is None else 1.0 - abs(v - best) / span for v in values]


STRATEGIES: Mapping[str, type] = {
    "priority": PriorityStrategy,
    "round_robin": RoundRobinStrategy,
    "weighted": WeightedStrategy,
    "least_busy": LeastBusyStrategy,
    "cost": CostStrategy,
    "quality": QualityStrategy,
    "latency": LatencyStrategy,
    "balanced": BalancedStrategy,
}


def make_strategy(spec: str | RoutingStrategy | None) -> RoutingStrategy:
    """A strategy from its name (None means "balanced") or a ready object.

    >>> make_strategy("least_busy").name
    'least_busy'
    """
    if spec is None:
        return BalancedStrategy()
    if isinstance(spec, str):
        factory = STRATEGIES.get(spec.strip().lower().replace("-", "_"))
        if factory is None:
            raise ConfigurationError(
                f"unknown routing strategy {spec!r}; available: {', '.join(STRATEGIES)} "
                "or an object with rank(request, candidates, health)"
            )
        strategy: RoutingStrategy = factory()
        return strategy
    if callable(getattr(spec, "rank", None)):
        return spec
    raise ConfigurationError(
        f"strategy must be a name ({', '.join(STRATEGIES)}) or an object with "
        f"rank(request, candidates, health), not {type(spec).__name__}"
    )
