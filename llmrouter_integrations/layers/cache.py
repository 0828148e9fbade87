"""The response cache layer: identical requests are answered once, then from the cache.

A hit is the stored answer with `cached=True`, `cost=0.0` and `original_cost` set to
what the first call cost (the money saved); text, tool calls, usage, finish reason,
provider, model and deployment are the original's, `latency_s` is the hit's own.
Streams are stored once they end complete and are replayed as the same chunks, then a
final chunk with the same metadata. Either kind of entry serves both `chat()` and
`stream()`. Errors and broken or abandoned streams are never stored.

Single-flight: while one call for a key is under way, identical requests wait for it
and share its answer (as hits) instead of calling the provider too. If that call fails,
they get the same error, except when it failed for reasons of its own (cancelled, its
own timeout, a refusal by its budget, queue or cost cap: the key leaves out user, tags,
timeout and priority) or a stream broke after some of it was delivered; then one of the
waiters makes its own call, the others wait for that one.

With shared state (`Router(state=...)`) and a cache the processes share (SQLite, Redis),
the same holds across processes: one lock per key in the store, the other processes
read the answer from the cache (see `shared_flights`).

    >>> layer = CacheBackend(inner, MemoryCacheStore(ttl_s=3600),
    ...                      candidate_names=lambda r: list(r.deployments or names),
    ...                      deployments=router.deployments, events=router.events)
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from ..core import blocked_caller_loop
from ..core.backend import ChatBackend, WrapperBackend, aclose_stream
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.events import EventHub, RouterEvent
from ..errors import (
    AllDeploymentsFailedError,
    ProviderTimeoutError,
    RoutingError,
    SyncCallInEventLoopError,
)
from ..state.cache import CacheStore, CacheValue
from ..state.cache_codec import (
    ENTRY_VERSION,
    cache_key,
    chunks_from_entry,
    entry_from_stream,
    response_from_dict,
    response_to_dict,
)
from ..types import ChatChunk, ChatRequest, ChatResponse, CostDetail, Deployment, Usage
from .shared_flights import FIRST_POLL_S, MAX_POLL_S, SharedFlights

__all__ = ["CacheBackend", "CacheStats", "cache_key"]

log = logging.getLogger("llmrouter_integrations")


@dataclass(slots=True)
class CacheStats:
    """Counts since start: hits (of which `shared` came from a call under way), misses,
    requests that skipped the cache, and the money hits saved.

        >>> layer.stats.hits, layer.stats.saved_usd
        (12, 0.0184)
    """

    hits: int = 0
    shared: int = 0
    misses: int = 0
    bypassed: int = 0
    saved_usd: float = 0.0
    store_errors: int = 0


class _Flight:
    """One call under way for a key, and who waits for its outcome (on any event loop)."""

    __slots__ = ("done", "entry", "error", "loop", "rerun", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # where the leader's call runs
        self.done = False
        self.entry: CacheValue | None = None
        self.error: BaseException | None = None
        self.rerun = False  # the waiters should make their own call
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []


def _callers_own(error: BaseException) -> bool:
    """Whether a failure belongs to the call that met it rather than to the request, so an
    identical request may fare differently: cancellation, a timeout (the leader's deadline
    is its own), or a routing refusal (budgets by user or tag, queue priority, cost cap).

    >>> _callers_own(ProviderTimeoutError("timed out")), _callers_own(ValueError())
    (True, False)
    """
    if not isinstance(error, Exception):
        return True
    if isinstance(error, AllDeploymentsFailedError):
        return any(_callers_own(e) for e in error.exceptions)
    return isinstance(error, (ProviderTimeoutError, RoutingError))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class CacheBackend(WrapperBackend):
    """Caches answers of `inner` in `store`, keyed by the request and its candidate deployments.

    `candidate_names(request)` gives the deployments that could serve the request (their
    provider, model and URL join the key when they are among `deployments`); by default,
    `request.deployments` or every deployment given. `request.cache=False` skips the
    cache; `request.cache=None` follows `enabled_by_default`. `ttl_s` (None: the store's
    default) applies to entries this layer writes.
    """

    def __init__(
        self,
        inner: ChatBackend,
        store: CacheStore,
        *,
        candidate_names: Callable[[ChatRequest], Sequence[str]] | None = None,
        deployments: Iterable[Deployment] = (),
        clock: Clock = SYSTEM_CLOCK,
        events: EventHub | None = None,
        enabled_by_default: bool = True,
        ttl_s: float | None = None,
        flights: SharedFlights | None = None,
    ) -> None:
        super().__init__(inner)
        self.store = store
        self.flights = flights
        self.clock = clock
        self.events = events
        self.enabled_by_default = enabled_by_default
        self.ttl_s = ttl_s
        self.stats = CacheStats()
        self._deployments = {d.key: d for d in deployments}
        self._candidate_names = candidate_names
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    # -- keys and the store ---------------------------------------------------------------------

    def _enabled(self, request: ChatRequest) -> bool:
        enabled = self.enabled_by_default if request.cache is None else request.cache
        if not enabled:
            with self._lock:
                self.stats.bypassed += 1
        return enabled

    def key(self, request: ChatRequest) -> str:
        """The cache key this layer uses for `request`."""
        if self._candidate_names is not None:
            names: Sequence[str] = self._candidate_names(request)
        else:
            names = request.deployments or tuple(self._deployments)
        known = self._deployments
        return cache_key(request, [known.get(n, n) for n in names])

    async def _lookup(self, key: str) -> CacheValue | None:
        try:
            entry = await self.store.get(key)
        except Exception:  # a broken cache must not break requests
            log.warning(
                "cache store %r failed to read; treating as a miss", self.store, exc_info=True
            )
            with self._lock:
                self.stats.store_errors += 1
            return None
        if entry is None or entry.get("v") != ENTRY_VERSION:
            return None
        return entry

    async def _save(self, key: str, entry: CacheValue) -> None:
        try:
            await self.store.set(key, entry, ttl_s=self.ttl_s)
        except Exception:
            log.warning("cache store %r failed to write", self.store, exc_info=True)
            with self._lock:
                self.stats.store_errors += 1

    # -- single flight --------------------------------------------------------------------------

    def _join(self, key: str) -> tuple[_Flight, bool]:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = _Flight(asyncio.get_running_loop())
            return flight, True

    def _land(
        self,
        key: str,
        flight: _Flight,
        *,
        entry: CacheValue | None = None,
        error: BaseException | None = None,
        rerun: bool = False,
    ) -> None:
        with self._lock:
            if flight.done:
                return
            flight.done = True
            flight.entry = entry
            flight.error = error
            flight.rerun = rerun or (entry is None and error is None)
            if self._flights.get(key) is flight:
                del self._flights[key]
            waiters, flight.waiters = flight.waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    async def _lookup_as_leader(self, key: str, flight: _Flight) -> CacheValue | None:
        """Look again once we lead the flight; if that fails or is cancelled, hand the flight
        back so that identical requests waiting on it do not wait forever."""
        try:
            return await self._lookup(key)
        except BaseException:
            self._land(key, flight, rerun=True)
            raise

    async def _follow(self, flight: _Flight, request: ChatRequest) -> None:
        loop = asyncio.get_running_loop()
        if flight.loop is not loop and flight.loop is blocked_caller_loop():
            # The leader runs on the loop our own sync caller is blocking: it would never end.
            raise SyncCallInEventLoopError(
                "a sync call (complete/chat/stream, invoke, ...) was made from a thread whose "
                "event loop is running an identical request; waiting for it would hang this "
                "thread. Use the async method there (await router.acomplete(...), "
                "await model.ainvoke(...), await llm.achat(...))"
            )
        with self._lock:
            if flight.done:
                return
            future: asyncio.Future[None] = loop.create_future()
            flight.waiters.append((loop, future))
        try:
            if request.deadline is None:
                await future
            else:
                # A follower keeps its own overall timeout while it waits for the leader.
                remaining = request.deadline - self.clock.now()
                try:
                    await asyncio.wait_for(asyncio.shield(future), max(0.0, remaining))
                except TimeoutError:
                    raise ProviderTimeoutError(
                        "the request's overall timeout expired while waiting for an identical "
                        "request already in flight"
                    ) from None
        finally:
            with self._lock:
                if (loop, future) in flight.waiters:
                    flight.waiters.remove((loop, future))

    async def _fleet_turn(
        self, key: str, flight: _Flight, request: ChatRequest
    ) -> tuple[str, CacheValue | None]:
        """Across processes (shared state): ("lock token", None) when this call goes
        upstream, or ("", entry) when another process's answer arrived in the cache."""
        flights = self.flights
        if flights is None:
            return "", None
        poll = FIRST_POLL_S
        try:
            while True:
                owner = flights.lead(key)
                if owner is not None:
                    return owner, None
                if request.deadline is not None and self.clock.now() + poll > request.deadline:
                    raise ProviderTimeoutError(
                        "the request's overall timeout expired while another process was "
                        "making the identical request"
                    )
                await self.clock.sleep(poll)
                poll = min(poll * 2, MAX_POLL_S)
                entry = await self._lookup(key)
                if entry is not None:
                    self._land(key, flight, entry=entry)
                    return "", entry
        except BaseException:
            self._land(key, flight, rerun=True)
            raise

    def _fleet_done(self, key: str, owner: str) -> None:
        if owner and self.flights is not None:
            self.flights.done(key, owner)

    # -- hits -------------------------------------------------------------------------------------

    def _count_hit(self, entry: CacheValue, key: str, *, shared: bool, stream: bool) -> float:
        saved = entry.get("cost") or 0.0
        with self._lock:
            self.stats.hits += 1
            self.stats.shared += shared
            self.stats.saved_usd += saved
        if self.events is not None:
            self.events.emit(
                RouterEvent(
                    type="cache_hit",
                    deployment=entry.get("deployment") or None,
                    data={"saved_usd": saved, "shared": shared, "stream": stream, "key": key[:16]},
                    time=self.clock.wall(),
                )
            )
        return saved

    def _hit(self, entry: CacheValue, key: str, started: float, *, shared: bool) -> ChatResponse:
        response = response_from_dict(entry)
        self._count_hit(entry, key, shared=shared, stream=False)
        response.original_cost = response.cost
        response.cost = 0.0
        if response.cost_detail is not None:
            response.cost_detail = CostDetail(source="cache")
        response.cached = True
        response.latency_s = self.clock.now() - started
        return response

    async def _replay(
        self, entry: CacheValue, key: str, started: float, *, shared: bool
    ) -> AsyncIterator[ChatChunk]:
        self._count_hit(entry, key, shared=shared, stream=True)
        ttft: float | None = None
        for chunk in chunks_from_entry(entry):
            if ttft is None and chunk.has_content:
                ttft = self.clock.now() - started
            yield chunk
        detail = entry.get("cost_detail")
        raw_json = entry.get("raw_json")
        yield ChatChunk(
            is_final=True,
            finish_reason=entry.get("finish_reason"),
            usage=Usage(*entry["usage"]),
            cost=0.0,
            cost_detail=CostDetail(source="cache") if detail is not None else None,
            provider=entry.get("provider", ""),
            model=entry.get("model", ""),
            deployment=entry.get("deployment", ""),
            latency_s=self.clock.now() - started,
            ttft_s=ttft,
            cached=True,
            original_cost=entry.get("cost"),
            raw=json.loads(raw_json) if raw_json is not None else None,
            id=entry.get("id"),
        )

    # -- the layer --------------------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if not self._enabled(request):
            return await self.inner.chat(request)
        started = self.clock.now()
        key = self.key(request)
        entry = await self._lookup(key)
        if entry is not None:
            return self._hit(entry, key, started, shared=False)
        while True:
            flight, leader = self._join(key)
            if not leader:
                await self._follow(flight, request)
                if flight.entry is not None:
                    return self._hit(flight.entry, key, started, shared=True)
                if flight.rerun or flight.error is None:
                    continue
                raise flight.error
            # A call that just ended may have stored the answer after our first look.
            entry = await self._lookup_as_leader(key, flight)
            if entry is not None:
                self._land(key, flight, entry=entry)
                return self._hit(entry, key, started, shared=False)
            owner, entry = await self._fleet_turn(key, flight, request)
            if entry is not None:
                return self._hit(entry, key, started, shared=True)
            with self._lock:
                self.stats.misses += 1
            try:
                try:
                    response = await self.inner.chat(request)
                except BaseException as error:
                    self._land(key, flight, error=error, rerun=_callers_own(error))
                    raise
                try:
                    entry = response_to_dict(response)
                    await self._save(key, entry)
                finally:
                    self._land(key, flight, entry=entry)
            finally:
                self._fleet_done(key, owner)
            return response

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        if not self._enabled(request):
            return self.inner.stream(request)
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        started = self.clock.now()
        key = self.key(request)
        entry = await self._lookup(key)
        if entry is not None:
            async for chunk in self._replay(entry, key, started, shared=False):
                yield chunk
            return
        while True:
            flight, leader = self._join(key)
            if not leader:
                await self._follow(flight, request)
                if flight.entry is not None:
                    async for chunk in self._replay(flight.entry, key, started, shared=True):
                        yield chunk
                    return
                if flight.rerun or flight.error is None:
                    continue
                raise flight.error
            entry = await self._lookup_as_leader(key, flight)
            if entry is not None:
                self._land(key, flight, entry=entry)
                async for chunk in self._replay(entry, key, started, shared=False):
                    yield chunk
                return
            owner, entry = await self._fleet_turn(key, flight, request)
            if entry is not None:
                async for chunk in self._replay(entry, key, started, shared=True):
                    yield chunk
                return
            with self._lock:
                self.stats.misses += 1
            try:
                # Closed at once if our reader leaves, so waiters hear of it without delay.
                async with aclosing(self._lead_stream(request, key, flight)) as chunks:
                    async for chunk in chunks:
                        yield chunk
            finally:
                self._fleet_done(key, owner)
            return

    async def _lead_stream(
        self, request: ChatRequest, key: str, flight: _Flight
    ) -> AsyncGenerator[ChatChunk, None]:
        """Pass the upstream stream through, recording it; store it only if it ends whole."""
        recorded: list[ChatChunk] = []
        delivered = False
        iterator = aiter(self.inner.stream(request))
        try:
            async for chunk in iterator:
                if chunk.is_final:
                    entry = entry_from_stream(recorded, chunk)
                    if entry is not None:
                        await self._save(key, entry)
                    # Waiters replay it (or, if it could not be kept, make their own call).
                    self._land(key, flight, entry=entry)
                    yield chunk
                    return
                recorded.append(chunk)
                delivered = delivered or chunk.has_content
                yield chunk
        except BaseException as error:
            # Before any content, the waiters would fail the same way, unless the failure
            # was this call's own; after it, the answer is still to be had: they call.
            self._land(key, flight, error=error, rerun=delivered or _callers_own(error))
            raise
        finally:
            self._land(key, flight, rerun=True)  # ended without a final chunk: not kept
            await aclose_stream(iterator)
