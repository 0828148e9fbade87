"""Circuit breakers seen by every process: the fleet's verdict from the shared state store.

Consecutive failures are counted in the store, so the fleet opens a circuit after
`failure_threshold` failures in a row wherever they happened (one store trip per failed
call; a success costs a trip only when the store's count is known to be above zero). When
one process opens a circuit, or its probe closes it, the change goes to the store, and
every process asks the store before each call. So an open circuit is seen by all within
one request, and only one call in the whole fleet probes a half-open deployment. If the
store cannot answer, each process counts and decides alone.

    >>> tracker.shared = SharedCircuits(guard)        # HealthTracker asks it in begin()
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.events import RouterEvent
from ..state.guard import StateGuard
from ..state.shared import Admission, StoreUnavailable

__all__ = ["SharedCircuits"]


class SharedCircuits:
    """The store side of circuit breakers (see the module docstring).

    `probe_lease_s`: how long the fleet waits for a probe whose process died before
    letting another process probe.

    >>> SharedCircuits(StateGuard(RedisState("redis://localhost:6379/0")), probe_lease_s=60)
    """

    def __init__(self, guard: StateGuard, *, probe_lease_s: float = 60.0) -> None:
        self.guard = guard
        self.probe_lease_s = probe_lease_s
        # Deployments whose fleet-wide failure count was last seen above zero: the next
        # success here resets it (the others cost no store trip).
        self._counting: set[str] = set()

    def admit(self, name: str, asked: tuple[Admission | None] | None = None) -> Admission | None:
        """The fleet's verdict for one call to `name`, or None: decide locally. `asked`: the
        verdict already had in the call's one trip (`admission.store_trip`), used as is."""
        if asked is not None:
            admission = asked[0]
        else:
            try:
                admission = self.guard.run(
                    self.guard.store.admit_circuit,
                    name,
                    self.guard.clock.wall(),
                    self.probe_lease_s,
                )
            except StoreUnavailable:
                return None
        if admission is None:
            return None
        if admission.failures:
            self._counting.add(name)
        else:
            self._counting.discard(name)
        return admission

    def failed(self, name: str) -> int | None:
        """Count one failure of `name` fleet-wide: the fleet's count, or None (count locally)."""
        try:
            count = self.guard.run(self.guard.store.count_failure, name)
        except StoreUnavailable:
            return None
        self._counting.add(name)
        return count

    def succeeded(self, name: str) -> None:
        """A call to `name` succeeded: restart the fleet's count if it may be above zero."""
        if name not in self._counting:
            return
        self._counting.discard(name)
        try:
            self.guard.run(self.guard.store.reset_failures, name)
        except StoreUnavailable:
            self._counting.add(name)  # try again on the next success

    def publish(self, events: Iterable[RouterEvent]) -> None:
        """Tell the fleet about circuits this process opened or closed."""
        store = self.guard.store
        for event in events:
            if event.type != "circuit" or event.deployment is None:
                continue
            try:
                if event.data.get("state") == "open":
                    until = self.guard.clock.wall() + float(event.data.get("cooldown_s") or 0.0)
                    self.guard.run(store.open_circuit, event.deployment, until)
                elif event.data.get("state") == "closed":
                    self.guard.run(store.close_circuit, event.deployment)
            except StoreUnavailable:
                return
