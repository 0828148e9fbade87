"""Redis Cluster and Sentinel, for real: their URLs, every key of a script in one slot,
the cache and single-flight through a Router, 4 processes on a cluster, a node lost and
back, and a Sentinel failover.

The servers are real redis-server processes on loopback ports (tests/_redis.py; the
session's cluster and sentinel come from conftest.py). The budget, rate-window, circuit
and lock operations also run on both through test_state_stores.py and
test_state_router.py (their `redis-cluster` and `redis-sentinel` cases).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _processes import Workers, results, worst_case
from _redis import (
    OPENSSL,
    SERVER,
    SKIP_REASON,
    RedisClusterServers,
    RedisServer,
    SentinelSet,
    make_certificate,
    wait_until,
)

from llmrouter_integrations import (
    Budget,
    BudgetExceededError,
    ConfigurationError,
    Deployment,
    ManualClock,
    RetryPolicy,
    Router,
    StateUnavailableError,
)
from llmrouter_integrations.routing.health import BreakerPolicy
from llmrouter_integrations.state import RedisCacheStore, parse_store_url
from llmrouter_integrations.state.shared import Account, StoreUnavailable
from llmrouter_integrations.state.shared_redis import RedisState
from llmrouter_integrations.state.url import parse_redis_url, redact_url
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

KEY = "sk-test-state-0123456789abcdef"
PROMPT = "Explain shared budgets in one line."
SECRET = "pw-SECRET-7f3a"
NO_RETRY = RetryPolicy(max_attempts=1)

needs_redis = pytest.mark.skipif(SERVER is None, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(usage={"output": 60}))


def deployment(fake: FakeProviderServer, model: str = "gpt-4o-mini", **kw: Any) -> Deployment:
    return Deployment("openai", model, api_key=KEY, base_url=fake.openai_base_url, **kw)


def flush_db(server: RedisServer, db: int) -> None:
    import redis

    with redis.Redis(port=server.port, db=db) as client:
        client.flushdb()


# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "nodes", "service", "db"),
    [
        ("redis+cluster://10.0.0.1:7000,10.0.0.2", "cluster", [("10.0.0.1", 7000), ("10.0.0.2", 6379)], "", 0),
        ("rediss+cluster://[::1]:7000/0", "cluster", [("::1", 7000)], "", 0),
        ("redis+sentinel://s1,s2:26380/mymaster", "sentinel", [("s1", 26379), ("s2", 26380)], "mymaster", 0),
        ("rediss+sentinel://s1:26379/cache/3", "sentinel", [("s1", 26379)], "cache", 3),
    ],
)  # fmt: skip
def test_cluster_and_sentinel_urls(
    url: str, kind: str, nodes: list[tuple[str, int]], service: str, db: int
) -> None:
    assert parse_store_url(url, setting="state").backend == "redis"
    where = parse_redis_url(url)
    assert (where.kind, list(where.nodes), where.service, where.db) == (kind, nodes, service, db)
    assert where.tls == url.startswith("rediss")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"redis+cluster://:{SECRET}@h:7000/1", "only database 0"),
        (f"redis+sentinel://:{SECRET}@s1:26379", "names the service"),
        (f"redis+sentinel://:{SECRET}@s1:port/m", "must be a number"),
        (f"redis+sentinel://s1/m/0?sentinel_password={SECRET}&db=x", "must be a number"),
    ],
)
def test_bad_topology_urls_are_clear_and_keep_the_password(url: str, why: str) -> None:
    for setting in ("state", "cache"):
        with pytest.raises(ConfigurationError, match=why) as caught:
            parse_store_url(url, setting=setting)
        assert SECRET not in str(caught.value) and f"{setting}=" in str(caught.value)


def test_passwords_stay_out_of_reprs() -> None:
    url = f"redis+sentinel://admin:{SECRET}@s1:26379/m/0?sentinel_password={SECRET}"
    where = parse_redis_url(url)
    assert (where.password, where.sentinel_password, where.username) == (SECRET, SECRET, "admin")
    for text in (redact_url(url), repr(where), repr(parse_store_url(url, setting="state"))):
        assert SECRET not in text
    # Nothing connects until used, so these are made even with no server there.
    state = RedisState(f"redis+cluster://:{SECRET}@127.0.0.1:1")
    for text in (repr(state), repr(RedisCacheStore(url)), repr(state._client)):
        assert SECRET not in text


def test_a_bare_redis_client_is_refused_with_the_spelling_that_works(
    fake: FakeProviderServer,
) -> None:
    import redis
    import redis.asyncio

    with pytest.raises(ConfigurationError, match=r"state=RedisState\(client\)"):
        Router(deployments=[deployment(fake)], state=redis.Redis(port=1))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"cache=RedisCacheStore\(client\)"):
        Router(deployments=[deployment(fake)], cache=redis.asyncio.Redis(port=1))  # type: ignore[arg-type]


@needs_redis
async def test_unreachable_cluster_and_sentinel_fail_fast_with_the_typed_error(
    fake: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    from _redis import free_port

    caplog.set_level(logging.WARNING, logger="llmrouter_integrations")
    for url in (
        f"redis+cluster://:{SECRET}@127.0.0.1:{free_port()},127.0.0.1:{free_port()}",
        f"redis+sentinel://:{SECRET}@127.0.0.1:{free_port()}/mymaster/0",
    ):
        # Built while the store is down (a pod starting before Redis): no error until used.
        async with Router(
            deployments=[deployment(fake)],
            budgets=[Budget(1, period="day")],
            state=url,
            cache=url,
            retry=NO_RETRY,
        ) as router:
            started = time.monotonic()
            with pytest.raises(StateUnavailableError) as caught:
                await router.achat(PROMPT, max_tokens=20)
            assert time.monotonic() - started < 1.0
            for text in (str(caught.value), repr(caught.value), caplog.text):
                assert SECRET not in text
    assert fake.request_count() == 0


# -- ready clients, cache and single-flight ---------------------------------------------------


async def test_ready_cluster_clients_work_as_stores(
    fake: FakeProviderServer, redis_cluster: RedisClusterServers
) -> None:
    import redis.asyncio.cluster
    import redis.cluster

    redis_cluster.flush()
    port = redis_cluster.nodes[1].port
    sync = redis.cluster.RedisCluster(host="127.0.0.1", port=port, socket_timeout=1)
    aio = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        async with Router(
            deployments=[deployment(fake)],
            budgets=[Budget(1, period="day", name="daily")],
            state=RedisState(sync, prefix="ready"),
            cache=RedisCacheStore(aio),
        ) as router:
            first = await router.achat(PROMPT, max_tokens=20)
            again = await router.achat(PROMPT, max_tokens=20)
            assert not first.cached and again.cached and again.text == first.text
            (status,) = router.budgets.status()
            assert status.spent_usd == pytest.approx(float(first.cost or 0))
        assert await aio.ping() and sync.ping()  # the caller's clients are left open
    finally:
        sync.close()
        await aio.aclose()
    assert fake.request_count() == 1


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
async def test_cache_and_single_flight_through_routers(
    fake: FakeProviderServer, request: pytest.FixtureRequest, topology: str
) -> None:
    if topology == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flush()
        url = cluster.url
    else:
        watched: SentinelSet = request.getfixturevalue("redis_sentinel")
        url = watched.url(db=5)
        flush_db(watched.master, 5)
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.3, usage={"output": 60}))
    one, other = (
        Router(deployments=[deployment(fake)], state=url, cache=url, retry=NO_RETRY)
        for _ in range(2)
    )
    async with one, other:
        # Four identical requests at once, from two routers (two processes' views).
        answers = await asyncio.gather(
            *(r.achat(PROMPT, max_tokens=20) for r in (one, other, one, other))
        )
        assert fake.request_count() == 1  # one upstream call: the others waited for it
        assert len({a.text for a in answers}) == 1
        assert sorted(a.cached for a in answers) == [False, True, True, True]
        later = await other.achat(PROMPT, max_tokens=20)  # from the store's cache
        assert later.cached and later.text == answers[0].text
    assert fake.request_count() == 1


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
async def test_tls_to_every_node(fake: FakeProviderServer, tmp_path: Path, topology: str) -> None:
    if SERVER is None or OPENSSL is None:
        pytest.skip(f"{SKIP_REASON}; and openssl for a certificate")
    cert = make_certificate(tmp_path)
    if topology == "cluster":  # nodes, cluster bus and clients on TLS only
        servers: RedisClusterServers | SentinelSet = RedisClusterServers.start(tmp_path, tls=cert)
        url = servers.url
    else:  # master, replica, sentinel and the replication between them on TLS only
        servers = SentinelSet.start(tmp_path, tls=cert)
        url = servers.url(db=0)
    assert url.startswith("rediss+") and "ssl_ca_certs=" in url
    try:
        async with Router(
            deployments=[deployment(fake)],
            budgets=[Budget(1, period="day", name="daily")],
            state=url,
            cache=url,
            retry=NO_RETRY,
        ) as router:
            first = await router.achat(PROMPT, max_tokens=20)
            assert (await router.achat(PROMPT, max_tokens=20)).cached
            (status,) = router.budgets.status()
            assert status.spent_usd == pytest.approx(float(first.cost or 0))
        # Without the CA the certificate is not trusted: the store is unavailable, not used.
        untrusted = url.split("?")[0]
        async with Router(
            deployments=[deployment(fake)], budgets=[Budget(1)], state=untrusted, retry=NO_RETRY
        ) as router:
            with pytest.raises(StateUnavailableError):
                await router.achat("another question", max_tokens=20)
    finally:
        servers.stop()
    assert fake.request_count() == 1


# -- every key of every script in one slot ----------------------------------------------------


class Monitor:
    """Every command a redis-server runs, as MONITOR reports it (scripts' commands too)."""

    def __init__(self, server: RedisServer) -> None:
        self.commands: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(server,), daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def _watch(self, server: RedisServer) -> None:
        with server.client().monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                if "MONITOR-STOP" in command["command"]:
                    return
                self.commands.append(command)

    def stop(self, server: RedisServer) -> list[dict[str, Any]]:
        server.client().get("MONITOR-STOP")
        self._thread.join(5)
        return self.commands


async def test_every_key_a_script_touches_is_declared_and_shares_the_tag(
    fake: FakeProviderServer, redis_server: RedisServer
) -> None:
    # On a cluster a script may only touch keys passed in KEYS, all in one slot. The
    # cluster would not notice an undeclared key in the same slot, so MONITOR checks it.
    state_url = redis_server.url.rsplit("/", 1)[0] + "/9"
    cache_url = redis_server.url.rsplit("/", 1)[0] + "/10"
    for db in (9, 10):
        flush_db(redis_server, db)
    monitor = Monitor(redis_server)
    fake.set_behavior("gpt-4o", ModelBehavior(permanent_error=500))
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.2, usage={"output": 60}))
    clock = ManualClock(wall_start=time.time())
    limit = worst_case() * 3
    async with Router(
        deployments=[
            deployment(fake, "gpt-4o", rpm=100, tpm=100_000, max_concurrency=4),
            deployment(fake, "gpt-4o-mini", rpm=100, tpm=100_000, max_concurrency=4),
        ],
        strategy="priority",
        budgets=[
            Budget(limit, period="day", name="daily"),
            Budget(limit, scope="user", name="peruser"),
        ],
        breaker=BreakerPolicy(failure_threshold=1, cooldown_s=10),
        state=state_url,
        cache=cache_url,
        retry=NO_RETRY,
        clock=clock,
    ) as router:
        # Falls back from the failing deployment (its circuit opens), two at once (a lock).
        await asyncio.gather(*(router.achat(PROMPT, max_tokens=60, user="u1") for _ in range(2)))
        clock.advance(11)  # the circuit half-opens: one probe, which fails again
        await router.achat("another question", max_tokens=60, user="u1")
        with pytest.raises(BudgetExceededError):
            for n in range(5):
                await router.achat(f"question {n}", max_tokens=60, user="u1")
        router.budgets.status()
    # Every protocol operation once more, directly: none may be missed above.
    store = RedisState(state_url, prefix="direct")
    now, accounts = time.time(), [Account("a", limit=10), Account("b", limit=10)]
    store.reserve("h", accounts, 5, now, 60)
    store.settle("h", accounts, 4, now)
    store.reserve("h2", accounts, 5, now, 60)
    store.release("h2", accounts, now)
    store.read(accounts, now)
    store.acquire_rate("d", "p", rpm=5, tpm=50, concurrency=2, tokens=10, now=now, lease_s=60)
    store.release_rate("d", "p", -5, now)
    store.pause_rate("d", now + 1)
    store.open_circuit("d", now + 10)
    store.admit_circuit("d", now + 11, 5)
    store.close_circuit("d")
    store.acquire_lock("k", "me", now, 10)
    store.lock_held("k", now)
    store.release_lock("k", "me")
    store.close()
    commands = monitor.stop(redis_server)

    declared: set[str] = set()
    scripts = touched = 0
    for command in commands:
        words = command["command"].split(" ")
        name = words[0].upper()
        if command["db"] == 10 and name in ("GET", "SET", "DEL"):
            assert words[1].startswith("llmrouter:cache:")  # the cache: single keys
            continue
        if command["db"] != 9 or name in ("HELLO", "SCRIPT", "SELECT", "CLIENT", "PING"):
            continue
        if name in ("EVALSHA", "EVAL"):
            count = int(words[2])
            declared = set(words[3 : 3 + count])
            scripts += 1
        elif command["client_type"] == "lua":
            assert words[1] in declared, f"{command['command']!r} touches an undeclared key"
            touched += 1
        else:  # a plain command from the store: one key
            declared = set()
            assert words[1].startswith(("{llmrouter}:", "{direct}:")), command["command"]
        tag = "{direct}:" if any(k.startswith("{direct}") for k in declared) else "{llmrouter}:"
        assert all(key.startswith(tag) for key in declared), declared
    assert scripts >= 10 and touched >= 50  # the checks above really ran


