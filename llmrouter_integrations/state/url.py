"""The one parser of store URLs: `cache=`, `ledger=` (and `state=`) read them the same way.

`"memory"` (this process), `"sqlite:///relative/path.db"` or `"sqlite:////absolute/path.db"`
(SQLAlchemy's spelling: three slashes, then the path), `"redis://host:6379/0"`,
`"rediss://..."` (TLS) or `"unix:///path/redis.sock"`. A password in a URL never reaches
an error message.

    >>> parse_store_url("sqlite:////var/lib/app/cache.db", setting="cache").path
    '/var/lib/app/cache.db'
    >>> parse_store_url("redis://localhost:6379/0", setting="cache").backend
    'redis'
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigurationError

__all__ = ["BACKENDS", "StoreURL", "parse_store_url", "redact_url"]

Backend = Literal["memory", "sqlite", "redis"]
BACKENDS: tuple[Backend, ...] = ("memory", "sqlite", "redis")
_EXAMPLES = {
    "memory": "'memory'",
    "sqlite": "'sqlite:///path.db'",
    "redis": "'redis://host:6379/0'",
}
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, slots=True)
class StoreURL:
    """Which backend a URL names, and where: `path` for SQLite, `url` (as given) for Redis."""

    backend: Backend
    path: str = ""
    url: str = ""

    def __repr__(self) -> str:
        where = self.path or redact_url(self.url)
        return f"StoreURL({self.backend!r}, {where!r})" if where else f"StoreURL({self.backend!r})"


def redact_url(url: str) -> str:
    """`url` with any user:password part hidden.

    >>> redact_url("redis://:hunter2@cache:6379/0")
    'redis://***@cache:6379/0'
    """
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def parse_store_url(
    spec: str, *, setting: str, backends: Collection[Backend] = BACKENDS
) -> StoreURL:
    """The backend and location `spec` names; a `ConfigurationError` naming `setting` (e.g.
    "cache") and the accepted spellings when it names none, or one of the other `backends`.

    >>> parse_store_url("sqlite:///costs.db", setting="ledger")
    StoreURL('sqlite', 'costs.db')
    """
    if spec in ("memory", "memory://"):
        where = StoreURL("memory")
    elif spec.startswith("sqlite://"):
        path = spec[len("sqlite://") :]
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ConfigurationError(f"{setting}='sqlite:///...' needs a file path")
        where = StoreURL("sqlite", path=path)
    elif spec.startswith(_REDIS_SCHEMES):
        where = StoreURL("redis", url=spec)
    else:
        raise ConfigurationError(
            f"{setting}= takes {_choices(backends)} or a store object; got {redact_url(spec)!r}"
        )
    if where.backend not in backends:
        raise ConfigurationError(
            f"{setting}= has no {where.backend} store yet; use {_choices(backends)}"
        )
    return where


def _choices(backends: Collection[Backend]) -> str:
    return ", ".join(_EXAMPLES[b] for b in BACKENDS if b in backends)
