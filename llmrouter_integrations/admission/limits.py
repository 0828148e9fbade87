"""Per-deployment rate limits (RPM, TPM, concurrency) that also learn from providers' headers.

Each deployment has up to three local limits from its `Deployment`: `rpm`, `tpm` and
`max_concurrency`. Requests and tokens are counted in sliding one-minute windows: what a
request spends comes back exactly one window later, so no 60-second span ever holds more
than the limit (a provider counting that way never refuses us), and a burst up to the
limit still goes at once. Tokens are estimated before the call (prompt estimate plus
`max_tokens`) and corrected to the real usage after it.

On top, the limiter keeps the provider's own view: every response's rate-limit headers
(`x-ratelimit-*`, `anthropic-ratelimit-*`) say how many requests and tokens are left
until the window resets, and the limiter counts its own sends against that, so it stops
*before* the provider would answer 429. After a 429 the deployment pauses for the
provider's `retry-after`.

Nothing here holds a future or an event loop: every decision is "how long until this
request may go", computed under a `threading.Lock`, so one `RateLimits` serves the sync
bridge's loop and a user's loop at once. Waiting is the `RequestQueue`'s job.

    >>> limits = RateLimits([Deployment("openai", "gpt-4o-mini", rpm=500, tpm=200_000)])
    >>> limits.delay("openai/gpt-4o-mini", tokens=1_200)      # 0.0: may go now
    >>> permit = limits.try_acquire("openai/gpt-4o-mini", 1_200)
    >>> limits.release(permit, actual_tokens=640)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.events import EventHub, RouterEvent
from ..errors import QueueTimeoutError
from ..state.shared import Headroom, RateDone
from ..types import Deployment
from .queue import request_tokens
from .shared_rates import POLL_S
from .windows import ProviderView, SlidingWindow, Slot

if TYPE_CHECKING:
    from ..providers.base import RateLimitInfo
    from .shared_rates import SharedRates

__all__ = ["Permit", "RateLimitWaitError", "RateLimits", "request_tokens"]

_EPSILON = 1e-9


class RateLimitWaitError(QueueTimeoutError):
    """This deployment has no capacity within the allowed wait; nothing was sent.

    A `QueueTimeoutError` (a `RoutingError`), so the fallback moves on to the next
    deployment, the retry layer does not retry it, and the circuit breaker ignores it.

        >>> except RateLimitWaitError as error:
        ...     print(error.deployment, error.delay_s)   # "openai/gpt-4o-mini" 42.0
    """

    def __init__(self, message: str, *, deployment: str, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.delay_s = delay_s


class _State:
    """One deployment's limits and counters (guarded by the RateLimits lock)."""

    __slots__ = (
        "header_mark",
        "in_use",
        "max_concurrency",
        "name",
        "paused_until",
        "provider_requests",
        "provider_tokens",
        "requests",
        "rpm",
        "sends",
        "shared_until",
        "tokens",
        "tokens_sent",
        "tpm",
    )

    def __init__(
        self, name: str, rpm: int | None, tpm: int | None, max_concurrency: int | None
    ) -> None:
        self.name = name
        self.rpm = rpm
        self.tpm = tpm
        self.max_concurrency = max_concurrency
        self.requests = SlidingWindow(rpm) if rpm else None
        self.tokens = SlidingWindow(tpm) if tpm else None
        self.provider_requests = ProviderView()
        self.provider_tokens = ProviderView()
        self.in_use = 0
        self.paused_until = -math.inf
        self.shared_until = -math.inf  # the fleet's windows are full until then (state=)
        self.sends = 0  # requests sent so far, numbering each permit
        self.tokens_sent = 0  # tokens charged so far
        self.header_mark = 0  # the newest send whose headers we applied

    def delay(self, now: float, tokens: int, requests: int) -> float:
        if self.max_concurrency is not None and self.in_use + requests > self.max_concurrency:
            return math.inf
        wait = max(self.paused_until, self.shared_until) - now
        alone = requests == 1
        if self.requests is not None:
            wait = max(wait, self.requests.delay(now, requests, alone))
        if self.tokens is not None:
            wait = max(wait, self.tokens.delay(now, tokens, alone))
        provider_wait = self.provider_requests.delay(now, requests, alone)
        if provider_wait > wait:
            wait = provider_wait
        provider_wait = self.provider_tokens.delay(now, tokens, alone)
        if provider_wait > wait:
            wait = provider_wait
        return wait if wait > _EPSILON else 0.0

    def rpm_left(self, now: float) -> int | None:
        if self.requests is None or self.rpm is None:
            return None
        return max(0, self.rpm - self.requests.used(now))

    def tpm_left(self, now: float) -> int | None:
        if self.tokens is None or self.tpm is None:
            return None
        return max(0, self.tpm - self.tokens.used(now))


