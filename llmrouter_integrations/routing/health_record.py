"""What the router knows about one deployment's health: the public record and the breaker's counts.

`DeploymentHealth` is what `router.health()` reports; `_Breaker` adds the circuit's
bookkeeping that `HealthTracker` (routing/health.py) keeps beside it.

    >>> DeploymentHealth().circuit
    'closed'
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .circuit import CircuitState

__all__ = ["DeploymentHealth"]


@dataclass(slots=True)
class DeploymentHealth:
    """One deployment's health as `router.health()` reports it.

    `latency_s` and `ttft_s` are exponentially weighted averages of successful calls;
    `error_rate` is over the breaker's window of recent calls; `opened_until` is on the
    router clock's monotonic scale. `remaining_*` and `queued` come from the rate limiter.

    >>> router.health()["openai/gpt-4o-mini"].circuit
    'closed'
    """

    circuit: CircuitState = "closed"
    latency_s: float | None = None
    ttft_s: float | None = None
    error_rate: float = 0.0
    in_flight: int = 0
    queued: int = 0
    consecutive_failures: int = 0
    opened_until: float | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    last_latency_s: float | None = None  # the newest sample, for strategies that explore
    latency_samples: int = 0
    last_measured_at: float | None = None  # clock.now() of the newest latency sample
    # `error_rate` fading by half every `BreakerPolicy.error_half_life_s` since the last
    # failure: what strategies weigh, so a provider that failed an hour ago and has not
    # been tried since is not shunned forever.
    recent_error_rate: float = 0.0
    last_failure_at: float | None = None


@dataclass(slots=True)
class _Breaker:
    health: DeploymentHealth = field(default_factory=DeploymentHealth)
    outcomes: deque[bool] = field(default_factory=deque)  # True = failure
    failures: int = 0  # how many of `outcomes` are failures, kept as they come and go
    reopenings: int = 0
    probes_in_flight: int = 0
    early_probe: bool = False
    # Bumped when the circuit opens or closes, so a call that started before cannot move it.
    generation: int = 0