# -- a cluster under load and under faults ----------------------------------------------------


def test_four_processes_on_a_cluster_never_overshoot(
    fake: FakeProviderServer, redis_cluster: RedisClusterServers, workers: Workers
) -> None:
    redis_cluster.flush()
    limit = worst_case() * 50  # room for about 50 worst cases, of 400 calls
    spec = {"mode": "budget", "state": redis_cluster.url, "base_url": fake.openai_base_url,
            "limit": str(limit), "calls": 100}  # fmt: skip
    done = results(workers.spawn(spec, count=4))
    ok = sum(r["outcomes"].get("ok", 0) for r in done)
    refused = sum(r["outcomes"].get("refused", 0) for r in done)
    spent = sum(Decimal(r["cost"]) for r in done)
    assert ok + refused == 400, done
    assert spent <= limit and ok >= 50  # $0 over, and the budget was used
    assert fake.request_count("gpt-4o-mini") == ok  # refused calls sent nothing
    with Router(
        deployments=[deployment(fake)],
        budgets=[Budget(limit, period="day", name="daily")],
        state=redis_cluster.url,
    ) as reader:
        (status,) = reader.budgets.status()
    assert Decimal(str(status.spent_usd)) == pytest.approx(spent)
    assert status.reserved_usd == 0


@needs_redis
async def test_the_cluster_node_holding_the_state_lost_and_back(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    cluster = RedisClusterServers.start(tmp_path)  # its own: this test stops a node
    try:
        holder = cluster.node_for("{llmrouter}")
        clock = ManualClock(wall_start=time.time())
        limit = worst_case() * 10
        async with Router(
            deployments=[deployment(fake)],
            budgets=[Budget(limit, period="day", name="daily")],
            state=cluster.url,
            retry=NO_RETRY,
            clock=clock,
        ) as router:
            await router.achat(PROMPT, max_tokens=60)
            holder.pause()  # frozen: connections stay open, nothing answers
            try:
                started = time.monotonic()
                with pytest.raises(StateUnavailableError):
                    await router.achat(PROMPT, max_tokens=60)
                assert time.monotonic() - started < 1.5  # one 0.25 s timeout, not a hang
            finally:
                holder.resume()
            clock.advance(2.5)  # past the guard's pause
            holder.stop()
            for _ in range(3):  # the store is down: budgeted calls fail fast, send nothing
                started = time.monotonic()
                with pytest.raises(StateUnavailableError):
                    await router.achat(PROMPT, max_tokens=60)
                assert time.monotonic() - started < 1.5
            assert fake.request_count() == 1
            holder.restart()  # the node comes back with its slots (its nodes.conf)
            for node in cluster.nodes:
                wait_until(
                    lambda n=node: "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO"),
                    "the cluster to recover",
                )  # fmt: skip
            clock.advance(2.5)  # past the guard's pause: the next call tries the store again
            recovered = False
            # redis-py refreshes a cluster's slot map at most once a second: a real-time
            # interval of the client library, so a few tries may be needed on a busy machine.
            for _ in range(20):
                try:
                    await router.achat(PROMPT, max_tokens=60)
                    recovered = True
                    break
                except StateUnavailableError:
                    clock.advance(2.5)
                    await asyncio.sleep(0.1)
            assert recovered and fake.request_count() == 2
    finally:
        cluster.stop()


