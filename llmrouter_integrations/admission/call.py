"""What the queue, the rate limiter and the HTTP layer tell each other about one call.

The queue layer puts a `CallAdmission` on the request it passes down: the `Grant` the
waiting line promised; the rate-limit layer adds the `Permit` it took while its call
runs; the HTTP layer reports the provider's rate-limit headers through it, so they are
matched to the send they answer. One object passed down the stack, instead of context
variables each layer would have to know about.

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
    from .limits import Permit, RateLimits
    from .queue import Grant

__all__ = ["CallAdmission", "admit", "dismiss"]


class CallAdmission:
    """One call's admission: the line's grant, the limiter's permit, where headers go."""

    __slots__ = ("grant", "limits", "permit")

    def __init__(self) -> None:
        self.grant: Grant | None = None  # set by QueueBackend until the permit is taken
        self.permit: Permit | None = None  # set by RateLimitBackend while its call runs
        self.limits: RateLimits | None = None  # the limiter that issued `permit`

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
