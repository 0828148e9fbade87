"""redis-py clients from a store URL: one server, a Redis Cluster or a Sentinel-watched master.

`sync_client` serves the shared state (`RedisState`), `async_client` the response cache
(`RedisCacheStore`). Both fail fast: every socket operation is bounded by `timeout_s`
and nothing is retried inside redis-py, so an outage reaches the caller (who falls back)
within about one timeout. URLs are read by `url.parse_redis_url`; redis-py is imported
only here, and only when a client is made (the `redis` extra).

    >>> client = sync_client("redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/mymaster/0", timeout_s=0.25)
    >>> cache = async_client("redis+cluster://10.0.0.7:6379,10.0.0.8:6379", timeout_s=1.0)
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from .url import RedisURL, parse_redis_url

__all__ = ["async_client", "is_topology_url", "sync_client"]


def is_topology_url(url: str) -> bool:
    """Whether `url` names a Cluster or a Sentinel set (`redis+cluster://`, `redis+sentinel://`,
    `rediss+...`) rather than one server.

    >>> is_topology_url("redis+cluster://a:7000,b:7000"), is_topology_url("redis://a:6379/0")
    (True, False)
    """
    return "+" in url.partition("://")[0]


def sync_client(url: str, *, timeout_s: float, setting: str = "state") -> Any:
    """A synchronous redis-py client for `url`: `redis.Redis` for one server or a Sentinel
    master (found again through the sentinels after a failover), or a `RedisCluster`.

    >>> sync_client("redis://localhost:6379/0", timeout_s=0.25)
    """
    redis = _module("redis", setting)
    retry, backoff = _module("redis.retry", setting), _module("redis.backoff", setting)

    def no_retry() -> Any:
        return retry.Retry(backoff.NoBackoff(), 0)

    timeouts: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if not is_topology_url(url):
        return redis.Redis.from_url(
            url, retry=no_retry(), retry_on_timeout=False, health_check_interval=0, **timeouts
        )
    where = parse_redis_url(url, setting=setting)
    options = {**_typed_options(where, setting), **timeouts}
    if where.kind == "cluster":
        cluster = _module("redis.cluster", setting)

        def connect() -> Any:
            nodes = [cluster.ClusterNode(host, port) for host, port in where.nodes]
            return cluster.RedisCluster(startup_nodes=nodes, retry=no_retry(), **options)

        return _LazyCluster(connect)
    sentinel = _module("redis.sentinel", setting).Sentinel(
        list(where.nodes),
        sentinel_kwargs={**_sentinel_auth(where, options), **timeouts, "retry": no_retry()},
    )
    return sentinel.master_for(
        where.service, retry=no_retry(), retry_on_timeout=False, health_check_interval=0, **options
    )


def async_client(url: str, *, timeout_s: float, setting: str = "cache") -> Any:
    """An asyncio redis-py client for `url` (one per event loop: redis-py's asyncio clients
    belong to the loop they first ran on).

    >>> async_client("redis+sentinel://sentinel:26379/mymaster", timeout_s=1.0)
    """
    aioredis = _module("redis.asyncio", setting)
    retry, backoff = _module("redis.asyncio.retry", setting), _module("redis.backoff", setting)

    def no_retry() -> Any:
        return retry.Retry(backoff.NoBackoff(), 0)

    timeouts: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if not is_topology_url(url):
        return aioredis.Redis.from_url(
            url, retry=no_retry(), retry_on_timeout=False, health_check_interval=0, **timeouts
        )
    where = parse_redis_url(url, setting=setting)
    options = {**_typed_options(where, setting), **timeouts}
    if where.kind == "cluster":
        cluster = _module("redis.asyncio.cluster", setting)
        nodes = [cluster.ClusterNode(host, port) for host, port in where.nodes]
        # The asyncio cluster asks for the slot map on first use, not here.
        return cluster.RedisCluster(startup_nodes=nodes, retry=no_retry(), **options)
    sentinel = _module("redis.asyncio.sentinel", setting).Sentinel(
        list(where.nodes),
        sentinel_kwargs={**_sentinel_auth(where, options), **timeouts, "retry": no_retry()},
    )
    return sentinel.master_for(
        where.service, retry=no_retry(), retry_on_timeout=False, health_check_interval=0, **options
    )


def _module(name: str, setting: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise ConfigurationError(
            f"{setting}='redis://...' needs the redis package: "
            "pip install 'llmrouter_integrations[redis]'"
        ) from error


def _typed_options(where: RedisURL, setting: str) -> dict[str, Any]:
    """The data nodes' connection settings: credentials, TLS, db, and the query options
    typed the way redis-py types them in its own URLs."""
    parsers = _module("redis.connection", setting).URL_QUERY_ARGUMENT_PARSERS
    options: dict[str, Any] = {}
    for name, text in where.options.items():
        parse = parsers.get(name)
        try:
            options[name] = parse(text) if parse is not None else text
        except (TypeError, ValueError):
            raise ConfigurationError(f"{setting}=: {name}={text!r} is not valid") from None
    if where.username is not None:
        options["username"] = where.username
    if where.password is not None:
        options["password"] = where.password
    if where.tls:
        options["ssl"] = True
    if where.kind == "sentinel":
        options["db"] = where.db
    return options


def _sentinel_auth(where: RedisURL, options: dict[str, Any]) -> dict[str, Any]:
    # The sentinels have their own credentials (`sentinel_password=`), if any: a sentinel
    # without `requirepass` refuses an AUTH, so the data nodes' password is not reused.
    # TLS settings (`ssl_ca_certs=`...) are shared: one private CA covers the whole set.
    auth: dict[str, Any] = {k: v for k, v in options.items() if k.startswith("ssl")}
    if where.sentinel_username is not None:
        auth["username"] = where.sentinel_username
    if where.sentinel_password is not None:
        auth["password"] = where.sentinel_password
    return auth


class _LazyCluster:
    """A `RedisCluster` made on first use: its constructor already asks a node for the slot
    map, and a router must be constructible (and fall back) while the store is down.
    A failed attempt is tried again on the next use."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "RedisCluster(lazy)"

    def register_script(self, script: str) -> Any:
        script_class = importlib.import_module("redis.commands.core").Script
        # Bytes: redis-py then hashes them without asking the (unconnected) client to encode.
        return script_class(self, script.encode())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle/introspection probes must not connect
            raise AttributeError(name)
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
                client = self._client
        return getattr(client, name)
