"""The outage allowance of `state_failure="local"`: held in the store, never leaked, bounded.

Driven through `SharedBudgets` on a memory or SQLite store with explicit wall-clock
times; `Flaky` stands in for a store that stops answering. The real multi-process
outage runs are in test_state_processes.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.costs.budget_allowance import OutageAllowance
from llmrouter_integrations.costs.budget_shared import SharedBudgets
from llmrouter_integrations.state.guard import StateGuard
from llmrouter_integrations.state.shared import Account, StoreUnavailable, from_nano
from llmrouter_integrations.state.shared_memory import MemoryState
from llmrouter_integrations.state.shared_sqlite import SQLiteState

T0 = 1_800_000_000.0
LIMIT = 1_000_000_000  # $1 in nano-USD
ACCOUNT = Account("daily|global|||1", limit=LIMIT)


class Flaky:
    """A store that raises `StoreUnavailable` on every call while `down` is set."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.down = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable("down")
            return attribute(*args, **kwargs)

        return call


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made = MemoryState() if request.param == "memory" else SQLiteState(str(tmp_path / "s.db"))
    yield made
    made.close()


def budgets(store: Any, clock: ManualClock, *, renew_s: float = 1.0) -> SharedBudgets:
    shared = SharedBudgets(StateGuard(store, clock=clock, retry_s=0.0), lease_s=300)
    shared.allowance = OutageAllowance(shared.guard, lease_s=300, renew_s=renew_s)
    return shared


def test_threads_renewing_at_once_leave_exactly_one_allowance_held(store: Any) -> None:
    clock = ManualClock(wall_start=T0)
    shared = budgets(store, clock, renew_s=0.0)  # renew on every call: the most contention
    cost = Decimal("0.001")
    errors: list[BaseException] = []

    def spend() -> None:
        try:
            for _ in range(40):
                hold = shared.reserve((ACCOUNT,), cost, clock.wall())
                assert isinstance(hold, str)
                shared.settle(hold, (ACCOUNT,), cost, clock.wall())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=spend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (state,) = store.read([ACCOUNT], clock.wall())
    assert from_nano(state.spent) == cost * 240
    assert shared.allowance is not None
    # Every renewal gave the old allowance back: what is held is this one allowance.
    assert state.reserved == shared.allowance.held(ACCOUNT.key) > 0
    shared.close(clock.wall())
    assert store.read([ACCOUNT], clock.wall())[0].reserved == 0


def test_two_processes_during_an_outage_spend_at_most_what_was_free(store: Any) -> None:
    clock = ManualClock(wall_start=T0)
    flaky = Flaky(store)
    one, other = budgets(flaky, clock), budgets(flaky, clock)
    cost = Decimal("0.01")
    for view in (one, other, one, other):  # both reach the store; allowances renewed
        hold = view.reserve((ACCOUNT,), cost, clock.wall())
        assert isinstance(hold, str)
        view.settle(hold, (ACCOUNT,), cost, clock.wall())
        clock.advance(1.0)
    (before,) = store.read([ACCOUNT], clock.wall())
    assert before.reserved > 0  # no call in flight: what is held is the two allowances
    flaky.down = True
    spent = 0
    for view in (one, other):
        assert view.allowance is not None
        for _ in range(1000):  # $10 of $0.01 calls against a $1 budget
            if view.allowance.take((ACCOUNT,), 10_000_000, clock.wall()) is not None:
                break
            view.allowance.settle((ACCOUNT,), 10_000_000, 10_000_000)
            spent += 10_000_000
    # Each spent its own allowance, no more: together at most what they held, which no
    # other process could have spent meanwhile.
    assert 0 < spent <= before.reserved and before.spent + before.reserved <= LIMIT
    flaky.down = False
    for view in (one, other):  # back: the spend reaches the store with the next call
        hold = view.reserve((ACCOUNT,), Decimal(0), clock.wall())
        assert isinstance(hold, str)
    (after,) = store.read([ACCOUNT], clock.wall())
    assert after.spent == before.spent + spent


def test_a_long_outage_lapses_the_allowance_and_a_newcomer_has_none(store: Any) -> None:
    clock = ManualClock(wall_start=T0)
    flaky = Flaky(store)
    shared = budgets(flaky, clock)
    hold = shared.reserve((ACCOUNT,), Decimal("0.01"), clock.wall())
    assert isinstance(hold, str) and shared.allowance is not None
    flaky.down = True
    assert shared.allowance.take((ACCOUNT,), 1_000, clock.wall()) is None
    clock.advance(150.0)  # half the lease since it was taken: the store may drop it soon
    lapsed = shared.allowance.take((ACCOUNT,), 1_000, clock.wall())
    assert lapsed is not None and "lapsed" in lapsed.reason and lapsed.left is None
    newcomer = budgets(flaky, clock)
    assert newcomer.allowance is not None
    missing = newcomer.allowance.take((ACCOUNT,), 1, clock.wall())
    assert missing is not None and "no outage allowance" in missing.reason
