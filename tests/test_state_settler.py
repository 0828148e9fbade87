"""The trip after a call (settle, rate release) leaves the caller's path: what lags, what is exact.

A real store (SQLite file, real redis-server) behind a wrapper that holds the trips after
calls until the test opens a gate: the slow or frozen store a settle may meet. The caller
must not wait for it; its hold stays reserved meanwhile; `status()`, `close()`, the next
call after an outage and the adapters' event flushing must each see the settle land.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from _processes import KEY, PROMPT, exit_code, fork, worst_case
from _redis import RedisServer
from langchain_core.callbacks import BaseCallbackHandler
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index_instrumentation import get_dispatcher
from pydantic import Field

from llmrouter_integrations import Budget, Deployment, ManualClock, Router, RouterEvent
from llmrouter_integrations.langchain import ChatLLMRouter
from llmrouter_integrations.llama_index import LLMRouter, RouterBudgetAlertEvent
from llmrouter_integrations.state.shared import (
    CallDone,
    RateDone,
    Settled,
    SharedState,
    StoreUnavailable,
)
from llmrouter_integrations.state.shared_redis import RedisState
from llmrouter_integrations.state.shared_sqlite import SQLiteState
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior


class HeldSettles:
    """A real store whose trips after calls wait until `gate` is set (a slow store)."""

    def __init__(self, inner: SharedState) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()  # a trip after a call reached the store
        self.batches: list[int] = []  # calls per trip after calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def finish_call(self, hold: Any, rate: RateDone | None, now: float) -> Settled | None:
        self.entered.set()
        assert self.gate.wait(30)
        self.batches.append(1)
        return self.inner.finish_call(hold, rate, now)

    def finish_calls(self, calls: Sequence[CallDone]) -> list[Settled | None]:
        self.entered.set()
        assert self.gate.wait(30)
        self.batches.append(len(calls))
        return self.inner.finish_calls(calls)

    def finish_and_admit(self, calls: Sequence[CallDone], plan: Any, now: float) -> Any:
        self.batches.append(len(calls))  # riding on a call's own trip: not held
        return self.inner.finish_and_admit(calls, plan, now)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(usage={"output": 60}))


@pytest.fixture(params=["sqlite", "redis"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Any]:  # () -> a new connection to one store
    opened: list[SharedState] = []
    prefix = f"t{uuid.uuid4().hex[:8]}"

    def make() -> SharedState:
        store: SharedState
        if request.param == "sqlite":
            store = SQLiteState(str(tmp_path / "state.db"), timeout_s=2.0)
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            store = RedisState(server.url, prefix=prefix, timeout_s=2.0)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def deployment(fake: FakeProviderServer, **limits: int) -> Deployment:
    return Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url, **limits)


def budget(**fields: Any) -> Budget:
    return Budget(worst_case() * 50, name="daily", period="day", **fields)


def spend(make_store: Any, router: Router) -> tuple[float, float]:
    """(spent, reserved) as another process reads them from the store right now."""
    with Router(deployments=router.deployments, budgets=[budget()], state=make_store()) as reader:
        (status,) = reader.budgets.status()
    return status.spent_usd, status.reserved_usd


def test_the_caller_returns_before_its_settle_and_status_waits_for_it(
    fake: FakeProviderServer, make_store: Any
) -> None:
    store = HeldSettles(make_store())
    router = Router(deployments=[deployment(fake)], budgets=[budget()], state=store)  # type: ignore[arg-type]
    with router:
        answer = router.complete(PROMPT, max_tokens=60)  # returns with the store's gate shut
        assert answer.cost and store.entered.wait(10) and not store.gate.is_set()
        # Until the settle lands, the call's worst case stays held for every process.
        assert spend(make_store, router) == (0.0, pytest.approx(float(worst_case())))
        threading.Timer(0.2, store.gate.set).start()  # a slow store
        (status,) = router.budgets.status()  # this process reads its own spend
        assert status.spent_usd == pytest.approx(answer.cost)
        assert status.reserved_usd == 0


def test_close_lands_every_queued_settle_in_few_trips(
    fake: FakeProviderServer, make_store: Any
) -> None:
    store = HeldSettles(make_store())
    router = Router(
        deployments=[deployment(fake, rpm=10_000, max_concurrency=50)],
        budgets=[budget()],
        state=store,  # type: ignore[arg-type]
    )

    async def calls() -> list[float]:
        answers = await asyncio.gather(*(router.achat(PROMPT, max_tokens=60) for _ in range(8)))
        return [a.cost or 0.0 for a in answers]

    costs = asyncio.run(calls())  # every caller is back; the store's gate is still shut
    assert not store.gate.is_set() and store.entered.wait(10)
    threading.Timer(0.2, store.gate.set).start()
    router.close()
    assert spend(make_store, router) == (pytest.approx(sum(costs)), 0.0)
    # Queued while the first was held: the rest went together, in one trip.
    assert sum(store.batches) == 8 and len(store.batches) <= 2, store.batches


def test_a_settle_that_meets_a_locked_sqlite_file_is_pushed_later_exactly_once(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    path = tmp_path / "state.db"
    store = HeldSettles(SQLiteState(str(path), timeout_s=0.2))
    clock = ManualClock(wall_start=time.time())
    router = Router(
        deployments=[deployment(fake)],
        budgets=[budget()],
        state=store,  # type: ignore[arg-type]
        clock=clock,
    )
    with router:
        first = router.complete(PROMPT, max_tokens=60)
        assert store.entered.wait(10)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the file
        store.gate.set()
        assert router.settler is not None and router.settler.drain()  # failed, kept to push
        blocker.execute("ROLLBACK")
        blocker.close()
        clock.advance(3.0)  # past the guard's retry time: the next call tries the store
        second = router.complete(PROMPT, max_tokens=60)
        (status,) = router.budgets.status()
    assert status.spent_usd == pytest.approx((first.cost or 0) + (second.cost or 0))
    assert status.reserved_usd == 0


def test_a_full_budget_waits_for_this_process_s_own_settles_before_refusing(
    fake: FakeProviderServer, make_store: Any
) -> None:
    # Room for two worst cases: the first call's settle is still on its way when the
    # second asks, so its hold is still the worst case; the real costs leave room.
    fake.set_behavior("gpt-4o-mini", ModelBehavior(usage={"output": 5}))
    store = HeldSettles(make_store())
    limit = worst_case() * Decimal("1.5")
    router = Router(
        deployments=[deployment(fake)],
        budgets=[Budget(limit, name="daily", period="day")],
        state=store,  # type: ignore[arg-type]
    )
    with router:
        first = router.complete(PROMPT, max_tokens=60)
        assert store.entered.wait(10)
        threading.Timer(0.2, store.gate.set).start()
        second = router.complete(PROMPT, max_tokens=60)  # not refused on our own lag
        (status,) = router.budgets.status()
    assert status.spent_usd == pytest.approx((first.cost or 0) + (second.cost or 0))


# -- budget alerts from a settle that lands after the call returned ---------------------------


def alerting_router(
    fake: FakeProviderServer, store: HeldSettles, seen: list[RouterEvent]
) -> Router:
    return Router(
        deployments=[deployment(fake)],
        budgets=[budget(alert_thresholds=(0.001,))],  # the first call's cost crosses it
        state=store,  # type: ignore[arg-type]
        on_event=seen.append,
    )


class RunEvents(BaseCallbackHandler):
    def __init__(self) -> None:
        self.started: list[UUID] = []
        self.custom: list[tuple[str, UUID]] = []

    def on_chat_model_start(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self.started.append(run_id)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.custom.append((name, run_id))


@pytest.mark.parametrize("call", ["invoke", "ainvoke", "stream", "astream"])
async def test_a_late_settle_s_alert_reaches_the_langchain_run_of_its_call(
    fake: FakeProviderServer, tmp_path: Path, call: str
) -> None:
    store = HeldSettles(SQLiteState(str(tmp_path / "state.db")))
    seen: list[RouterEvent] = []
    router = alerting_router(fake, store, seen)
    model = ChatLLMRouter(router=router, max_tokens=60)
    handler = RunEvents()
    config: Any = {"callbacks": [handler]}
    threading.Timer(0.3, store.gate.set).start()  # the settle lands well after the reply
    if call == "invoke":
        await asyncio.to_thread(model.invoke, PROMPT, config=config)
    elif call == "ainvoke":
        await model.ainvoke(PROMPT, config=config)
    elif call == "stream":
        assert await asyncio.to_thread(lambda: list(model.stream(PROMPT, config=config)))
    else:
        assert [chunk async for chunk in model.astream(PROMPT, config=config)]
    assert store.gate.is_set()
    alerts = [run for name, run in handler.custom if name == "llmrouter.budget_alert"]
    assert alerts == handler.started  # one alert, on this call's own run
    assert [e.type for e in seen if e.type == "budget_alert"] == ["budget_alert"]
    await router.aclose()


class Recorder(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "SettlerRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.mark.parametrize("call", ["chat", "achat", "stream_chat", "astream_chat"])
async def test_a_late_settle_s_alert_reaches_the_llamaindex_call(
    fake: FakeProviderServer, tmp_path: Path, call: str
) -> None:
    store = HeldSettles(SQLiteState(str(tmp_path / "state.db")))
    router = alerting_router(fake, store, [])
    llm = LLMRouter(router=router, max_tokens=60)
    recorder = Recorder()
    root = get_dispatcher()
    root.add_event_handler(recorder)
    messages = [ChatMessage(role="user", content=PROMPT)]
    threading.Timer(0.3, store.gate.set).start()
    try:
        if call == "chat":
            await asyncio.to_thread(llm.chat, messages)
        elif call == "achat":
            await llm.achat(messages)
        elif call == "stream_chat":
            assert await asyncio.to_thread(lambda: list(llm.stream_chat(messages)))
        else:
            assert [chunk async for chunk in await llm.astream_chat(messages)]
        assert store.gate.is_set()
        alerts = [e for e in recorder.events if isinstance(e, RouterBudgetAlertEvent)]
        assert len(alerts) == 1 and alerts[0].data["threshold"] == 0.001
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not recorder]
        await router.aclose()


def settles_once(settler: Any, account: Any) -> bool:
    """In a forked child: one settle of 5 submitted, and it lands."""
    landed: list[object] = []
    settler.submit(CallDone(("child", (account,), 5), None, time.time()), landed.append)
    return settler.drain(10) and isinstance(landed[0], Settled)


def test_a_forked_child_sends_its_own_settles_not_the_parent_s(tmp_path: Path) -> None:
    from llmrouter_integrations.state.guard import StateGuard
    from llmrouter_integrations.state.settler import Settler
    from llmrouter_integrations.state.shared import Account

    store = SQLiteState(str(tmp_path / "state.db"), timeout_s=2.0)
    account = Account("daily", limit=10**12)
    settler = Settler(StateGuard(store))
    settler.submit(CallDone(("parent", (account,), 7), None, time.time()))
    assert settler.drain()  # the parent's worker thread is running (it stops when idle)
    # The child: no worker thread came with it; its settle must still land.
    assert exit_code(fork(lambda: settles_once(settler, account))) == 0
    assert store.read([account], time.time())[0].spent == 12
    store.close()


def test_a_child_forked_while_the_worker_held_its_lock_does_not_hang(tmp_path: Path) -> None:
    # gunicorn --preload forks whenever it likes: a lock the parent's worker thread held at
    # that instant would stay held in the child, which has no such thread to release it.
    from llmrouter_integrations.state.guard import StateGuard
    from llmrouter_integrations.state.settler import Settler
    from llmrouter_integrations.state.shared import Account

    store = SQLiteState(str(tmp_path / "state.db"), timeout_s=2.0)
    account = Account("daily", limit=10**12)
    settler = Settler(StateGuard(store))
    with settler._lock:  # as the parent's worker holds it, mid-tick
        pid = fork(lambda: settles_once(settler, account))
    assert exit_code(pid) == 0  # fails if the child hung on the lock its parent held
    assert store.read([account], time.time())[0].spent == 5
    store.close()


class Counted:
    """A real store that records which operation each round trip was, and can fail one."""

    def __init__(self, inner: SharedState) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.fail_next_ride = False

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if name.startswith("_") or not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name == "finish_and_admit" and self.fail_next_ride:
                self.fail_next_ride = False
                raise StoreUnavailable("the store did not answer")
            return value(*args, **kwargs)

        return counted


@pytest.fixture
def no_solo_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued trips wait for a ride (or for someone waiting on them), never time out alone."""
    from llmrouter_integrations.state import settler

    monkeypatch.setattr(settler, "_RIDE_S", 60.0)


