"""The parameters layer of one deployment: fits each request to what the deployment takes.

Outermost layer of a deployment's stack, so the budget below reserves what is sent (an
Anthropic thinking call's raised max_tokens included). An option the deployment does not
take is dropped with one warning per deployment and option (`strict_params=True`: a
`BadRequestError` that lets the request fall back to another deployment); notes such as
"thinking turned off for this call" become router events. Rules: `providers/fitting.py`.

    >>> layer = ParamsBackend(budget_layer, deployment, endpoint=endpoint, reasons=True,
    ...                       strict=False, events=hub)
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

from ..core.backend import ChatBackend, WrapperBackend
from ..core.events import EventHub, RouterEvent
from ..errors import BadRequestError
from ..providers.base import Endpoint
from ..providers.fitting import fit_request
from ..routing.affinity import PrefixAffinity
from ..types import ChatChunk, ChatRequest, ChatResponse, Deployment

__all__ = ["ParamsBackend"]


class ParamsBackend(WrapperBackend):
    """Fits requests to one deployment (see the module docstring)."""

    def __init__(
        self,
        inner: ChatBackend,
        deployment: Deployment,
        *,
        endpoint: Endpoint,
        reasons: bool,
        strict: bool = False,
        prompt_cache: str | None = None,
        events: EventHub | None = None,
        affinity: PrefixAffinity | None = None,
    ) -> None:
        super().__init__(inner)
        self.deployment = deployment
        self.endpoint = endpoint
        self.reasons = reasons
        self.strict = strict
        self.prompt_cache = prompt_cache
        self._events = events
        self._affinity = affinity
        self._warned: set[str] = set()

    def fit(self, request: ChatRequest) -> ChatRequest:
        """The request as this deployment takes it; warns, raises or emits as it goes."""
        fitted = fit_request(
            request,
            dialect=self.endpoint.dialect,
            endpoint=self.endpoint,
            model=request.model or self.deployment.model,
            reasons=self.reasons,
            prompt_cache=self.prompt_cache,
        )
        name = self.deployment.key
        if fitted.dropped:
            strict = self.strict if request.strict_params is None else request.strict_params
            if strict:
                detail = "; ".join(f"{option}: {why}" for option, why in fitted.dropped)
                error = BadRequestError(
                    f"deployment {name!r} does not take {detail} (strict_params=True)",
                    status_code=400,
                    provider=self.endpoint.name,
                    deployment=name,
                )
                error.deployment_error = True  # another deployment may take it
                raise error
            for option, why in fitted.dropped:
                if option not in self._warned:
                    self._warned.add(option)
                    warnings.warn(
                        f"{option} was not sent to {name}: {why} "
                        "(Router(strict_params=True) makes this an error)",
                        stacklevel=4,
                    )
        if self._events is not None:
            for kind, detail in fitted.notes:
                self._events.emit(RouterEvent(kind, name, {"reason": detail}))
        return fitted.request

    async def chat(self, request: ChatRequest) -> ChatResponse:
        response = await self.inner.chat(self.fit(request))
        if self._affinity is not None:
            self._affinity.record(request, self.deployment.key)
        return response

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        try:
            fitted = self.fit(request)
        except BadRequestError as error:
            return _raising(error)  # raised on iteration, like any layer's error
        if self._affinity is not None:
            # Recorded as sent: a stream that fails falls back, and the fallback records too.
            self._affinity.record(request, self.deployment.key)
        return self.inner.stream(fitted)  # no wrapper on the hot path


async def _raising(error: BaseException) -> AsyncIterator[ChatChunk]:
    raise error
    yield  # pragma: no cover - makes this an async generator
