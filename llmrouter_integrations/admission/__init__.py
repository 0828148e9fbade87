"""Admission: who may send now, who waits. Rate limits, the fair waiting line, the call's pass.

`RateLimits` (limits.py) knows each deployment's RPM, TPM and concurrency, counted in
sliding windows (windows.py) and checked against the provider's own headers, and across
processes with `state=` (shared_rates.py). `RequestQueue` (queue.py) lines requests up
fairly while their deployments are full. `CallAdmission` (call.py) carries one call's
grant and permit down the stack, from the queue layer through the rate-limit layer to the
HTTP layer.

    >>> limits = RateLimits([Deployment("openai", "gpt-4o-mini", rpm=500)])
    >>> queue = RequestQueue(limits, max_wait=30)
"""

from .call import CallAdmission, admit, dismiss
from .limits import Permit, RateLimits, RateLimitWaitError
from .queue import Grant, RequestQueue, request_tokens

__all__ = [
    "CallAdmission",
    "Grant",
    "Permit",
    "RateLimitWaitError",
    "RateLimits",
    "RequestQueue",
    "admit",
    "dismiss",
    "request_tokens",
]
