"""The one parser of store URLs: `cache=`, `ledger=` (and `state=`) read them the same way.

`"memory"` (this process), `"sqlite:///relative/path.db"` or `"sqlite:////absolute/path.db"`
(SQLAlchemy's spelling: three slashes, then the path), `"redis://host:6379/0"`,
`"rediss://..."` (TLS) or `"unix:///path/redis.sock"`; Redis Cluster as
`"redis+cluster://host:port[,host:port...]"` and Sentinel as
`"redis+sentinel://host:26379[,host:port...]/service_name[/db]"` (`rediss+...` for TLS;
`parse_redis_url` reads those). A password in a URL never reaches an error message.
Two query options are the router's own, not the driver's: `?timeout=0.5` (seconds each store
call may take) and, for Redis, `?prefix=app1` (the keys' prefix and cluster hash tag); a
setting takes them only where its store has them (`options=`).

    >>> parse_store_url("sqlite:////var/lib/app/cache.db", setting="cache").path
    '/var/lib/app/cache.db'
    >>> parse_store_url("redis://localhost:6379/0", setting="cache").backend
    'redis'
    >>> parse_store_url("sqlite:///state.db?timeout=1", setting="state", options=("timeout",))
    StoreURL('sqlite', 'state.db', timeout_s=1.0)
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote

from .._secrets import mask_url
from ..errors import ConfigurationError

__all__ = [
    "BACKENDS",
    "ROUTER_OPTIONS",
    "RedisURL",
    "StoreURL",
    "parse_redis_url",
    "parse_store_url",
    "redact_url",
]

Backend = Literal["memory", "sqlite", "redis"]
BACKENDS: tuple[Backend, ...] = ("memory", "sqlite", "redis")
_EXAMPLES = {
    "memory": "'memory'",
    "sqlite": "'sqlite:///path.db'",
    "redis": "'redis://host:6379/0' (or redis+cluster://, redis+sentinel://)",
}
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Several seed nodes or sentinels in one URL: the spelling of the Redis-Sentinel-Url package,
# also read by LangChain's and Prefect's Redis helpers (redis-py itself has no URL for these).
_Topology = Literal["cluster", "sentinel"]
_TOPOLOGY_SCHEMES: dict[str, tuple[_Topology, bool, int]] = {
    "redis+cluster": ("cluster", False, 6379),
    "rediss+cluster": ("cluster", True, 6379),
    "redis+sentinel": ("sentinel", False, 26379),
    "rediss+sentinel": ("sentinel", True, 26379),
}
# The router's own query options (the rest of a Redis URL's query is redis-py's).
RouterOption = Literal["timeout", "prefix"]
ROUTER_OPTIONS: tuple[RouterOption, ...] = ("timeout", "prefix")
_SECRET_OPTION = re.compile(r"([?&][^=&#]*password=)[^&#]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class StoreURL:
    """Which backend a URL names, and where: `path` for SQLite, `url` (as given) for Redis."""

    backend: Backend
    path: str = ""
    url: str = ""  # without the router's own options: what the driver is given
    timeout_s: float | None = None  # `?timeout=`: None when the URL sets none
    prefix: str | None = None  # `?prefix=`

    def __repr__(self) -> str:
        where = self.path or redact_url(self.url)
        args = [repr(self.backend)] + ([repr(where)] if where else [])
        if self.timeout_s is not None:
            args.append(f"timeout_s={self.timeout_s!r}")
        if self.prefix is not None:
            args.append(f"prefix={self.prefix!r}")
        return f"StoreURL({', '.join(args)})"


def redact_url(url: str) -> str:
    """`url` with any user:password part and secret-looking query value hidden.

    >>> redact_url("redis://:hunter2@cache:6379/0")
    'redis://***@cache:6379/0'
    >>> redact_url("redis://cache:6379/0?password=hunter2")
    'redis://cache:6379/0?password=***'
    """
    # ?sentinel_password=... too; mask_url hides user:password@ and any secret-looking value
    return mask_url(_SECRET_OPTION.sub(r"\1***", url))


def parse_store_url(
    spec: str,
    *,
    setting: str,
    backends: Collection[Backend] = BACKENDS,
    options: Collection[RouterOption] = (),
) -> StoreURL:
    """The backend and location `spec` names; a `ConfigurationError` naming `setting` (e.g.
    "cache") and the accepted spellings when it names none, or one of the other `backends`.
    `options`: which of the router's own query options (`timeout`, `prefix`) the setting
    reads; SQLite takes only `timeout`, and a SQLite URL no other query. An unknown option
    is refused with the closest valid one.

    >>> parse_store_url("sqlite:///costs.db", setting="ledger")
    StoreURL('sqlite', 'costs.db')
    >>> parse_store_url("redis://h:6379/0?prefix=app1", setting="state", options=ROUTER_OPTIONS)
    StoreURL('redis', 'redis://h:6379/0', prefix='app1')
    """
    if spec in ("memory", "memory://"):
        where = StoreURL("memory")
    elif spec.startswith("sqlite://"):
        path, _, query = spec[len("sqlite://") :].partition("?")
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ConfigurationError(f"{setting}='sqlite:///...' needs a file path")
        allowed = tuple(o for o in options if o != "prefix")
        timeout, prefix, _ = _router_options(spec, query, allowed, setting, driver=tuple)
        where = StoreURL("sqlite", path=path, timeout_s=timeout, prefix=prefix)
    elif spec.startswith(_REDIS_SCHEMES) or spec.partition("://")[0] in _TOPOLOGY_SCHEMES:
        head, _, query = spec.partition("?")
        timeout, prefix, rest = _router_options(
            spec, query, options, setting, driver=_redis_options
        )
        url = f"{head}?{rest}" if rest else head
        if not spec.startswith(_REDIS_SCHEMES):
            parse_redis_url(url, setting=setting)  # a malformed node list fails here, not later
        where = StoreURL("redis", url=url, timeout_s=timeout, prefix=prefix)
    else:
        raise ConfigurationError(
            f"{setting}= takes {_choices(backends)} or a store object; got {redact_url(spec)!r}"
        )
    if where.backend not in backends:
        raise ConfigurationError(
            f"{setting}= has no {where.backend} store yet; use {_choices(backends)}"
        )
    return where


def _router_options(
    spec: str,
    query: str,
    allowed: Collection[RouterOption],
    setting: str,
    *,
    driver: Callable[[], Collection[str] | None],
) -> tuple[float | None, str | None, str]:
    """The router's own options in `query`, typed, and the rest of `query` as written (for
    the driver). `driver()`: the names the driver takes (None: any, it could not be asked),
    asked only when the query holds other options (it may import the driver)."""
    timeout: float | None = None
    prefix: str | None = None
    rest: list[str] = []
    items = query.split("&") if query else []
    theirs = [i for i in items if unquote(i.partition("=")[0]) not in allowed]
    names = driver() if theirs else ()
    for item in items:
        name, _, text = item.partition("=")
        name = unquote(name)
        if name in allowed:
            if name == "timeout":
                timeout = _timeout(unquote(text), spec, setting)
            else:
                prefix = _prefix(unquote(text), spec, setting)
            continue
        if names is None or (name in names and name not in ROUTER_OPTIONS):
            rest.append(item)
            continue
        valid = sorted(allowed) + sorted(n for n in names if n not in ROUTER_OPTIONS)
        if name in ROUTER_OPTIONS:
            why = f"{setting}= takes no {name}= option for this store"
        else:
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            why = f"unknown option {name!r} in {setting}={redact_url(spec)!r}{hint}"
        shown = ", ".join(valid[:8]) + (", ..." if len(valid) > 8 else "") or "none"
        raise ConfigurationError(f"{why} (valid: {shown})")
    return timeout, prefix, "&".join(rest)


def _timeout(text: str, spec: str, setting: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(
            f"{setting}={redact_url(spec)!r}: timeout= is seconds above 0, not {text!r}"
        )
    return value


def _prefix(text: str, spec: str, setting: str) -> str:
    # The prefix is the keys' cluster hash tag, `{prefix}`: braces would end the tag early.
    if not text or "{" in text or "}" in text:
        raise ConfigurationError(
            f"{setting}={redact_url(spec)!r}: prefix= must be non-empty, without braces"
        )
    return text


def _redis_options() -> Collection[str] | None:
    """The query options redis-py reads from a URL: its typed ones and any keyword of its
    connection classes (what `redis.from_url` passes them to), plus the sentinels' own
    credentials; None when redis-py is not installed (making the client will say so)."""
    try:
        connection = importlib.import_module("redis.connection")
    except ImportError:  # pragma: no cover - depends on the extra
        return None
    names = set(connection.URL_QUERY_ARGUMENT_PARSERS)
    names.update(("sentinel_username", "sentinel_password", "db"))
    for cls in ("AbstractConnection", "Connection", "SSLConnection", "UnixDomainSocketConnection"):
        if hasattr(connection, cls):
            names.update(inspect.signature(getattr(connection, cls).__init__).parameters)
    names.discard("self")
    return {n for n in names if not n.startswith("*") and n not in ("args", "kwargs")}


def _choices(backends: Collection[Backend]) -> str:
    return ", ".join(_EXAMPLES[b] for b in BACKENDS if b in backends)


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A Redis Cluster or Sentinel URL, read: `kind`, `tls`, the seed `nodes` (or sentinels),
    Sentinel's `service` and `db`, the data nodes' credentials, the sentinels' own
    (`?sentinel_username=&sentinel_password=`), and the other query `options` as given.

    >>> parse_redis_url("redis+sentinel://s1,s2:26380/mymaster/2").nodes
    (('s1', 26379), ('s2', 26380))
    """

    kind: _Topology
    tls: bool
    nodes: tuple[tuple[str, int], ...]
    service: str = ""
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    options: dict[str, str] = field(default_factory=dict, repr=False)


