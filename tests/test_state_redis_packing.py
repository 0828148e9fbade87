"""What each call sends to Redis is encoded once per deployment and account set and kept
(state/shared_redis_pack.py `CallScripts`): odd names land under their own keys, and a
kept encoding is never used for a deployment, an account set or a limit it was not made for.

Against a real redis-server: deployment names and account keys with spaces, unicode, '|',
',' and CRLF count, hold and settle under exactly their own keys; changing the account set
(or an account's limit) of a deployment between calls is seen at once; more account sets
than are kept still each land in their own account.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from _redis import RedisServer

from llmrouter_integrations.state import shared_redis_pack
from llmrouter_integrations.state.shared import (
    Account,
    CallDone,
    CallPlan,
    Headroom,
    HoldAsk,
    RateAsk,
    RateDone,
)
from llmrouter_integrations.state.shared_redis import RedisState

redis = pytest.importorskip("redis")

ODD_NAMES = ["dé ploy|ment, 🙂", "a\r\nb", "x|y,z", " ", "{llmrouter}:rate:x"]
ODD_ACCOUNTS = ["daily|user|é ü|1796601600", "a,b|c\r\n", "🙂 | ,", "plain"]


def _admit(state: RedisState, name: str, permit: str, hold: HoldAsk | None, now: float) -> Any:
    rate = RateAsk(name, permit, 2, 10_000, None, 10, 300.0)
    return state.admit_call(CallPlan(name, 60.0, rate, hold), now)


def test_odd_names_count_hold_and_settle_under_their_own_keys(redis_server: RedisServer) -> None:
    url = redis_server.fresh(7)
    state = RedisState(url, timeout_s=5.0)
    now = time.time()
    accounts = {
        name: (Account(ODD_ACCOUNTS[i % 4] + name, limit=10**9, alerts=(500,)),)
        for i, name in enumerate(ODD_NAMES)
    }
    for round_ in range(2):  # the second round goes through the kept encodings
        for name in ODD_NAMES:
            hold = HoldAsk(f"h{round_}-{name}", accounts[name], 1_000, 300.0)
            verdict = _admit(state, name, f"p{round_}-{name}", hold, now)
            assert verdict.refusal is None and verdict.rate_wait == 0.0
            assert verdict.circuit is not None and verdict.circuit.state == "closed"
            said = Headroom(requests_limit=100, requests_left=90 - round_, requests_reset_s=5.0)
            done = RateDone(name, f"p{round_}-{name}", -2, said)
            settled = state.finish_call((hold.hold_id, accounts[name], 300), done, now)
            assert settled is not None and settled.spent == [300 * (round_ + 1)]
            assert settled.crossed == ([(0, 0)] if round_ == 1 else [])
    client = redis.Redis.from_url(url)
    for name in ODD_NAMES:
        # rpm=2 per deployment: each name's own window is full, no other's.
        assert _admit(state, name, f"p2-{name}", None, now).rate_wait > 0
        assert state.read(accounts[name], now)[0].spent == 600
        assert state.read(accounts[name], now)[0].reserved == 0
        spends, tokens = state._rate_keys(name)[:2]
        assert client.zcard(spends) == 2
        assert sorted(client.hvals(tokens)) == [b"8", b"8"]  # 10 tokens, 2 fewer each
        view = state._view_keys(name)[0]
        assert client.hget(view, "r_limit") == b"100"
        assert client.exists(state._account_keys(accounts[name])[0])
    client.close()
    state.close()


def test_a_deployment_s_account_set_or_limit_changing_between_calls_is_seen(
    redis_server: RedisServer,
) -> None:
    state = RedisState(redis_server.fresh(8), timeout_s=5.0)
    now = time.time()
    small = (Account("team|a", limit=1_000),)
    other = (Account("team|a", limit=1_000), Account("team|b", limit=10_000))
    raised = (Account("team|a", limit=2_000),)

    def hold(hold_id: str, accounts: tuple[Account, ...], amount: int) -> Any:
        return _admit(state, "dep", hold_id, HoldAsk(hold_id, accounts, amount, 300.0), now)

    assert hold("h1", small, 600).refusal is None
    refused = hold("h2", small, 600).refusal
    assert refused is not None and refused.reserved == 600
    # Another account set on the same deployment: the hold lands on both accounts.
    assert hold("h3", other[1:], 600).refusal is None
    refused = hold("h4", other, 600).refusal
    assert refused is not None and refused.index == 0  # team|a is still full
    # The budget raised (same account key, a new limit): the new limit holds at once.
    assert hold("h5", raised, 600).refusal is None
    assert [s.reserved for s in state.read(other, now)] == [1_200, 600]
    done = [CallDone((h, accts, 100), None, now) for h, accts in [("h1", small), ("h5", raised)]]
    assert [s.spent if s else None for s in state.finish_calls(done)] == [[100], [200]]
    state.close()


def test_more_account_sets_than_are_kept_each_land_in_their_own(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_redis_pack, "_KEPT", 2)
    state = RedisState(redis_server.fresh(9), timeout_s=5.0)
    now = time.time()
    users = [(Account(f"per-user|{user}", limit=10**6),) for user in ODD_ACCOUNTS]
    for round_ in range(3):
        for i, accounts in enumerate(users):
            hold_id = f"h{round_}-{i}"
            plan = CallPlan(f"dep{i % 3}", 60.0, None, HoldAsk(hold_id, accounts, 50, 300.0))
            assert state.admit_call(plan, now).refusal is None
            settled = state.finish_call((hold_id, accounts, i + 1), None, now)
            assert settled is not None and settled.spent == [(i + 1) * (round_ + 1)]
    assert len(state._calls._accounts) <= 2
    assert [state.read(accounts, now)[0].spent for accounts in users] == [3, 6, 9, 12]
    state.close()


def test_threads_packing_past_the_kept_number_at_once_never_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The caller's thread and the settler's pack at the same time: making room for a new
    # account set must not fail either of them (both once dropped the same oldest entry:
    # KeyError out of a call). A tiny switch interval makes the threads interleave.
    import sys
    import threading

    monkeypatch.setattr(shared_redis_pack, "_KEPT", 4)
    state = RedisState(redis.Redis.from_url("redis://127.0.0.1:1/0"))  # never connects
    failures: list[BaseException] = []

    def pack(thread: int) -> None:
        try:
            for i in range(5_000):
                accounts = (Account(f"user-{thread}-{i}", limit=10),)
                state._calls._finish_packed(state, (f"h{i}", accounts, 1), None, 0.0)
        except BaseException as error:
            failures.append(error)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=pack, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert failures == []
