"""One deployment's health record, the breaker's counts, and the arithmetic that updates them.

`DeploymentHealth` is what `router.health()` reports; `_Breaker` adds the circuit's
bookkeeping that `HealthTracker` (routing/health.py) keeps beside it. Everything here is
plain arithmetic on numbers and a `now` passed in; the tracker holds the lock, decides when
a circuit moves and announces it.

    >>> DeploymentHealth().circuit
    'closed'
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .circuit import CircuitState

__all__ = ["DeploymentHealth", "add_latency", "ewma", "fade"]


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

    def count(self, *, failed: bool) -> None:
        """One more outcome in the window: counts, consecutive failures and error rate."""
        outcomes = self.outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self.failures -= 1  # the oldest outcome, a failure, leaves the window
        outcomes.append(failed)
        if failed:
            self.failures += 1
        health = self.health
        health.consecutive_failures = health.consecutive_failures + 1 if failed else 0
        health.error_rate = self.failures / len(outcomes)

    def trip(self, until: float) -> CircuitState:
        """Open the circuit until `until` (clock.now() scale); returns the previous state."""
        health = self.health
        previous = health.circuit
        health.circuit = "open"
        health.opened_until = until
        self.early_probe = False
        self.generation += 1
        return previous

    def reset(self) -> CircuitState:
        """Close the circuit with a fresh start; returns the previous state."""
        health = self.health
        previous = health.circuit
        health.circuit = "closed"
        health.opened_until = None
        health.consecutive_failures = 0
        health.error_rate = health.recent_error_rate = 0.0
        self.outcomes.clear()  # a fresh start: old failures must not reopen it
        self.failures = 0
        self.reopenings = 0
        self.early_probe = False
        self.generation += 1
        return previous


def ewma(average: float | None, value: float, alpha: float) -> float:
    """The exponentially weighted average after `value` (`value` itself for the first).

    >>> ewma(None, 2.0, 0.3), ewma(1.0, 2.0, 0.5)
    (2.0, 1.5)
    """
    if average is None:
        return value
    return alpha * value + (1.0 - alpha) * average


def add_latency(health: DeploymentHealth, latency: float, now: float, alpha: float) -> None:
    """Fold one successful call's latency into `health` (average, newest sample, count)."""
    average = health.latency_s
    # ewma, inlined: this runs after every call.
    health.latency_s = latency if average is None else alpha * latency + (1.0 - alpha) * average
    health.last_latency_s = latency
    health.latency_samples += 1
    health.last_measured_at = now


def fade(health: DeploymentHealth, now: float, half_life_s: float) -> None:
    """`recent_error_rate`: `error_rate` halved every `half_life_s` since the last failure."""
    if health.last_failure_at is None:
        health.recent_error_rate = health.error_rate
        return
    age = max(0.0, now - health.last_failure_at)
    health.recent_error_rate = health.error_rate * 0.5 ** (age / half_life_s)
