"""When a deployment's circuit opens, and which errors count against it.

`BreakerPolicy` sets the thresholds and cooldowns; `classify_failure` says how an error
counts (a deployment error opens the circuit at once, a request's own fault not at all).
`HealthTracker` (routing/health.py) keeps the circuits.

    >>> BreakerPolicy(failure_threshold=3, cooldown_s=10).cooldown(reopenings=2)
    40.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import (
    BadRequestError,
    ConfigurationError,
    ContextWindowExceededError,
    ProviderError,
    RoutingError,
)

__all__ = ["BreakerPolicy", "CircuitState", "FailureKind", "classify_failure"]

CircuitState = Literal["closed", "open", "half_open"]
FailureKind = Literal["failure", "deployment"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a circuit opens and how long it rests.

    Opens after `failure_threshold` consecutive failures, or when at least `min_calls` of
    the last `window` calls were made and `error_rate_threshold` of them failed. Rests
    `cooldown_s`, then lets `half_open_probes` probe calls through; each failed probe
    multiplies the rest by `cooldown_multiplier`, up to `max_cooldown_s`. For ranking,
    the error rate fades by half every `error_half_life_s` after the last failure.

    >>> BreakerPolicy(failure_threshold=3, cooldown_s=10)
    """

    failure_threshold: int = 5
    error_rate_threshold: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown_s: float = 30.0
    cooldown_multiplier: float = 2.0
    max_cooldown_s: float = 600.0
    half_open_probes: int = 1
    error_half_life_s: float = 60.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_probes < 1 or self.window < 1:
            raise ConfigurationError(
                "BreakerPolicy: failure_threshold, half_open_probes and window must be >= 1"
            )
        if not 0.0 < self.error_rate_threshold <= 1.0:
            raise ConfigurationError("BreakerPolicy: error_rate_threshold must be in (0, 1]")
        if self.cooldown_s < 0 or self.max_cooldown_s < self.cooldown_s:
            raise ConfigurationError("BreakerPolicy: need 0 <= cooldown_s <= max_cooldown_s")
        if self.error_half_life_s <= 0:
            raise ConfigurationError("BreakerPolicy: error_half_life_s must be positive")

    def cooldown(self, reopenings: int) -> float:
        """Rest after the circuit opened `reopenings` times in a row without recovering."""
        return float(
            min(self.max_cooldown_s, self.cooldown_s * self.cooldown_multiplier**reopenings)
        )


def classify_failure(error: BaseException) -> FailureKind | None:
    """How an error counts against a deployment's health: None when it does not.

    >>> classify_failure(AuthenticationError("bad key", status_code=401))
    'deployment'
    """
    if not isinstance(error, Exception):
        return None  # cancelled, or the consumer closed the stream: nobody's fault
    if isinstance(error, (RoutingError, ContextWindowExceededError, ConfigurationError)):
        # the router's own refusal, a request too long for this model, or a setup mistake
        # of the caller's (a closed http_client): none of them the deployment's fault
        return None
    if isinstance(error, ProviderError) and error.deployment_error:
        return "deployment"
    if isinstance(error, BadRequestError):
        return None  # the request is invalid; any provider would say so
    return "failure"