def parse_redis_url(url: str, *, setting: str = "state") -> RedisURL:
    """Read `redis+cluster://[user:pass@]host[:port][,host[:port]...][?options]` or
    `redis+sentinel://[user:pass@]host[:port][,...]/service_name[/db][?options]`
    (`rediss+...`: TLS to every node); default ports 6379 and 26379. A `ConfigurationError`
    naming `setting` (password hidden) when the URL is not one of those.

    >>> parse_redis_url("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000").kind
    'cluster'
    """
    scheme, _, rest = url.partition("://")
    if scheme not in _TOPOLOGY_SCHEMES:
        raise ConfigurationError(f"{setting}={redact_url(url)!r} is not a cluster or sentinel URL")
    kind, tls, default_port = _TOPOLOGY_SCHEMES[scheme]
    example = (
        "'redis+cluster://host:6379,host2:6379'"
        if kind == "cluster"
        else "'redis+sentinel://host:26379,host2:26379/service_name/0'"
    )

    def refuse(why: str) -> ConfigurationError:
        return ConfigurationError(f"{setting}={redact_url(url)!r}: {why}; e.g. {example}")

    rest, _, query = rest.partition("?")
    userinfo, at, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(item, default_port, refuse) for item in hosts.split(","))
    options = dict(parse_qsl(query, keep_blank_values=True))
    parts = [unquote(p) for p in path.split("/") if p]
    service, db = "", 0
    if kind == "cluster":
        if parts not in ([], ["0"]):
            raise refuse("a cluster has only database 0 and no path")
    else:
        if not parts or len(parts) > 2:
            raise refuse("a sentinel URL names the service, then optionally the db")
        service = parts[0]
        if len(parts) == 2:
            db = _integer(parts[1], refuse, "the db")
    if "db" in options:
        db = _integer(options.pop("db"), refuse, "the db")
        if kind == "cluster" and db:
            raise refuse("a cluster has only database 0")
    return RedisURL(
        kind,
        tls,
        nodes,
        service=service,
        db=db,
        username=username,
        password=password,
        sentinel_username=options.pop("sentinel_username", None),
        sentinel_password=options.pop("sentinel_password", None),
        options=options,
    )


def _node(
    item: str, default_port: int, refuse: Callable[[str], ConfigurationError]
) -> tuple[str, int]:
    host, port = item, ""
    if item.startswith("["):  # [IPv6]:port
        host, _, tail = item[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else tail
    elif item.count(":") == 1:
        host, _, port = item.partition(":")
    if not host or (item.count(":") > 1 and not item.startswith("[")):
        raise refuse(f"{item!r} is not host:port")
    return unquote(host), _integer(port, refuse, "a port") if port else default_port


def _integer(text: str, refuse: Callable[[str], ConfigurationError], what: str) -> int:
    if not text.isdigit():
        raise refuse(f"{what} must be a number, not {text!r}")
    return int(text)