def test_a_call_s_trip_after_rides_on_the_next_call_s_trip_before(
    fake: FakeProviderServer, make_store: Any, no_solo_trips: None
) -> None:
    store = Counted(make_store())
    router = Router(
        deployments=[deployment(fake, rpm=10_000)],
        budgets=[budget()],
        state=store,  # type: ignore[arg-type]
    )
    with router:
        costs = [router.complete(PROMPT, max_tokens=60).cost or 0 for _ in range(3)]
        # One round trip per call: each call's settle went with the next call's admission.
        assert store.calls == ["admit_call", "finish_and_admit", "finish_and_admit"]
        (status,) = router.budgets.status()  # the last one is sent now, not after a timeout
        assert store.calls[3:] == ["finish_call", "read"]
    assert status.spent_usd == pytest.approx(sum(costs)) and status.reserved_usd == 0


def test_a_ride_that_fails_keeps_the_settles_it_carried_and_pushes_them_once(
    fake: FakeProviderServer, tmp_path: Path, no_solo_trips: None
) -> None:
    from llmrouter_integrations import StateUnavailableError

    store = Counted(SQLiteState(str(tmp_path / "state.db")))
    clock = ManualClock(wall_start=time.time())
    router = Router(
        deployments=[deployment(fake)],
        budgets=[budget()],
        state=store,  # type: ignore[arg-type]
        clock=clock,
    )
    with router:
        first = router.complete(PROMPT, max_tokens=60)
        store.fail_next_ride = True  # the next call's trip carries first's settle, and fails
        with pytest.raises(StateUnavailableError):
            router.complete(PROMPT, max_tokens=60)
        clock.advance(3.0)  # past the guard's retry time
        third = router.complete(PROMPT, max_tokens=60)
        (status,) = router.budgets.status()
    assert status.spent_usd == pytest.approx((first.cost or 0) + (third.cost or 0))
    assert status.reserved_usd == 0
    assert fake.request_count() == 2


