"""`ScriptWire` (state/redis_wire.py): the hand-packed EVALSHA says exactly what redis-py would.

Against a real redis-server: odd keys and arguments (unicode, empty, CRLF, RESP markers,
big and negative numbers, raw bytes) come back from Lua byte for byte; a server that forgot
its scripts loads them again; a timed-out call never leaves its late reply to be read as
the next call's; a script error leaves the connection usable; Sentinel masters take the
packed path and Cluster clients keep redis-py's.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from _redis import RedisClusterServers, RedisServer, SentinelSet

from llmrouter_integrations.state.redis_clients import sync_client
from llmrouter_integrations.state.redis_wire import ScriptWire, bulk, call_many
from llmrouter_integrations.state.shared import (
    CallPlan,
    Headroom,
    RateAsk,
    RateDone,
    StoreUnavailable,
)
from llmrouter_integrations.state.shared_redis import RedisState

redis = pytest.importorskip("redis")

# Every KEY, then every ARGV, back as they arrived.
ECHO = """
local out = {}
for _, k in ipairs(KEYS) do out[#out+1] = k end
for _, a in ipairs(ARGV) do out[#out+1] = a end
return out
"""

ODD_KEYS = [
    "{llmrouter}:plain",
    "{llmrouter}:dé ploy/ment 🙂",
    "{llmrouter}:a\r\nb",
    "{llmrouter}:",
]
ODD_ARGS: list[Any] = [
    "",
    "é🙂\u2028",
    "a\r\n$3\r\nxyz\r\n*1",  # RESP framing inside a value must stay a value
    " ",
    0,
    -1,
    2**63 + 7,
    -(2**70),
    0.1,
    1e300,
    -0.0,
    b"",
    b"\x00\xff\r\n$",
    "x" * 70_000,  # past redis-py's own buffer cutoff
]


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return repr(value).encode()


def test_odd_keys_and_arguments_reach_lua_byte_for_byte(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    wire = ScriptWire(client, ECHO)
    assert wire.fast
    reply = wire(keys=ODD_KEYS, args=ODD_ARGS)
    assert reply == [key.encode() for key in ODD_KEYS] + [_as_bytes(a) for a in ODD_ARGS]
    client.close()


def test_the_packed_command_is_what_redis_py_would_send(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    wire = ScriptWire(client, ECHO)
    connection = client.connection_pool.get_connection()
    theirs = b"".join(
        connection.pack_command("EVALSHA", wire.sha, len(ODD_KEYS), *ODD_KEYS, *ODD_ARGS)
    )
    client.connection_pool.release(connection)
    assert wire.pack(ODD_KEYS, ODD_ARGS) == theirs
    # The remembered key pieces do not change a second packing.
    assert wire.pack(ODD_KEYS, ODD_ARGS) == theirs
    # Nor do items encoded ahead, wherever they stand among plain ones.
    keys = [wire.encode(ODD_KEYS[:2]), ODD_KEYS[2], wire.encode(ODD_KEYS[3:])]
    args = [wire.encode([]), *ODD_ARGS[:3], wire.encode(ODD_ARGS[3:9]), *ODD_ARGS[9:]]
    assert wire.pack(keys, args) == theirs
    assert wire.pack([wire.encode(ODD_KEYS)], [wire.encode(ODD_ARGS)]) == theirs
    client.close()


def test_a_client_s_own_encoding_is_kept(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, encoding="latin-1", decode_responses=True)
    wire = ScriptWire(client, ECHO)
    assert wire(keys=["{llmrouter}:é"], args=["ñ"]) == ["{llmrouter}:é", "ñ"]
    raw = redis.Redis.from_url(redis_server.url)
    assert ScriptWire(raw, ECHO)(keys=[], args=["ñ".encode("latin-1")]) == [b"\xf1"]
    client.close()
    raw.close()


def test_what_is_not_a_redis_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="bool"):
        bulk(True)
    with pytest.raises(TypeError, match="NoneType"):
        bulk(None)  # type: ignore[arg-type]


def test_a_server_that_forgot_the_script_loads_it_again(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    wire = ScriptWire(client, "return ARGV[1] .. '!'")
    assert wire(keys=[], args=["a"]) == b"a!"
    client.script_flush()
    assert wire(keys=[], args=["b"]) == b"b!"
    client.close()


def test_a_script_error_is_the_server_s_message_and_the_connection_goes_on(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5, max_connections=1)
    broken = ScriptWire(client, "return redis.call('NOSUCHCOMMAND')")
    echo = ScriptWire(client, ECHO)
    with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)unknown"):
        broken(keys=[], args=[])
    assert echo(keys=[], args=["after"]) == [b"after"]  # the one connection, still in step
    client.close()


def test_a_late_reply_is_never_read_as_the_next_call_s(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.3, max_connections=1)
    wire = ScriptWire(client, ECHO)
    assert wire(keys=[], args=["warm"]) == [b"warm"]
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):
            wire(keys=[], args=["first"])
        assert time.monotonic() - started < 3
    finally:
        redis_server.resume()
    # The frozen server now answers "first" on the old socket: it must have been dropped.
    assert wire(keys=[], args=["second"]) == [b"second"]
    client.close()


def test_calls_in_one_write_come_back_in_order_and_an_error_is_raised_after_all_ran(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5, max_connections=1)
    echo = ScriptWire(client, ECHO)
    broken = ScriptWire(client, "return redis.call('NOSUCHCOMMAND')")
    setter = ScriptWire(client, "return redis.call('SET', KEYS[1], ARGV[1])")
    connection_type = client.connection_pool.connection_class
    real_send = connection_type.send_packed_command
    sent: list[int] = []

    def counting(connection: Any, command: Any, check_health: bool = True) -> None:
        sent.append(len(command))
        real_send(connection, command, check_health)

    assert call_many([(echo, ODD_KEYS, ODD_ARGS), (echo, ODD_KEYS[:1], ["after"])]) == [
        [*(k.encode() for k in ODD_KEYS), *(_as_bytes(a) for a in ODD_ARGS)],
        [ODD_KEYS[0].encode(), b"after"],
    ]
    calls: list[tuple[Any, list[str], list[Any]]] = [
        (echo, ODD_KEYS, ODD_ARGS),
        (broken, [], []),
        (setter, ["{llmrouter}:after-the-error"], ["ran"]),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection_type, "send_packed_command", counting)
        with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)unknown"):
            call_many(calls)
    assert sent == [1]  # one write for the three calls (and the scripts not loaded yet)
    assert client.get("{llmrouter}:after-the-error") == b"ran"
    assert echo(keys=[], args=["still in step"]) == [b"still in step"]
    client.close()


def test_a_script_is_loaded_in_the_same_write_as_its_first_call(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5, max_connections=1)
    client.script_flush()
    connection_type = client.connection_pool.connection_class
    real_read = connection_type.read_response
    replies: list[Any] = []

    def reading(connection: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            replies.append(real_read(connection, *args, **kwargs))
        except Exception as error:
            replies.append(error)
            raise
        return replies[-1]

    first = ScriptWire(client, "return 'first'")
    second = ScriptWire(client, "return 'second'")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection_type, "read_response", reading)
        assert call_many([(first, [], []), (second, [], []), (first, [], [])]) == [
            b"first",
            b"second",
            b"first",
        ]
        # Two loads, three calls; no NOSCRIPT refused first.
        assert replies == [first.sha.encode(), second.sha.encode(), b"first", b"second", b"first"]
        replies.clear()
        assert first(keys=[], args=[]) == b"first"
        assert replies == [b"first"]  # known to be there now: no second load
    client.close()


def test_a_flushed_server_gets_the_earlier_call_first_when_a_later_one_is_known_again(
    redis_server: RedisServer,
) -> None:
    # A settle riding on the next admission: after SCRIPT FLUSH an admission alone loads its
    # script again; the next settle + admission must still free the slot before the
    # admission asks for it (the settle's script was refused and sent after the
    # admission had run: the admission saw its own deployment full).
    from llmrouter_integrations.state.shared import CallDone

    url = redis_server.fresh(6)
    state = RedisState(url, timeout_s=5.0)
    now = time.time()

    def ask(permit: str, name: str = "dep") -> CallPlan:
        return CallPlan(rate=RateAsk(name, permit, None, None, 1, 10, 300.0))

    assert state.admit_call(ask("p0"), now).rate_wait == 0.0
    state.finish_calls([CallDone(None, RateDone("dep", "p0"), now)])
    assert state.admit_call(ask("p1"), now).rate_wait == 0.0  # the one slot, taken
    redis.Redis.from_url(url).script_flush()
    assert state.admit_call(ask("x", "other"), now).rate_wait == 0.0
    settled, verdict = state.finish_and_admit(
        [CallDone(None, RateDone("dep", "p1"), now)], ask("p2"), now
    )
    assert settled == [None]
    assert verdict.rate_wait == 0.0
    state.close()


def test_a_pipeline_the_server_forgot_the_scripts_of_loads_them_and_settles_once(
    redis_server: RedisServer,
) -> None:
    # finish_calls pipelines its settles; after SCRIPT FLUSH every call of it is refused
    # (NOSCRIPT), loaded, and sent again: each hold settled exactly once.
    from llmrouter_integrations.state.shared import Account, CallDone, HoldAsk

    url = redis_server.fresh(4)
    state = RedisState(url, timeout_s=5.0)
    account = (Account("acct", limit=10**12),)
    now = time.time()
    for i in range(3):
        plan = CallPlan(hold=HoldAsk(f"h{i}", account, 1_000, 300.0))
        assert state.admit_call(plan, now).refusal is None
    redis.Redis.from_url(url).script_flush()
    settled = state.finish_calls([CallDone((f"h{i}", account, 400), None, now) for i in range(3)])
    assert [s.spent[0] for s in settled if s is not None] == [400, 800, 1200]
    assert state.read(account, now)[0].spent == 1200
    assert state.read(account, now)[0].reserved == 0
    state.close()


def test_batched_finishes_and_finish_then_admit_are_packed_here(redis_server: RedisServer) -> None:
    # redis-py's own pipeline packs every argument in Python (~250 us a call pair here).
    from llmrouter_integrations.state.shared import Account, CallDone, HoldAsk

    url = redis_server.fresh(5)
    state = RedisState(url, timeout_s=5.0)
    account = (Account("acct", limit=10**12),)
    now = time.time()
    for i in range(3):
        state.admit_call(CallPlan(hold=HoldAsk(f"h{i}", account, 1_000, 300.0)), now)
    state.finish_calls([CallDone(("h0", account, 10), None, now)])  # scripts loaded
    connection_class = state._client.connection_pool.connection_class
    packed_by_redis_py: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        for name in ("pack_command", "pack_commands"):
            real = getattr(connection_class, name)

            def counted(self: Any, *args: Any, _real: Any = real, _name: str = name) -> Any:
                packed_by_redis_py.append(_name)
                return _real(self, *args)

            patch.setattr(connection_class, name, counted)
        state.finish_calls([CallDone((f"h{i}", account, 10), None, now) for i in (1, 2)])
        state.finish_and_admit(
            [CallDone(("h9", account, None), None, now)],
            CallPlan(hold=HoldAsk("h3", account, 1_000, 300.0)),
            now,
        )
    assert packed_by_redis_py == []
    assert state.read(account, now)[0].spent == 30
    state.close()


def test_no_calls_make_no_trip() -> None:
    assert call_many([]) == []


def test_through_redis_state_an_outage_is_store_unavailable() -> None:
    state = RedisState(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2))
    assert state._calls._admit.fast
    with pytest.raises(StoreUnavailable, match=r"^Redis state: ConnectionError$"):
        state.count_failure("deployment")


def test_sentinel_masters_take_the_packed_path(redis_sentinel: SentinelSet) -> None:
    client = sync_client(redis_sentinel.url(db=2), timeout_s=2.0)
    wire = ScriptWire(client, ECHO)
    assert wire.fast
    assert wire(keys=ODD_KEYS[:2], args=ODD_ARGS[:3]) == [
        *(key.encode() for key in ODD_KEYS[:2]),
        *(_as_bytes(a) for a in ODD_ARGS[:3]),
    ]
    client.close()


def test_cluster_clients_keep_redis_py_s_path(redis_cluster: RedisClusterServers) -> None:
    client = sync_client(redis_cluster.url, timeout_s=2.0)
    wire = ScriptWire(client, ECHO)
    assert not wire.fast
    keys = ["{llmrouter}:a", "{llmrouter}:é"]
    assert wire(keys=keys, args=["", 7]) == [b"{llmrouter}:a", "{llmrouter}:é".encode(), b"", b"7"]
    # Several calls: redis-py's cluster pipeline, encoded items spelled out again, and a
    # server that forgot the scripts loads them and answers the refused calls.
    client.script_flush()
    setter = ScriptWire(client, "return redis.call('SET', KEYS[1], ARGV[1])")
    replies = call_many(
        [
            (wire, [wire.encode(keys)], [wire.encode(["x", 1]), "y"]),
            (setter, ["{llmrouter}:set"], ["v"]),
        ]
    )
    assert replies == [[b"{llmrouter}:a", "{llmrouter}:é".encode(), b"x", b"1", b"y"], b"OK"]
    assert client.get("{llmrouter}:set") == b"v"
    client.close()


def test_a_lazy_cluster_is_not_connected_by_making_a_wire() -> None:
    client = sync_client("redis+cluster://127.0.0.1:1,127.0.0.1:2", timeout_s=0.2)
    wire = ScriptWire(client, ECHO)  # must not ask the (absent) nodes for the slot map
    assert not wire.fast
    assert client._client is None


def test_finished_calls_leave_nothing_per_call_behind(redis_server: RedisServer) -> None:
    # 60 calls under a concurrency limit, each finished with the provider's headers: no key
    # of the store grows with the number of calls (each send's number once stayed, forever).
    url = redis_server.fresh(3)
    state = RedisState(url, timeout_s=5.0)
    said = Headroom(requests_limit=1000, requests_left=900, requests_reset_s=1.0)
    for i in range(60):
        ask = RateAsk("dep", f"permit-{i}", None, None, 4, 10, 300.0)
        verdict = state.admit_call(CallPlan(circuit="dep", rate=ask), time.time())
        assert verdict.rate_wait == 0.0
        state.finish_call(None, RateDone("dep", f"permit-{i}", 0, said), time.time())
    state.close()
    client = redis.Redis.from_url(url, decode_responses=True)
    sizes: dict[str, int] = {}
    for key in client.scan_iter():
        kind = client.type(key)
        sizes[key] = (
            client.hlen(key) if kind == "hash" else client.zcard(key) if kind == "zset" else 1
        )
    assert sizes and max(sizes.values()) < 10, sizes
    client.close()
