"""One trip to the shared store before a call: circuit admission, rate count and budget hold.

With `Router(state=...)`, the outermost per-deployment layer that has shared state (the
budget layer when budgets exist, else the circuit breaker) calls `StoreTrip.admit` once
per call to a deployment. It builds the call's `CallPlan` (the circuit to admit through,
the send to count if the deployment has `rpm`/`tpm`/`max_concurrency` and this process's
own windows have room, the budget hold if one is asked) and asks the store for all of it
in one atomic operation (`SharedState.admit_call`). The answers the layers below need
travel on the request's `CallAdmission` (`Prefetched`): the breaker and the rate limiter
use them for the first attempt instead of asking the store again; a retry or a wait asks
again as before.

    >>> trip = StoreTrip(guard, limits, probe_lease_s=60.0)
    >>> verdict = trip.admit(request, "openai/gpt-4o-mini")          # circuit + rate
    >>> refusal = trip.hold_via(request, "openai/gpt-4o-mini")(ask)  # + the budget hold
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..state.guard import StateGuard
from ..state.ids import new_id
from ..state.settler import Settler
from ..state.shared import (
    CallPlan,
    CallVerdict,
    HoldAsk,
    RateAsk,
    Refusal,
    Settled,
    StoreUnavailable,
)
from ..types import ChatRequest
from .call import Prefetched
from .limits import RateLimits
from .queue import request_tokens

__all__ = ["StoreTrip"]


class StoreTrip:
    """Asks the shared store once per call for what the deployment's layers will need.

    `probe_lease_s` is the circuits' probe lease (None: circuits are not shared).

    >>> StoreTrip(StateGuard(SQLiteState("state.db")), limits, probe_lease_s=60.0)
    """

    def __init__(
        self,
        guard: StateGuard,
        limits: RateLimits,
        *,
        probe_lease_s: float | None,
        settler: Settler | None = None,
    ) -> None:
        self.guard = guard
        self.limits = limits
        self.probe_lease_s = probe_lease_s
        # Its queued trips after earlier calls ride on this trip (one round trip for both).
        self.settler = settler

    def _rate_ask(self, request: ChatRequest, deployment: str) -> RateAsk | None:
        tokens = request_tokens(request)
        limits = self.limits.shared_limits(deployment, tokens)
        if limits is None:
            return None
        rpm, tpm, concurrency = limits
        lease = self.guard.store.lease_s
        return RateAsk(deployment, new_id(), rpm, tpm, concurrency, tokens, lease)

    def admit(
        self, request: ChatRequest, deployment: str, hold: HoldAsk | None = None
    ) -> CallVerdict:
        """The store's verdict for one call (raises `StoreUnavailable`); the circuit and
        rate answers are left on `request.admission` for the layers below."""
        admission = request.admission
        # Without an admission to carry it, a counted send would reach no limiter.
        rate = self._rate_ask(request, deployment) if admission is not None else None
        circuit = deployment if self.probe_lease_s is not None else None
        plan = CallPlan(circuit, self.probe_lease_s or 0.0, rate, hold)
        verdict = self._ask(plan)
        if admission is not None:
            counted = None
            if rate is not None and verdict.rate_wait is not None:
                counted = (rate.permit_id, rate.tokens, verdict.rate_wait)
            admission.prefetched = Prefetched(deployment, verdict.circuit, counted)
        return verdict

    def _ask(self, plan: CallPlan) -> CallVerdict:
        guard, settler = self.guard, self.settler
        wall = guard.clock.wall()
        riding = settler.take() if settler is not None else []
        if not riding:
            return guard.run(guard.store.admit_call, plan, wall)
        assert settler is not None
        results: Sequence[Settled | StoreUnavailable | None]
        try:
            calls = [queued.call for queued in riding]
            results, verdict = guard.run(guard.store.finish_and_admit, calls, plan, wall)
        except StoreUnavailable as error:
            results = [error] * len(riding)
            raise
        except BaseException:
            results = [StoreUnavailable("the trip carrying it failed")] * len(riding)
            raise
        finally:
            settler.land(riding, results)
        return verdict

    def hold_via(
        self, request: ChatRequest, deployment: str
    ) -> Callable[[HoldAsk], Refusal | None]:
        """For `BudgetManager.reserve(via=...)`: take the hold in this call's one trip.

        A circuit that refuses takes nothing, the hold included; the hold is then taken
        on its own (a second trip, on this rare path) so the breaker below decides as it
        would have: a local early probe may still let the call through.
        """

        def via(ask: HoldAsk) -> Refusal | None:
            verdict = self.admit(request, deployment, ask)
            if verdict.circuit is None or verdict.circuit.state in ("closed", "probe"):
                return verdict.refusal
            store = self.guard.store
            wall = self.guard.clock.wall()
            return self.guard.run(
                store.reserve, ask.hold_id, ask.accounts, ask.amount, wall, ask.lease_s
            )

        return via