@needs_redis
async def test_a_cluster_master_dies_and_its_replica_takes_over(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    # Its own cluster, with a replica per master: the master holding the state is killed
    # and the cluster promotes its replica by itself (node timeout 1 s).
    cluster = RedisClusterServers.start(tmp_path, replicas=True)
    try:
        holder = cluster.node_for("{llmrouter}")
        replica = cluster.replica_of(holder)
        clock = ManualClock(wall_start=time.time())
        limit = worst_case() * 10
        async with Router(
            deployments=[deployment(fake)],
            budgets=[Budget(limit, period="day", name="daily")],
            state=cluster.url,
            retry=NO_RETRY,
            clock=clock,
        ) as router:
            for _ in range(2):
                await router.achat(PROMPT, max_tokens=60)
            router.budgets.status()  # this router's settles have landed on the master
            # Replication is asynchronous: a write the master acknowledged but had not sent
            # to its replica when it died is lost. Here the replica has everything first.
            assert holder.client().execute_command("WAIT", 1, 2000) == 1
            holder.stop()
            # While the cluster has no master for the slot: the typed error, fast, nothing sent.
            started = time.monotonic()
            with pytest.raises(StateUnavailableError):
                await router.achat(PROMPT, max_tokens=60)
            assert time.monotonic() - started < 1.5
            assert fake.request_count() == 2
            wait_until(
                lambda: replica.client().info("replication")["role"] == "master",
                "the cluster to promote the replica",
                30,
            )
            # Calls continue once the client has the new slot map: each try is quick and
            # either the typed error or an answer, never a bare redis exception (any other
            # exception fails the test) and never a hang.
            answered = 0
            for _ in range(20):
                clock.advance(2.5)  # past the guard's pause: the next call asks the store
                started = time.monotonic()
                try:
                    await router.achat(PROMPT, max_tokens=60)
                    answered += 1
                except StateUnavailableError:
                    await asyncio.sleep(0.1)  # redis-py re-reads the slot map at most 1/s
                assert time.monotonic() - started < 1.5
                if answered == 2:
                    break
            assert answered == 2 and fake.request_count() == 4
            # The budget is whole: the spend before the failover survived it (replicated),
            # the spend after it is added, and no hold is left behind.
            (status,) = router.budgets.status()
            assert status.spent_usd == pytest.approx(float(router.costs.total))
            assert status.reserved_usd == 0
    finally:
        cluster.stop()


async def test_a_frozen_cache_server_is_a_miss_not_a_hang(fake: FakeProviderServer) -> None:
    if SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer.start()  # its own: this test freezes it
    try:
        async with Router(deployments=[deployment(fake)], cache=server.url) as router:
            await router.achat(PROMPT, max_tokens=20)
            assert (await router.achat(PROMPT, max_tokens=20)).cached
            server.pause()
            try:
                started = time.monotonic()
                answer = await router.achat("a new question", max_tokens=20)
                # A read that times out (1 s) is a miss; the write after it times out too.
                assert answer.text and not answer.cached
                assert time.monotonic() - started < 4.0
            finally:
                server.resume()
    finally:
        server.stop()
    assert fake.request_count() == 2


def test_a_frozen_sentinel_costs_one_timeout(redis_sentinel: SentinelSet) -> None:
    redis_sentinel.sentinel.pause()  # the master is fine, but nobody can say where it is
    try:
        store = RedisState(redis_sentinel.url(db=7), timeout_s=0.25)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.read([Account("a", limit=10)], time.time())
        assert time.monotonic() - started < 1.0
    finally:
        redis_sentinel.sentinel.resume()
    assert store.read([Account("a", limit=10)], time.time())  # asks again, and is answered
    store.close()


# -- Sentinel failover ------------------------------------------------------------------------


@needs_redis
async def test_a_sentinel_failover_fails_fast_then_recovers_on_the_new_master(
    fake: FakeProviderServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Its own set: the master dies. The sentinel would take 60 s to call it down, so the
    # failover happens when the test says (SENTINEL FAILOVER), not while a loaded machine
    # is still making the calls meant for the outage (they then met the new master).
    watched = SentinelSet.start(tmp_path, down_after_ms=60_000)
    caplog.set_level(logging.WARNING, logger="llmrouter_integrations")
    try:
        url = watched.url(db=0)
        clock = ManualClock(wall_start=time.time())
        limit = worst_case() * 10
        budgets = [Budget(limit, period="day", name="daily")]

        stores: list[RedisState] = []

        def make(**kw: Any) -> Router:
            # 1 s, not 0.25 s, per store call: a busy machine must not fake an outage before
            # the real one (a dead master refuses at once, so failing stays fast).
            stores.append(RedisState(url, timeout_s=1.0))
            return Router(deployments=[deployment(fake)], budgets=budgets, state=stores[-1],
                          cache=url, retry=NO_RETRY, clock=clock, **kw)  # fmt: skip

        async with make() as closed, make(state_failure="local") as local:
            await closed.achat(PROMPT, max_tokens=60)
            await local.achat("a question of its own", max_tokens=60)
            # That call also took the local router's outage allowance (a hold in the store).
            assert local.budgets.status()[0].reserved_usd > 0
            spent_before = closed.costs.total + local.costs.total
            # Make sure the replica has both writes (and both settles, which a router sends
            # after its call) before the master dies.
            assert closed.settler is not None and closed.settler.drain()
            assert local.settler is not None and local.settler.drain()
            watched.master.client().execute_command("WAIT", 1, 2000)
            old_master = watched.master.port
            watched.master.stop()
            # During the switch: the budgeted call fails fast with the typed error, or
            # spends from the local allowance (state_failure="local").
            started = time.monotonic()
            with pytest.raises(StateUnavailableError):
                await closed.achat("during the switch", max_tokens=60)
            assert time.monotonic() - started < 1.0
            assert (await local.achat("during the switch", max_tokens=60)).text
            # Only now may the sentinel promote the replica.
            watched.failover()
            wait_until(lambda: watched.master_port() != old_master, "the failover", 30)
            wait_until(
                lambda: watched.replica.client().info("replication")["role"] == "master",
                "the replica to be promoted",
            )
            clock.advance(2.5)  # past the guard's pause
            after = await closed.achat("after the switch", max_tokens=60)
            assert after.text and not after.cached
            await local.achat("after the switch, again", max_tokens=60)  # pushes its outage spend
            assert local.settler is not None and local.settler.drain()  # its own settle too
            # The spend before the switch survived it (replicated), and the outage's is added.
            # (Settles leave the call's path: a router's status() waits for its own only.)
            local.budgets.status()
            (status,) = closed.budgets.status()
            total = closed.costs.total + local.costs.total
            assert status.spent_usd == pytest.approx(float(total))
            assert total > spent_before
            # The cache lives on the new master: what was cached before the switch, and since.
            assert (await closed.achat(PROMPT, max_tokens=60)).cached
            assert (await closed.achat("after the switch", max_tokens=60)).cached
        for store in stores:
            store.close()
        # One warning when the store went, one when it came back, from each router.
        states = [r.getMessage().split(" (")[0] + r.getMessage()[-6:] for r in caplog.records
                  if r.getMessage().startswith("shared state")]  # fmt: skip
        assert len(states) == 4 and len(set(states)) == 2, states
    finally:
        watched.stop()
