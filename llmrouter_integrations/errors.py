"""The router's error tree; every failure a user sees is one of these.

```
RouterError
├── ConfigurationError            bad config, unknown provider, missing key (at construction)
├── SyncCallInEventLoopError      a sync method would wait on its own thread's event loop
├── ProviderError                 one call failed; .provider .model .deployment .retryable
│   ├── ProviderConnectionError
│   │   └── ProviderTimeoutError
│   ├── ProviderStatusError       .status_code .body .headers .retry_after
│   │   ├── BadRequestError
│   │   │   └── ContextWindowExceededError
│   │   │       └── RequestTooLargeError   over the whole tokens-per-minute allowance (413/429)
│   │   ├── AuthenticationError   (401)
│   │   ├── PermissionDeniedError (403)
│   │   ├── NotFoundError         (404)
│   │   ├── RateLimitError        (429)
│   │   ├── OverloadedError       (529, 503)
│   │   └── ServerError           (other 5xx)
│   └── ResponseDecodeError       malformed JSON / SSE / truncated stream
└── RoutingError
    ├── CircuitOpenError
    ├── NoDeploymentAvailableError
    ├── QueueTimeoutError
    ├── BudgetExceededError       .limit_usd .spent_usd .needed_usd
    ├── StateUnavailableError     the shared state store (state=) did not answer in time
    └── AllDeploymentsFailedError also an ExceptionGroup of every attempt's error
```

Whether an error is worth retrying, and how long the provider asked us to wait, live on
the error itself (`.retryable`, `.retry_after`), so retry and fallback policies never
re-derive them from status codes.

Catching one kind of failure takes one line, whatever the number of deployments. When
every attempt failed the same way (the key is wrong on the only deployment, or on all of
them), the `AllDeploymentsFailedError` raised is also an instance of that kind:

    >>> try:
    ...     router.complete("hi")
    ... except AuthenticationError as error:     # 1 deployment or 5, all with a wrong key
    ...     print("check the key of", error.deployment)
    ... except AllDeploymentsFailedError as exc: # failures of different kinds
    ...     for error in exc.exceptions:
    ...         print(error.deployment, error)

With mixed failures, `except* AuthenticationError:` (or `exc.subgroup(AuthenticationError)`)
picks the wrong keys out of the group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AllDeploymentsFailedError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigurationError",
    "ContextWindowExceededError",
    "NoDeploymentAvailableError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderStatusError",
    "ProviderTimeoutError",
    "QueueTimeoutError",
    "RateLimitError",
    "RequestTooLargeError",
    "ResponseDecodeError",
    "RouterError",
    "RoutingError",
    "ServerError",
    "SyncCallInEventLoopError",
    "error_for_status",
]


class RouterError(Exception):
    """Base of every error this package raises."""


class ConfigurationError(RouterError, ValueError):
    """The router was configured wrongly; raised at construction, before any request."""


class SyncCallInEventLoopError(RouterError, RuntimeError):
    """A sync method (`complete`, `chat`, `stream`, LangChain `invoke`, LlamaIndex `chat`...)
    was called from a thread running an event loop, and finishing it would need that very
    loop (an identical request is in flight on it, or it is the router's own loop).

    Use the async method there: `await router.acomplete(...)`, `await model.ainvoke(...)`,
    `await llm.achat(...)`. Sync calls from a running loop are otherwise allowed, since
    Jupyter runs every cell inside one.
    """


class ProviderError(RouterError):
    """One call to one deployment failed.

    `retryable` says whether the same request may succeed on a later attempt;
    `deployment_error` says the fault belongs to the deployment (bad key, unknown
    model), so another deployment may well succeed.
    """

    retryable: bool = False
    deployment_error: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        deployment: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.deployment = deployment
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        where = self.deployment or (
            f"{self.provider}/{self.model}" if self.provider and self.model else self.provider
        )
        return f"[{where}] {self.message}" if where else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[ProviderError], message: str, state: dict[str, Any]) -> ProviderError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ProviderConnectionError(ProviderError):
    """The connection failed or broke (refused, reset, dropped mid-stream)."""

    retryable = True


class ProviderTimeoutError(ProviderConnectionError):
    """Connecting or reading took longer than the timeout."""

    retryable = True


class ResponseDecodeError(ProviderError):
    """The provider's reply was malformed: bad JSON, broken SSE or a truncated stream."""

    retryable = True


class ProviderStatusError(ProviderError):
    """The provider answered with an error status. `body` is its parsed error body."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        deployment: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(
            message, provider=provider, model=model, deployment=deployment, retryable=retryable
        )
        self.status_code = status_code
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        self.retry_after = retry_after
        self.code = code

    def __str__(self) -> str:
        return f"{super().__str__()} (HTTP {self.status_code})"


class BadRequestError(ProviderStatusError):
    """400/422: the request itself is invalid; another provider would refuse it too."""


class ContextWindowExceededError(BadRequestError):
    """The prompt plus max_tokens does not fit this model; a larger model may take it."""

    deployment_error = True


class RequestTooLargeError(ContextWindowExceededError):
    """This request alone is over the deployment's tokens-per-minute allowance (OpenAI's 429,
    Groq's 413 "Request too large ... tokens per min (TPM): Limit X, Requested Y").

    No wait would admit it, so it is not retried here; like a context window that is too
    small it falls back to another deployment and does not trip the circuit breaker.
    """


class AuthenticationError(ProviderStatusError):
    """401: the API key is missing, wrong or revoked."""

    deployment_error = True


class PermissionDeniedError(ProviderStatusError):
    """403: the key may not use this model or endpoint."""

    deployment_error = True


class NotFoundError(ProviderStatusError):
    """404: unknown model or wrong base URL."""

    deployment_error = True


class RateLimitError(ProviderStatusError):
    """429: slow down; `retry_after` says for how long when the provider said."""

    retryable = True


class OverloadedError(ProviderStatusError):
    """529 or 503: the provider is overloaded; try later or elsewhere."""

    retryable = True


class ServerError(ProviderStatusError):
    """Any other 5xx (and 408/409, which providers document as retryable)."""

    retryable = True


class RoutingError(RouterError):
    """The router could not place the request (as opposed to a provider failing it)."""


class CircuitOpenError(RoutingError):
    """The deployment's circuit breaker is open; it is resting after repeated failures."""

    retryable = True
    deployment_error = False

    def __init__(self, message: str, *, deployment: str | None = None) -> None:
        super().__init__(message)
        self.deployment = deployment


class NoDeploymentAvailableError(RoutingError):
    """No deployment can take this request. `reasons` maps deployment name to why."""

    def __init__(self, message: str, *, reasons: Mapping[str, str] | None = None) -> None:
        self.reasons: dict[str, str] = dict(reasons or {})
        if self.reasons:
            detail = "; ".join(f"{name}: {why}" for name, why in self.reasons.items())
            message = f"{message} ({detail})"
        super().__init__(message)


class QueueTimeoutError(RoutingError):
    """The request waited in the queue longer than `max_queue_wait`."""

    retryable = True


class BudgetExceededError(RoutingError):
    """The request could cost more than what is left of a budget; nothing was sent."""

    def __init__(
        self,
        message: str,
        *,
        limit_usd: float,
        spent_usd: float,
        needed_usd: float,
        budget: str | None = None,
    ) -> None:
        super().__init__(message)
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.needed_usd = needed_usd
        self.budget = budget


class StateUnavailableError(RoutingError):
    """The shared state store (`Router(state=...)`) did not answer in time, and a budget
    covers this request: nothing was sent. `Router(state_failure="local")` spends from a
    per-process allowance instead.

    >>> except StateUnavailableError as error:
    ...     print(error.backend)    # "redis"
    """

    retryable = False

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend


class AllDeploymentsFailedError(RoutingError, ExceptionGroup):  # type: ignore[misc,unused-ignore]
    """Every candidate deployment failed. `attempts` lists each try in order.

    It is also an `ExceptionGroup`, so `except* RateLimitError:` picks one kind of failure
    out of several. When every attempt failed with the same kind of error (the key is wrong
    on the only deployment, or on all of them), the error is also an instance of that
    kind, with the last attempt's details (`status_code`, `body`, `deployment`...), so one
    plain `except` catches it whatever the number of deployments:

        >>> try:
        ...     router.complete("hi")
        ... except AuthenticationError as error:       # also an AllDeploymentsFailedError
        ...     print("fix the key of", error.deployment)
    """

    def __new__(
        cls, message: str, errors: Sequence[Exception], attempts: Sequence[Any] = ()
    ) -> AllDeploymentsFailedError:
        errors = list(errors) or [RoutingError("no attempt was made")]
        if cls is AllDeploymentsFailedError:
            cls = _with_common_cause(errors)
        self: AllDeploymentsFailedError = super().__new__(cls, message, errors)
        return self

    def __init__(
        self, message: str, errors: Sequence[Exception], attempts: Sequence[Any] = ()
    ) -> None:
        errors = list(errors) or [RoutingError("no attempt was made")]
        # Not super(): in a combined class the next __init__ is the provider error's.
        ExceptionGroup.__init__(self, message, errors)
        if type(self) is not AllDeploymentsFailedError and type(self) in _COMMON.values():
            # Carry the last attempt's details, as the error of that kind would.
            for name, value in vars(errors[-1]).items():
                if name not in ("message", "attempts") and not name.startswith("__"):
                    setattr(self, name, value)
        self.attempts = list(attempts)

    def derive(  # type: ignore[override,unused-ignore]
        self, excs: Sequence[Exception]
    ) -> AllDeploymentsFailedError:
        return AllDeploymentsFailedError(self.message, excs, self.attempts)

    def __str__(self) -> str:
        lines = [self.message]
        lines += [f"  - {type(e).__name__}: {e}" for e in self.exceptions]
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        # The combined classes are made at run time; pickles name the public class.
        return (AllDeploymentsFailedError, (self.message, list(self.exceptions), self.attempts))


# AllDeploymentsFailedError combined with the one kind of error every attempt failed with.
_COMMON: dict[type[Exception], type[AllDeploymentsFailedError]] = {}


def _with_common_cause(errors: Sequence[Exception]) -> type[AllDeploymentsFailedError]:
    kind = type(errors[0])
    if not issubclass(kind, ProviderError) or any(type(e) is not kind for e in errors):
        return AllDeploymentsFailedError
    combined = _COMMON.get(kind)
    if combined is None:
        combined = type(
            "AllDeploymentsFailedError",
            (AllDeploymentsFailedError, kind),
            {"__module__": __name__, "__doc__": AllDeploymentsFailedError.__doc__},
        )
        _COMMON[kind] = combined
    return combined


_STATUS_CLASSES: dict[int, type[ProviderStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ServerError,
    409: ServerError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    503: OverloadedError,
    529: OverloadedError,
}


def error_for_status(status_code: int) -> type[ProviderStatusError]:
    """The error class for an HTTP status: the one place statuses map to the tree.

    >>> error_for_status(429).__name__
    'RateLimitError'
    """
    if status_code in _STATUS_CLASSES:
        return _STATUS_CLASSES[status_code]
    if status_code >= 500:
        return ServerError
    if status_code >= 400:
        return BadRequestError
    return ProviderStatusError
