"""What the queue, the rate limiter and the HTTP layer tell each other about one call.

The queue layer puts a `CallAdmission` on the request it passes down: the `Grant` the
waiting line promised; the rate-limit layer adds the `Permit` it took while its call
runs; the HTTP layer reports the provider's rate-limit headers through it, so they are
matched to the send they answer. One object passed down the stack, instead of context
variables each layer would have to know about. With shared state (`Router(state=...)`),
it also carries what the call's one trip to the store already answered (`Prefetched`:
the circuit's verdict for the breaker, the counted send for the limiter) and the rate
release the budget layer sends with its settle, so a call costs one trip before and one
after.

    >>> request, admission = admit(request)        # QueueBackend (or RateLimitBackend alone)
    >>> admission.grant = queue.try_grant(names, tokens)
    >>> ...                                        # the layers below read and fill it
    >>> dismiss(request, admission)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..types import ChatRequest

if TYPE_CHECKING:
    from ..providers.base import RateLimitInfo
    from ..state.shared import Admission, RateDone
    from .limits import Permit, RateLimits
    from .queue import Grant

__all__ = ["CallAdmission", "Prefetched", "admit", "dismiss"]


class Prefetched:
    """What one trip to the shared store answered for the first attempt on `deployment`:
    the fleet's circuit verdict (`circuit`, None when not asked) and the rate count
    (`rate` = (permit id, tokens, seconds to wait: 0.0 = counted), None when not asked).
    Each is taken once; a retry or a wait asks the store again."""

    __slots__ = ("circuit", "circuit_taken", "deployment", "rate")

    def __init__(
        self,
        deployment: str,
        circuit: Admission | None,
        rate: tuple[str, int, float] | None,
    ) -> None:
        self.deployment = deployment
        self.circuit = circuit
        self.circuit_taken = False
        self.rate = rate


class CallAdmission:
    """One call's admission: the line's grant, the limiter's permit, where headers go."""

    __slots__ = ("finish_later", "grant", "limits", "permit", "prefetched", "rate_release")

    def __init__(self) -> None:
        self.grant: Grant | None = None  # set by QueueBackend until the permit is taken
        self.permit: Permit | None = None  # set by RateLimitBackend while its call runs
        self.limits: RateLimits | None = None  # the limiter that issued `permit`
        self.prefetched: Prefetched | None = None  # the store trip's answers, not yet used
        # Set by the budget layer that will settle in the store after the call: the limiter
        # then leaves its store release in `rate_release` for that settle to carry,
        # instead of a trip of its own.
        self.finish_later = False
        self.rate_release: RateDone | None = None

    def take_circuit(self, deployment: str) -> tuple[bool, Admission | None]:
        """(whether the store was asked for `deployment`'s circuit, its verdict); once."""
        prefetched = self.prefetched
        if prefetched is None or prefetched.deployment != deployment or prefetched.circuit_taken:
            return False, None
        prefetched.circuit_taken = True
        return True, prefetched.circuit

    def take_rate(self, deployment: str) -> tuple[str, int, float] | None:
        """The store's count of this call's send to `deployment`, if it made one; once."""
        prefetched = self.prefetched
        if prefetched is None or prefetched.deployment != deployment:
            return None
        rate, prefetched.rate = prefetched.rate, None
        return rate

    def report_rate_limits(self, deployment: str, info: RateLimitInfo) -> bool:
        """Give the provider's headers to the limiter holding this call's permit.

        False when no limiter holds one (the HTTP layer then uses its own callback).
        """
        limits = self.limits
        if limits is None:
            return False
        limits.update_from_headers(deployment, info, self.permit)
        return True

    def __repr__(self) -> str:
        return f"CallAdmission(grant={self.grant!r}, permit={self.permit!r})"


def admit(request: ChatRequest) -> tuple[ChatRequest, CallAdmission]:
    """`request` carrying a new admission for this call.

    A request already carrying another call's admission (one `ChatRequest` object sent
    several times at once) is copied first, so calls never share one.
    """
    admission = CallAdmission()
    if request.admission is not None:
        estimate = request._token_estimate
        request = dataclasses.replace(request)
        request._token_estimate = estimate
    request.admission = admission
    return request, admission


def dismiss(request: ChatRequest, admission: CallAdmission) -> None:
    """The call is over: the request no longer carries its admission."""
    if request.admission is admission:
        request.admission = None