@dataclass(eq=False, slots=True)
class Permit:
    """One request's hold on a deployment: a concurrency slot and its charged tokens.

    >>> permit = limits.try_acquire("openai/gpt-4o-mini", tokens=1_200)
    >>> limits.release(permit, actual_tokens=640)   # give it back, with the real usage
    """

    deployment: str
    tokens: int
    seq: int
    token_mark: int
    _token_slot: Slot | None = None
    released: bool = False
    shared_id: str | None = None  # the fleet's permit in the shared store, if any
    headroom: Headroom | None = None  # what the provider's headers said, for the store


class RateLimits:
    """The limits of every deployment of one router, and the provider's view of them.

        >>> limits = RateLimits(router.deployments, clock=clock, events=router.events)
        >>> limits.has_capacity("anthropic/claude-haiku-4-5", tokens=2_000)
        True
        >>> limits.snapshot("anthropic/claude-haiku-4-5")["remaining_requests"]

    `default_pause_s` is how long a deployment rests after a 429 that named no
    `retry-after`. Deployments not given at construction get no local limits (the
    provider's headers still apply).
    """

    def __init__(
        self,
        deployments: Iterable[Deployment] = (),
        *,
        clock: Clock = SYSTEM_CLOCK,
        events: EventHub | None = None,
        default_pause_s: float = 1.0,
    ) -> None:
        self.clock = clock
        self.events = events
        self.default_pause_s = default_pause_s
        # The fleet's windows (Router(state=...)); None: this process counts alone.
        self.shared: SharedRates | None = None
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self._listeners: list[Callable[[], None]] = []
        for deployment in deployments:
            self.add(deployment)

    def add(self, deployment: Deployment) -> None:
        """Track a deployment with its `rpm`, `tpm` and `max_concurrency` (None = no limit)."""
        name = deployment.key
        with self._lock:
            self._states[name] = _State(
                name, deployment.rpm, deployment.tpm, deployment.max_concurrency
            )

    def _state(self, name: str) -> _State:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _State(name, None, None, None)
        return state

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from any thread) whenever capacity may have come back."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _changed(self) -> None:
        for callback in tuple(self._listeners):
            callback()

    # -- questions, no side effects -----------------------------------------------------------

    def delay(self, name: str, tokens: int, *, requests: int = 1) -> float:
        """Seconds until `requests` requests totalling `tokens` may go to `name` (0 = now).

        `math.inf` means "not by time alone": the concurrency limit is reached and only a
        running request finishing frees a slot.
        """
        with self._lock:
            state = self._states.get(name) or self._state(name)
            return state.delay(self.clock.now(), tokens, requests)

    def has_capacity(self, name: str, tokens: int) -> bool:
        """True when one request of `tokens` may go to `name` now (for the planner)."""
        with self._lock:
            state = self._states.get(name) or self._state(name)
            return state.delay(self.clock.now(), tokens, 1) <= 0.0

    def snapshot(self, name: str) -> dict[str, Any]:
        """What `router.health()` shows: limits, what is left of them now, in flight, pause.

        `remaining_*` is the tighter of the local limit and the provider's last word
        (None when neither is known).
        """
        with self._lock:
            state = self._state(name)
            now = self.clock.now()
            remaining_requests = _tighter(state.rpm_left(now), state.provider_requests.left(now))
            remaining_tokens = _tighter(state.tpm_left(now), state.provider_tokens.left(now))
            return {
                "in_flight": state.in_use,
                "max_concurrency": state.max_concurrency,
                "rpm": state.rpm,
                "tpm": state.tpm,
                "remaining_requests": remaining_requests,
                "remaining_tokens": remaining_tokens,
                "paused_for_s": max(0.0, state.paused_until - now),
                "ready_in_s": state.delay(now, 0, 1),
            }

    # -- taking and giving back -----------------------------------------------------------------

    def shared_limits(
        self, name: str, tokens: int
    ) -> tuple[int | None, int | None, int | None] | None:
        """(rpm, tpm, max_concurrency) to count one send of `tokens` in the fleet's windows
        and draw it from the provider's headroom, when state is shared and this process's
        own windows have room now (for `StoreTrip`, which counts it in the call's one
        trip); else None."""
        if self.shared is None:
            return None
        with self._lock:
            state = self._states.get(name) or self._state(name)
            if state.delay(self.clock.now(), tokens, 1) > 0.0:
                return None
            return state.rpm, state.tpm, state.max_concurrency

    def discard(self, name: str, prefetched: tuple[str, int, float] | None) -> None:
        """A send the store counted that will not go (the layer could not use it): free its
        concurrency slot (its window count stays, erring on the safe side)."""
        if prefetched is not None and prefetched[2] == 0.0 and self.shared is not None:
            self.shared.release(RateDone(name, prefetched[0]))

    def try_acquire(
        self, name: str, tokens: int, prefetched: tuple[str, int, float] | None = None
    ) -> Permit | None:
        """Take capacity for one request of `tokens` now, or None if it must wait.

        With shared state, the send is also counted in the store, in the fleet's windows and
        against the provider's headroom (after the local check, so a local refusal costs
        no trip).
        `prefetched` is the store's answer already had in the call's one trip (permit id,
        tokens, wait; `admission.store_trip`): used instead of asking again.
        """
        with self._lock:
            state = self._states.get(name) or self._state(name)
            now = self.clock.now()
            waits = state.delay(now, tokens, 1) > 0.0
        if prefetched is not None and (waits or prefetched[1] != tokens):
            self.discard(name, prefetched)
            prefetched = None
        if waits:
            return None
        shared_id = None
        # Every send with shared state is counted in the store, limits or not: the
        # provider's headroom the fleet shares is drawn from by all of them.
        if self.shared is not None:
            if prefetched is not None:
                wait = POLL_S if math.isinf(prefetched[2]) else prefetched[2]
                verdict: tuple[str, float] | None = (prefetched[0], wait)
            else:
                verdict = self.shared.acquire(
                    name, state.rpm, state.tpm, state.max_concurrency, tokens
                )
            if verdict is not None:
                shared_id, wait = verdict
                if wait > 0.0:
                    with self._lock:
                        state.shared_until = now + wait
                    return None
        with self._lock:
            state.in_use += 1
            state.sends += 1
            state.tokens_sent += tokens
            if state.requests is not None:
                state.requests.spend(now, 1)
            slot = state.tokens.spend(now, tokens) if state.tokens is not None else None
            state.provider_requests.spend(1)
            state.provider_tokens.spend(tokens)
            return Permit(name, tokens, state.sends, state.tokens_sent, slot, shared_id=shared_id)

    def release(
        self, permit: Permit, actual_tokens: int | None = None, *, hand_over: bool = False
    ) -> RateDone | None:
        """Give back the concurrency slot; correct the charged tokens to `actual_tokens`.

        `hand_over`: return the store's part (slot, token delta, the provider's headroom)
        instead of sending it, for the budget layer's settle to carry (one trip after).
        """
        with self._lock:
            if permit.released:
                return None
            permit.released = True
            state = self._states.get(permit.deployment) or self._state(permit.deployment)
            state.in_use -= 1
            if actual_tokens is not None and state.tokens is not None and permit._token_slot:
                state.tokens.correct(
                    permit._token_slot, actual_tokens - permit.tokens, self.clock.now()
                )
            # The fleet only needs news of a freed slot or corrected tokens.
            shared_news = permit.shared_id is not None and (
                state.max_concurrency
                or (state.tpm and actual_tokens is not None)
                or permit.headroom is not None
            )
        if shared_news and self.shared is not None and permit.shared_id is not None:
            delta = actual_tokens - permit.tokens if actual_tokens is not None else 0
            news = RateDone(permit.deployment, permit.shared_id, delta, permit.headroom)
            if hand_over:
                self._changed()
                return news
            self.shared.release(news)
        self._changed()
        return None

    # -- what the provider told us --------------------------------------------------------------

    def update_from_headers(
        self, name: str, info: RateLimitInfo, permit: Permit | None = None
    ) -> None:
        """Fold a response's rate-limit headers in: the HTTP backend's `on_rate_limits`.

        Given the `permit` of the request that got the response (the HTTP layer passes it
        through the request's `CallAdmission`), it counts the requests and tokens sent
        *after* that one against what the provider reports left, since the provider had not
        seen them yet. Older news than what we already
        applied does not overwrite it.
        """
        with self._lock:
            state = self._states.get(name) or self._state(name)
            now = self.clock.now()
            sent_requests = sent_tokens = 0
            fresh = True
            if permit is not None and permit.deployment == name:
                fresh = permit.seq >= state.header_mark
                if fresh:
                    state.header_mark = permit.seq
                    sent_requests = state.sends - permit.seq
                    sent_tokens = state.tokens_sent - permit.token_mark
            if fresh:
                state.provider_requests.update(
                    now,
                    info.limit_requests,
                    info.remaining_requests,
                    info.reset_requests_s,
                    sent_requests,
                )
                state.provider_tokens.update(
                    now, info.limit_tokens, info.remaining_tokens, info.reset_tokens_s, sent_tokens
                )
            if info.retry_after_s is not None and info.retry_after_s > 0:
                state.paused_until = max(state.paused_until, now + info.retry_after_s)
            said = info.remaining_requests is not None or info.remaining_tokens is not None
            if said and permit is not None and permit.shared_id is not None:
                # The fleet's view, as of this send: goes to the store when it is released.
                permit.headroom = Headroom(
                    info.limit_requests,
                    info.remaining_requests,
                    info.reset_requests_s,
                    info.limit_tokens,
                    info.remaining_tokens,
                    info.reset_tokens_s,
                )
        if self.shared is not None:
            # What the provider said applies to every process: a retry-after, or a limit it
            # reports used up until its reset, pauses the deployment fleet-wide.
            pause = _exhausted_for(info)
            if pause > 0:
                self.shared.pause(name, pause)
        self._changed()

    def on_rate_limited(self, name: str, retry_after: float | None) -> None:
        """The provider answered 429: rest the deployment for `retry_after` seconds."""
        pause = retry_after if retry_after is not None and retry_after > 0 else None
        with self._lock:
            state = self._state(name)
            now = self.clock.now()
            state.paused_until = max(state.paused_until, now + (pause or self.default_pause_s))
        if self.shared is not None and pause is not None:
            self.shared.pause(name, pause)
        if self.events is not None:
            self.events.emit(
                RouterEvent(
                    type="rate_limited",
                    deployment=name,
                    data={"reason": "429", "retry_after_s": retry_after},
                    time=self.clock.wall(),
                )
            )


def _exhausted_for(info: RateLimitInfo) -> float:
    """Seconds the provider says no more calls will go through (0.0: it did not say so)."""
    pause = info.retry_after_s or 0.0
    if info.remaining_requests is not None and info.remaining_requests <= 0:
        pause = max(pause, info.reset_requests_s or 0.0)
    if info.remaining_tokens is not None and info.remaining_tokens <= 0:
        pause = max(pause, info.reset_tokens_s or 0.0)
    return pause


def _tighter(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)
