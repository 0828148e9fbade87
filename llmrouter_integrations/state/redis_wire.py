"""Lua script calls packed by hand and sent on redis-py's own pooled connection (`call_many`).

redis-py encodes every argument in Python (`Connection.pack` + `Encoder.encode`, about 4 us
each): our per-call scripts take about 30 keys and arguments, so packing cost more than the
server's run of the script. Here a command is one `bytes` join: the `EVALSHA sha` prefix is
built once, each key's RESP piece is remembered, and what repeats every call (a
deployment's keys, a budget account's limits) can be handed in already encoded
(`ScriptWire.encode`). Calls are written in one write and read on a connection taken from
the client's own pool, so redis-py's socket timeouts, reconnects, Sentinel master discovery
and error types stay as they are (no retry: the client is built without). A client whose
pool hands out something else (a `RedisCluster`, a single-connection client, client-side
caching) goes through redis-py's `Script` and pipeline instead.

Which scripts the server holds is remembered per connection pool: a script not known to be
there is loaded in the same write, before its first call; a server that forgot them all the
same (restarted, failed over, `SCRIPT FLUSH`) answers NOSCRIPT, and the refused calls are
sent again after loading their scripts (one more round trip).

    >>> wire = ScriptWire(redis.Redis.from_url("redis://localhost:6379/0"), "return ARGV[1]")
    >>> wire(keys=["{llmrouter}:k"], args=["é", 12, b"\\x00"])
    b'\\xc3\\xa9'
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Arg", "Encoded", "Item", "ScriptWire", "bulk", "call_many"]

Arg = str | bytes | int | float

# Remembered key pieces: keys repeat per deployment and budget account; a cap keeps
# keys that differ every call from growing the memo without end.
_MEMO_CAP = 4096


def bulk(value: Arg, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """One RESP bulk string, encoded as redis-py's `Encoder` would (numbers by `repr`).

    >>> bulk("héllo"), bulk(12), bulk(b"")
    (b'$6\\r\\nh\\xc3\\xa9llo\\r\\n', b'$2\\r\\n12\\r\\n', b'$0\\r\\n\\r\\n')
    """
    if type(value) is str:  # the common cases first, checked by exact type
        data = value.encode(encoding, errors)
    elif type(value) is int:
        data = b"%d" % value
    elif isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode(encoding, errors)
    elif isinstance(value, bool):  # redis-py refuses these too: True is not "1" in Lua
        raise TypeError("a bool is not a Redis argument; send '1'/'0'")
    elif isinstance(value, (int, float)):
        data = repr(value).encode()
    else:
        raise TypeError(f"{type(value).__name__} is not a Redis argument: {value!r}")
    return b"$%d\r\n%s\r\n" % (len(data), data)


@dataclass(frozen=True, slots=True)
class Encoded:
    """Several keys or arguments encoded once (they repeat every call), used in their place.

    >>> keys = wire.encode(["{llmrouter}:a", "{llmrouter}:b"])
    >>> wire(keys=[keys, "{llmrouter}:c"], args=[])
    """

    values: tuple[Arg, ...]
    data: bytes


Item = Arg | Encoded
Call = tuple["ScriptWire", Sequence[Item], Sequence[Item]]


class ScriptWire:
    """A Lua script, called like redis-py's `Script` (`wire(keys=[...], args=[...])`).

    >>> wire = ScriptWire(client, "return redis.call('GET', KEYS[1])")
    >>> wire(keys=["{llmrouter}:k"], args=[])
    """

    def __init__(self, client: Any, source: str) -> None:
        self._script = client.register_script(source)
        self._client = client
        self._pool = _plain_pool(client)
        self._encoding, self._errors = "utf-8", "strict"
        self._exceptions: Any = None
        self._get_args: tuple[str, ...] = ()
        self._loaded: set[str] = set()
        if self._pool is not None:
            encoder = self._pool.get_encoder()
            self._encoding, self._errors = encoder.encoding, encoder.encoding_errors
            self._exceptions = importlib.import_module("redis.exceptions")
            self._get_args = _get_connection_args(self._pool)
            self._loaded = _LOADED.setdefault(self._pool, set())
        # `sha` and `script` as redis-py's `Script` names them (a pipeline may send it too).
        self.script = source
        encoding = self._encoding, self._errors
        self.sha = hashlib.sha1(source.encode(*encoding)).hexdigest()
        self._head = b"$7\r\nEVALSHA\r\n" + bulk(self.sha)
        self._load = b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n" + bulk(source, *encoding)
        self._memo: dict[Any, bytes] = {}

    @property
    def fast(self) -> bool:
        """Whether calls are packed here (False: they go through redis-py's `Script`)."""
        return self._pool is not None

    def encode(self, values: Iterable[Arg]) -> Encoded:
        """`values` as RESP bulk strings in this client's encoding, to pass as one item.

        >>> wire.encode(["a", 1]).data
        b'$1\\r\\na\\r\\n$1\\r\\n1\\r\\n'
        """
        kept = tuple(values)
        encoding, errors = self._encoding, self._errors
        return Encoded(kept, b"".join([bulk(value, encoding, errors) for value in kept]))

    def pack(self, keys: Sequence[Item], args: Sequence[Item]) -> bytes:
        """The whole EVALSHA command as RESP bytes.

        >>> wire.pack(["k"], ["v"])[:4]
        b'*5\\r\\n'
        """
        memo, encoding, errors = self._memo, self._encoding, self._errors
        if len(memo) > _MEMO_CAP:
            memo.clear()
        pieces = [b"", self._head, b""]
        append = pieces.append
        count = 0
        for key in keys:
            if type(key) is Encoded:
                append(key.data)
                count += len(key.values)
                continue
            piece = memo.get(key)
            if piece is None:
                piece = memo[key] = bulk(key, encoding, errors)  # type: ignore[arg-type]
            append(piece)
            count += 1
        key_count = count
        for arg in args:
            if type(arg) is Encoded:
                append(arg.data)
                count += len(arg.values)
            else:
                append(bulk(arg, encoding, errors))  # type: ignore[arg-type]
                count += 1
        pieces[0] = b"*%d\r\n" % (3 + count)
        pieces[2] = bulk(key_count)
        return b"".join(pieces)

    def __call__(self, keys: Sequence[Item], args: Sequence[Item]) -> Any:
        return call_many([(self, keys, args)])[0]


def call_many(calls: Sequence[Call]) -> list[Any]:
    """Script calls in one write and one round trip on one pooled connection; their replies.

    The server runs them in order. An error reply (a script error) is raised once every
    reply has been read, so the connection stays in step; the calls after it did run.

    >>> call_many([(finish, keys, args), (admit, keys2, args2)])
    [[b'1200'], b'ok|...']
    """
    if not calls:
        return []
    first = calls[0][0]
    pool = first._pool
    if pool is None or any(wire._pool is not pool for wire, _, _ in calls):
        return _through_redis_py(calls)
    connection = pool.get_connection(*first._get_args)
    try:
        replies = _exchange(connection, calls, first._exceptions)
    finally:
        pool.release(connection)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _exchange(connection: Any, calls: Sequence[Call], exceptions: Any) -> list[Any]:
    """Send `calls` (their scripts loaded first where not known to be there), read replies."""
    loaded = calls[0][0]._loaded
    unknown = _unknown(calls, loaded)
    replies = _send_read(connection, unknown, calls, exceptions.ResponseError)
    refused = [i for i, reply in enumerate(replies) if isinstance(reply, exceptions.NoScriptError)]
    if refused:
        # The server forgot its scripts: none is known to be there any more.
        loaded.clear()
        again = [calls[i] for i in refused]
        for index, reply in zip(
            refused,
            _send_read(connection, _unknown(again, loaded), again, exceptions.ResponseError),
            strict=True,
        ):
            replies[index] = reply
    return replies


def _unknown(calls: Sequence[Call], loaded: set[str]) -> list[ScriptWire]:
    return list({wire.sha: wire for wire, _, _ in calls if wire.sha not in loaded}.values())


def _send_read(
    connection: Any, loads: list[ScriptWire], calls: Sequence[Call], error: type[Exception]
) -> list[Any]:
    """One write: SCRIPT LOAD for `loads`, then `calls`; the calls' replies, errors in place."""
    packed = [wire._load for wire in loads]
    packed += [wire.pack(keys, args) for wire, keys, args in calls]
    connection.send_packed_command([b"".join(packed)])
    replies: list[Any] = []
    for _ in range(len(loads) + len(calls)):
        try:
            replies.append(connection.read_response())
        except error as refused:  # one script's error: the replies after it still come
            replies.append(refused)
    for wire, loaded in zip(loads, replies, strict=False):
        if isinstance(loaded, Exception):
            raise loaded
        wire._loaded.add(wire.sha)
    return replies[len(loads) :]


def _through_redis_py(calls: Sequence[Call]) -> list[Any]:
    """The calls through redis-py's own `Script` (one) or pipeline (several: a Cluster
    pipeline routes each by its keys' slot); NOSCRIPT loads and sends again, as above."""
    flat = [(wire, _flat(keys), _flat(args)) for wire, keys, args in calls]
    if len(flat) == 1:
        wire, keys, args = flat[0]
        return [wire._script(keys=keys, args=args)]  # redis-py's Script loads on NOSCRIPT
    exceptions = importlib.import_module("redis.exceptions")
    client = calls[0][0]._client
    replies = _pipeline(client, flat)
    refused = [i for i, reply in enumerate(replies) if isinstance(reply, exceptions.NoScriptError)]
    if refused:
        for wire in {flat[i][0].sha: flat[i][0] for i in refused}.values():
            client.script_load(wire.script)
        for index, reply in zip(
            refused, _pipeline(client, [flat[i] for i in refused]), strict=True
        ):
            replies[index] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _pipeline(client: Any, calls: list[tuple[ScriptWire, list[Arg], list[Arg]]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for wire, keys, args in calls:
        pipe.evalsha(wire.sha, len(keys), *keys, *args)
    return list(pipe.execute(raise_on_error=False))


def _flat(items: Sequence[Item]) -> list[Arg]:
    flat: list[Arg] = []
    for item in items:
        if type(item) is Encoded:
            flat += item.values
        else:
            flat.append(item)  # type: ignore[arg-type]
    return flat


# Per connection pool (one server, or one Sentinel service): the shas of the scripts it
# is known to hold. Gone with the pool.
_LOADED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _plain_pool(client: Any) -> Any:
    """The client's connection pool when its connections can take a packed command as is."""
    try:
        redis = importlib.import_module("redis")
    except ImportError:  # pragma: no cover - a client exists, so redis-py does
        return None
    if not isinstance(client, redis.Redis) or client.connection is not None:
        return None  # a cluster routes by slot; a single-connection client has its own lock
    pool = client.connection_pool
    if getattr(pool, "cache", None) is not None:
        return None  # client-side caching wraps connections in its own proxy
    return pool


def _get_connection_args(pool: Any) -> tuple[str, ...]:
    # redis-py < 5.3 requires the command name; later versions warn when given one.
    parameter = inspect.signature(pool.get_connection).parameters.get("command_name")
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        return ("EVALSHA",)
    return ()
