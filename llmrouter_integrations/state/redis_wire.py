"""One Lua script call packed by hand: `ScriptWire` sends EVALSHA through redis-py's own connection.

redis-py encodes every argument in Python (`Connection.pack` + `Encoder.encode`, about 4 us
each): our per-call scripts take about 30 keys and arguments, so packing cost more than the
server's run of the script. Here the command is one `bytes` join: the `EVALSHA sha` prefix
is built once and each key's RESP piece is remembered. It is sent and read on a connection
taken from the client's own pool, so redis-py's socket timeouts, reconnects, Sentinel master
discovery and error types stay as they are (no retry: the client is built without). A
client whose pool hands out something else (a `RedisCluster`, a single-connection client,
client-side caching) goes through redis-py's `Script` unchanged.

    >>> wire = ScriptWire(redis.Redis.from_url("redis://localhost:6379/0"), "return ARGV[1]")
    >>> wire(keys=["{llmrouter}:k"], args=["é", 12, b"\\x00"])
    b'\\xc3\\xa9'
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Sequence
from typing import Any

__all__ = ["Arg", "ScriptWire", "bulk", "call_pipelined"]

Arg = str | bytes | int | float

# Remembered key pieces: keys repeat per deployment and budget account; a cap keeps
# per-call keys (a hold's settled marker) from growing the memo without end.
_MEMO_CAP = 4096


def bulk(value: Arg, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """One RESP bulk string, encoded as redis-py's `Encoder` would (numbers by `repr`).

    >>> bulk("héllo"), bulk(12), bulk(b"")
    (b'$6\\r\\nh\\xc3\\xa9llo\\r\\n', b'$2\\r\\n12\\r\\n', b'$0\\r\\n\\r\\n')
    """
    if isinstance(value, bytes):
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


class ScriptWire:
    """A Lua script, called like redis-py's `Script` (`wire(keys=[...], args=[...])`).

    >>> wire = ScriptWire(client, "return redis.call('GET', KEYS[1])")
    >>> wire(keys=["{llmrouter}:k"], args=[])
    """

    def __init__(self, client: Any, source: str) -> None:
        self._script = client.register_script(source)
        self._pool = _plain_pool(client)
        self._encoding, self._errors = "utf-8", "strict"
        self._exceptions: Any = None
        self._get_args: tuple[str, ...] = ()
        if self._pool is not None:
            encoder = self._pool.get_encoder()
            self._encoding, self._errors = encoder.encoding, encoder.encoding_errors
            self._exceptions = importlib.import_module("redis.exceptions")
            self._get_args = _get_connection_args(self._pool)
        # `sha` and `script` as redis-py's `Script` names them (a pipeline may send it too).
        self.script = source
        encoding = self._encoding, self._errors
        self.sha = hashlib.sha1(source.encode(*encoding)).hexdigest()
        self._head = b"$7\r\nEVALSHA\r\n" + bulk(self.sha)
        self._load = b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n" + bulk(source, *encoding)
        self._memo: dict[str, bytes] = {}

    @property
    def fast(self) -> bool:
        """Whether calls are packed here (False: they go through redis-py's `Script`)."""
        return self._pool is not None

    def pack(self, keys: Sequence[str], args: Sequence[Arg]) -> bytes:
        """The whole EVALSHA command as RESP bytes.

        >>> wire.pack(["k"], ["v"])[:4]
        b'*5\\r\\n'
        """
        memo, encoding, errors = self._memo, self._encoding, self._errors
        if len(memo) > _MEMO_CAP:
            memo.clear()
        pieces = [b"*%d\r\n" % (3 + len(keys) + len(args)), self._head, bulk(len(keys))]
        for key in keys:
            piece = memo.get(key)
            if piece is None:
                piece = memo[key] = bulk(key, encoding, errors)
            pieces.append(piece)
        pieces += [bulk(arg, encoding, errors) for arg in args]
        return b"".join(pieces)

    def __call__(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        pool = self._pool
        if pool is None:
            return self._script(keys=list(keys), args=list(args))
        packed = self.pack(keys, args)
        connection = pool.get_connection(*self._get_args)
        try:
            try:
                connection.send_packed_command([packed])
                return connection.read_response()
            except self._exceptions.NoScriptError:
                # A restarted or failed-over server forgot the script: load it (on this
                # connection: a pool of one has no other), then send the call once more.
                connection.send_packed_command([self._load])
                connection.read_response()
                connection.send_packed_command([packed])
                return connection.read_response()
        finally:
            pool.release(connection)


def call_pipelined(calls: Sequence[tuple[Any, Sequence[str], Sequence[Arg]]]) -> list[Any] | None:
    """Several script calls in one write and one round trip on one pooled connection.

    Replies come back in order; an error reply (a script error, NOSCRIPT) takes its place in
    the list as redis-py's exception object, the others being read all the same so the
    connection stays in step. None when a call cannot be packed here (its script is not a
    fast `ScriptWire`, or the scripts' clients differ): the caller pipelines through redis-py.

    >>> call_pipelined([(finish, keys, args), (admit, keys2, args2)])
    [[b'1200'], b'ok|...']
    """
    if not calls:
        return []
    first = calls[0][0]
    pool = getattr(first, "_pool", None)
    if pool is None or any(getattr(wire, "_pool", None) is not pool for wire, _, _ in calls):
        return None
    packed = b"".join(wire.pack(keys, args) for wire, keys, args in calls)
    errors = first._exceptions.ResponseError
    connection = pool.get_connection(*first._get_args)
    try:
        connection.send_packed_command([packed])
        replies: list[Any] = []
        for _ in calls:
            try:
                replies.append(connection.read_response())
            except errors as error:  # one script's error: the replies after it still come
                replies.append(error)
        return replies
    finally:
        pool.release(connection)


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