def test_on_redis_the_riding_settles_and_the_admission_are_one_write_and_one_wait(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.connection import Connection

    from llmrouter_integrations.state.shared import Account, CallPlan, HoldAsk

    store = RedisState(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}", timeout_s=2.0)
    daily = Account("daily", limit=10**9)
    now = time.time()
    for hold in ("h1", "h2"):
        assert store.admit_call(CallPlan(hold=HoldAsk(hold, (daily,), 1000, 300.0)), now).admitted
    store.finish_calls([CallDone(("h0", (daily,), 1), None, now)])  # the script is loaded
    writes: list[int] = []
    send = Connection.send_packed_command

    def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        writes.append(len(command) if isinstance(command, list) else 1)
        send(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    done = [CallDone(("h1", (daily,), 400), None, now), CallDone(("h2", (daily,), None), None, now)]
    settled, verdict = store.finish_and_admit(
        done, CallPlan(hold=HoldAsk("h3", (daily,), 1000, 300.0)), now
    )
    assert len(writes) == 1  # two settles and the admission, in one write
    assert [s.spent if s else None for s in settled] == [[401], None] and verdict.admitted
    monkeypatch.undo()
    assert store.read([daily], now)[0].reserved == 1000  # h1 and h2 gone, h3 held
    store.close()


def test_the_settler_s_thread_wakes_only_for_a_settle_no_call_carried(
    fake: FakeProviderServer, make_store: Any
) -> None:
    """A thread woken per call preempts that caller, and one ticking every few ms takes
    the GIL from every thread in the process: back-to-back calls carry each other's
    settles and wake nobody, and a settle left alone still lands without a waiter."""
    router = Router(deployments=[deployment(fake)], budgets=[budget()], state=make_store())
    with router:
        first = router.complete(PROMPT, max_tokens=60).cost or 0.0
        settler = router.settler
        assert settler is not None
        deadline = time.monotonic() + 5
        while settler.busy and time.monotonic() < deadline:  # lands alone, after its ride
            threading.Event().wait(0.005)
        assert not settler.busy
        woke, started = settler.wakeups, time.monotonic()

        async def back_to_back() -> float:
            return sum([(await router.achat(PROMPT, max_tokens=60)).cost or 0.0 for _ in range(40)])

        more = asyncio.run(back_to_back())
        threading.Event().wait(0.1)
        elapsed = time.monotonic() - started
        # Looking at the queue every 0.1 s, plus the last call's settle; ticking every
        # 2 ms (as before) would be 50 times that.
        assert settler.wakeups - woke <= 3 + 2 * elapsed / 0.1, (settler.wakeups - woke, elapsed)
        # The last settle's timer died with asyncio.run's loop: the worker found it anyway.
        deadline = time.monotonic() + 5
        while spend(make_store, router)[1] and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        assert spend(make_store, router) == (pytest.approx(first + more), 0.0)
