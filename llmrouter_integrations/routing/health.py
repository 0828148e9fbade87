"""Deployment health: circuit breakers, latency and TTFT averages, error rates, load.

One `HealthTracker` per router holds the state of every deployment; a
`CircuitBreakerBackend` per deployment feeds it and refuses calls while its circuit is open.

The circuit of a deployment:

    closed --(N consecutive failures, or error rate over the window)--> open
    open --(cooldown passes)--> half_open --(probe succeeds)--> closed
                                half_open --(probe fails)--> open, cooldown x2 (capped)

A deployment error (401 bad key, 403, 404 unknown model) opens the circuit at once with the
longest cooldown: that deployment is out of rotation until a probe shows it was fixed.
Errors that are the request's fault (a plain 400, over budget) say nothing about the
deployment and are not counted, nor is a timeout caused by the request's own deadline
running out while the deployment had less than twice its usual latency to answer.

    >>> tracker = HealthTracker(["a", "b"], clock=ManualClock())
    >>> breaker = CircuitBreakerBackend(backend_a, deployment="a", health=tracker)
    >>> tracker.snapshot()["a"].circuit
    'closed'
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.events import EventHub, RouterEvent
from ..errors import CircuitOpenError, ConfigurationError, ProviderError, ProviderTimeoutError
from .circuit import BreakerPolicy, CircuitState, FailureKind, classify_failure
from .health_record import DeploymentHealth, _Breaker, add_latency, ewma, fade

if TYPE_CHECKING:
    from ..state.shared import Admission
    from .shared_health import SharedCircuits

__all__ = [
    "BreakerPolicy",
    "CallTicket",
    "CircuitState",
    "DeploymentHealth",
    "HealthTracker",
    "classify_failure",
]


class CallTicket:
    """One admitted call on one deployment; end it once with success, failure or release.

    >>> ticket = tracker.begin("a")
    >>> ticket.success(latency_s=0.4)
    """

    __slots__ = ("_done", "_tracker", "generation", "name", "probe", "started")

    def __init__(
        self, tracker: HealthTracker, name: str, *, probe: bool, generation: int, started: float
    ) -> None:
        self._tracker = tracker
        self._done = False
        self.name = name
        self.probe = probe
        self.generation = generation
        self.started = started

    def first_token(self, ttft_s: float | None = None) -> None:
        """Record time to first token (measured from the start when not given)."""
        if not self._done:
            self._tracker._record_ttft(self, ttft_s)

    def success(self, latency_s: float | None = None, ttft_s: float | None = None) -> None:
        if not self._done:
            self._done = True
            self._tracker._finish(self, None, latency_s, ttft_s)

    def failure(self, error: BaseException, *, out_of_time: bool = False) -> None:
        """End with an error. `out_of_time`: the request's overall deadline had passed."""
        if not self._done:
            self._done = True
            self._tracker._finish(self, error, None, None, out_of_time=out_of_time)

    def release(self) -> None:
        """End without a verdict (the call was abandoned): frees its slot only."""
        if not self._done:
            self._done = True
            self._tracker._finish(self, None, None, None, verdict=False)


class HealthTracker:
    """Health of every deployment of one router; clock-injected, thread-safe.

    State changes of a circuit are emitted as "circuit" `RouterEvent`s with
    `data={"state", "previous", "reason", "cooldown_s"}`.

    >>> tracker = HealthTracker(["a", "b"], policy=BreakerPolicy(failure_threshold=3))
    >>> tracker.record_failure("a", ServerError("boom", status_code=500))
    >>> tracker.state("a"), tracker.snapshot()["a"].consecutive_failures
    ('closed', 1)
    """

    def __init__(
        self,
        names: Iterable[str],
        *,
        policy: BreakerPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventHub | None = None,
        ewma_alpha: float = 0.3,
    ) -> None:
        if not 0.0 < ewma_alpha <= 1.0:
            raise ConfigurationError("ewma_alpha must be in (0, 1]")
        self.policy = policy or BreakerPolicy()
        self.clock = clock
        self.events = events
        self.ewma_alpha = ewma_alpha
        # The fleet's circuits (Router(state=...)); None: this process decides alone.
        self.shared: SharedCircuits | None = None
        self._lock = threading.Lock()
        self._breakers: dict[str, _Breaker] = {}
        for name in names:
            self.add(name)
        self._live = {name: b.health for name, b in self._breakers.items()}

    def add(self, name: str) -> None:
        """Track one more deployment (no-op if already tracked)."""
        with self._lock:
            if name not in self._breakers:
                self._breakers[name] = _Breaker(outcomes=deque(maxlen=self.policy.window))
                self._live = {n: b.health for n, b in self._breakers.items()}

    # ------------------------------------------------------------- reading
    def view(self) -> Mapping[str, DeploymentHealth]:
        """The live records (do not modify), circuits brought up to date: for strategies."""
        self._refresh_all()
        return self._live

    def snapshot(self) -> dict[str, DeploymentHealth]:
        """A copy of every deployment's health, safe to keep."""
        self._refresh_all()
        with self._lock:
            return {name: replace(b.health) for name, b in self._breakers.items()}

    def state(self, name: str) -> CircuitState:
        self._refresh(name)
        return self._breakers[name].health.circuit

    def is_available(self, name: str) -> bool:
        """True when a call would be let through now (closed, or a free probe slot)."""
        if self._breakers[name].health.circuit == "closed":
            return True  # only a call's outcome moves a closed circuit, never the clock
        state = self.state(name)
        if state == "closed":
            return True
        breaker = self._breakers[name]
        if state == "half_open":
            return breaker.probes_in_flight < self.policy.half_open_probes
        return breaker.early_probe and breaker.probes_in_flight == 0

    def time_to_recovery(self, name: str) -> float:
        """Seconds until an open circuit goes half-open; 0 when it is not open."""
        self._refresh(name)
        health = self._breakers[name].health
        if health.circuit != "open" or health.opened_until is None:
            return 0.0
        return max(0.0, health.opened_until - self.clock.now())

    def allow_early_probe(self, name: str) -> None:
        """Let one probe through an open circuit before its cooldown ends.

        The planner calls this when every candidate is open, for the one closest to
        recovery, so a request is tried rather than refused outright.
        """
        with self._lock:
            breaker = self._breakers[name]
            if breaker.health.circuit == "open":
                breaker.early_probe = True

    def update_capacity(
        self,
        name: str,
        *,
        remaining_requests: int | None = None,
        remaining_tokens: int | None = None,
        queued: int | None = None,
    ) -> None:
        """Rate-limit facts other layers know (the limiter, the queue); None leaves a field."""
        with self._lock:
            health = self._breakers[name].health
            if remaining_requests is not None:
                health.remaining_requests = remaining_requests
            if remaining_tokens is not None:
                health.remaining_tokens = remaining_tokens
            if queued is not None:
                health.queued = queued

    # ------------------------------------------------------------- calls
    def begin(
        self, name: str, *, force: bool = False, asked: tuple[Admission | None] | None = None
    ) -> CallTicket:
        """Admit a call or raise `CircuitOpenError`; the ticket must then be ended. `force`
        admits regardless (as a probe when half-open), for observations fed in; `asked` is
        the fleet's verdict from the call's one trip to the store (`SharedCircuits.admit`)."""
        events: list[RouterEvent] = []
        fleet = self.shared.admit(name, asked) if self.shared is not None and not force else None
        with self._lock:
            breaker = self._breakers[name]
            now = self.clock.now()
            health = breaker.health
            if (
                health.circuit == "closed"
                and health.last_failure_at is None
                and (fleet is None or fleet.state == "closed")
            ):
                # Healthy and never failed (the usual case): nothing to refresh or refuse.
                health.in_flight += 1
                return CallTicket(
                    self, name, probe=False, generation=breaker.generation, started=now
                )
            self._refresh_locked(name, breaker, events, now)
            if fleet is not None:
                self._adopt(name, breaker, fleet, events)
            refusal = None
            if fleet is not None and fleet.state == "busy":
                refusal = f"circuit half-open for {name!r}: another process is probing it"
            elif health.circuit == "half_open":
                if breaker.probes_in_flight >= self.policy.half_open_probes:
                    refusal = f"circuit half-open for {name!r}: a probe call is already testing it"
            elif health.circuit == "open" and not force:
                if breaker.early_probe and breaker.probes_in_flight == 0:
                    breaker.early_probe = False
                else:
                    wait = max(0.0, (health.opened_until or 0.0) - now)
                    refusal = f"circuit open for {name!r}, retry in {wait:.0f} s"
            if refusal is not None and not force:
                self._emit(events)
                raise CircuitOpenError(refusal, deployment=name)
            probe = health.circuit != "closed" and not (force and health.circuit == "open")
            breaker.probes_in_flight += probe
            health.in_flight += 1
            ticket = CallTicket(self, name, probe=probe, generation=breaker.generation, started=now)
        if events:
            self._emit(events)
        return ticket

    def record_success(self, name: str, latency_s: float, ttft_s: float | None = None) -> None:
        """Feed one observed success (as if a call had been made): for tests and tools."""
        self.begin(name, force=True).success(latency_s, ttft_s)

    def record_failure(self, name: str, error: BaseException | None = None) -> None:
        """Feed one observed failure (a generic one when `error` is None)."""
        self.begin(name, force=True).failure(error or ProviderError("failure", deployment=name))

    def _record_ttft(self, ticket: CallTicket, ttft_s: float | None) -> None:
        value = ttft_s if ttft_s is not None else self.clock.now() - ticket.started
        with self._lock:
            health = self._breakers[ticket.name].health
            health.ttft_s = ewma(health.ttft_s, value, self.ewma_alpha)

    def _finish(
        self,
        ticket: CallTicket,
        error: BaseException | None,
        latency_s: float | None,
        ttft_s: float | None,
        *,
        verdict: bool = True,
        out_of_time: bool = False,
    ) -> None:
        events: list[RouterEvent] = []
        now = self.clock.now()
        fleet_count = fleet_reset = False
        with self._lock:
            breaker = self._breakers[ticket.name]
            health = breaker.health
            health.in_flight = max(0, health.in_flight - 1)
            if ticket.probe:
                breaker.probes_in_flight = max(0, breaker.probes_in_flight - 1)
            kind = classify_failure(error) if error is not None else None
            current = ticket.generation == breaker.generation
            if out_of_time and isinstance(error, ProviderTimeoutError):
                elapsed = now - ticket.started
                # The request's own deadline cut this call short. That is the deployment's
                # failure only if it had twice its usual time and still did not answer; a
                # deployment handed the last 50 ms of someone's budget did not fail. Either
                # way it was at least this slow, which the latency average should know.
                if health.latency_s is None or elapsed < 2 * health.latency_s:
                    verdict = False
                    if health.latency_s is not None and elapsed > health.latency_s:
                        add_latency(health, elapsed, now, self.ewma_alpha)
            if not verdict or (error is not None and kind is None):
                pass  # abandoned, or not the deployment's fault
            elif error is None:
                add_latency(
                    health, max(now - ticket.started, latency_s or 0.0), now, self.ewma_alpha
                )
                if ttft_s is not None:
                    health.ttft_s = ewma(health.ttft_s, ttft_s, self.ewma_alpha)
                breaker.count(failed=False)
                if health.last_failure_at is None:  # never failed: nothing to fade
                    health.recent_error_rate = health.error_rate
                else:
                    fade(health, now, self.policy.error_half_life_s)
                if ticket.probe and current and health.circuit != "closed":
                    self._close(ticket.name, breaker, events)
                fleet_reset = True
            else:
                breaker.count(failed=True)
                health.last_failure_at = now
                health.recent_error_rate = health.error_rate
                self._on_failure(ticket.name, breaker, ticket, kind, error, current, events)
                # Still closed after this process's own rule: the fleet's count decides.
                fleet_count = (
                    kind == "failure" and current and not ticket.probe
                ) and health.circuit == "closed"
        if self.shared is not None and (fleet_count or fleet_reset):
            self._fleet_outcome(self.shared, ticket, error, events)
        if events:
            if self.shared is not None:
                self.shared.publish(events)
            self._emit(events)

    def _fleet_outcome(
        self,
        shared: SharedCircuits,
        ticket: CallTicket,
        error: BaseException | None,
        events: list[RouterEvent],
    ) -> None:
        """Count a failure in the store (opening at the fleet's threshold) or reset the count."""
        if error is None:
            shared.succeeded(ticket.name)
            return
        count = shared.failed(ticket.name)  # outside the lock: a store round trip
        if count is None or count < self.policy.failure_threshold:
            return
        with self._lock:
            breaker = self._breakers[ticket.name]
            if breaker.generation == ticket.generation and breaker.health.circuit == "closed":
                reason = f"{count} consecutive failures across processes ({type(error).__name__})"
                cooldown = self.policy.cooldown(breaker.reopenings)
                self._open(ticket.name, breaker, cooldown, reason, events)

    # ------------------------------------------------------------- transitions
    def _adopt(
        self, name: str, breaker: _Breaker, fleet: Admission, events: list[RouterEvent]
    ) -> None:
        """Bring this process's circuit in line with the fleet's (shared state)."""
        health = breaker.health
        if fleet.state == "closed" and health.circuit != "closed":
            self._close(name, breaker, events, reason="closed by another process")
        elif fleet.state == "open":
            rest = max(0.0, fleet.until - self.clock.wall())
            if health.circuit != "open":
                self._open(name, breaker, rest, "opened by another process", events)
            else:
                health.opened_until = self.clock.now() + rest
        elif health.circuit == "open" or (fleet.state == "probe" and health.circuit == "closed"):
            # Rest over fleet-wide; a process started since that holds the probe probes too.
            events.append(self._event(name, "half_open", health.circuit, "cooldown over", None))
            health.circuit = "half_open"

    def _on_failure(
        self,
        name: str,
        breaker: _Breaker,
        ticket: CallTicket,
        kind: FailureKind | None,
        error: BaseException,
        current: bool,
        events: list[RouterEvent],
    ) -> None:
        policy = self.policy
        health = breaker.health
        label = type(error).__name__
        if kind == "deployment":
            self._open(name, breaker, policy.max_cooldown_s, f"deployment error ({label})", events)
        elif not current:
            return  # started before the circuit last changed: evidence about the past
        elif ticket.probe:
            breaker.reopenings += 1
            reason = f"probe failed ({label})"
            self._open(name, breaker, policy.cooldown(breaker.reopenings), reason, events)
        elif health.circuit == "closed":
            calls = len(breaker.outcomes)
            if health.consecutive_failures >= policy.failure_threshold:
                reason = f"{health.consecutive_failures} consecutive failures ({label})"
            elif calls >= policy.min_calls and health.error_rate >= policy.error_rate_threshold:
                reason = f"error rate {health.error_rate:.0%} over the last {calls} calls"
            else:
                return
            self._open(name, breaker, policy.cooldown(breaker.reopenings), reason, events)

    def _open(
        self,
        name: str,
        breaker: _Breaker,
        cooldown: float,
        reason: str,
        events: list[RouterEvent],
    ) -> None:
        previous = breaker.trip(self.clock.now() + cooldown)
        events.append(self._event(name, "open", previous, reason, cooldown))

    def _close(
        self,
        name: str,
        breaker: _Breaker,
        events: list[RouterEvent],
        reason: str = "probe succeeded",
    ) -> None:
        previous = breaker.reset()
        events.append(self._event(name, "closed", previous, reason, None))

    def _refresh_all(self) -> None:
        events: list[RouterEvent] = []
        with self._lock:
            for name, breaker in self._breakers.items():
                health = breaker.health
                if health.circuit == "closed" and health.last_failure_at is None:
                    continue  # nothing the clock can change
                self._refresh_locked(name, breaker, events)
        if events:
            self._emit(events)

    def _refresh(self, name: str) -> None:
        events: list[RouterEvent] = []
        with self._lock:
            self._refresh_locked(name, self._breakers[name], events)
        if events:
            self._emit(events)

    def _refresh_locked(
        self, name: str, breaker: _Breaker, events: list[RouterEvent], now: float | None = None
    ) -> None:
        health = breaker.health
        if now is None:
            now = self.clock.now()
        if health.last_failure_at is not None:
            fade(health, now, self.policy.error_half_life_s)
        if (
            health.circuit == "open"
            and health.opened_until is not None
            and now >= health.opened_until
        ):
            health.circuit = "half_open"
            events.append(self._event(name, "half_open", "open", "cooldown over", None))

    def _event(
        self, name: str, state: str, previous: str, reason: str, cooldown: float | None
    ) -> RouterEvent:
        data: dict[str, object] = {"state": state, "previous": previous, "reason": reason}
        if cooldown is not None:
            data["cooldown_s"] = cooldown
        return RouterEvent(type="circuit", deployment=name, data=data, time=self.clock.wall())

    def _emit(self, events: list[RouterEvent]) -> None:
        if self.events is not None:
            for event in events:
                self.events.emit(event)
        events.clear()
