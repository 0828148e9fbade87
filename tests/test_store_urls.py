"""One parser for every store setting: cache= and ledger= read the same spellings the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrouter_integrations import ConfigurationError
from llmrouter_integrations.costs.ledger import ledger_from_url
from llmrouter_integrations.state import (
    MemoryCacheStore,
    MemoryLedgerStore,
    SQLiteCacheStore,
    SQLiteLedgerStore,
    cache_store_from_spec,
    parse_store_url,
)


@pytest.mark.parametrize(
    ("spec", "backend", "path"),
    [
        ("memory", "memory", ""),
        ("memory://", "memory", ""),
        ("sqlite:///relative/costs.db", "sqlite", "relative/costs.db"),
        ("sqlite:////abs/costs.db", "sqlite", "/abs/costs.db"),
        ("redis://localhost:6379/0", "redis", ""),
        ("rediss://cache.example:6380/1", "redis", ""),
    ],
)
def test_spellings(spec: str, backend: str, path: str) -> None:
    parsed = parse_store_url(spec, setting="cache")
    assert (parsed.backend, parsed.path) == (backend, path)
    if backend == "redis":
        assert parsed.url == spec


def test_cache_and_ledger_open_the_same_file_the_same_way(tmp_path: Path) -> None:
    spec = f"sqlite:///{tmp_path}/shared.db"  # four slashes: an absolute path
    cache = cache_store_from_spec(spec)
    ledger = ledger_from_url(spec)
    try:
        assert isinstance(cache, SQLiteCacheStore) and isinstance(ledger.store, SQLiteLedgerStore)
        assert cache.path == str(tmp_path / "shared.db")
        assert Path(ledger.store.path) == tmp_path / "shared.db"
    finally:
        ledger.close()
    assert isinstance(cache_store_from_spec("memory"), MemoryCacheStore)
    assert isinstance(ledger_from_url("memory").store, MemoryLedgerStore)


@pytest.mark.parametrize("setting", ["cache", "ledger"])
def test_a_password_in_a_bad_url_never_reaches_the_error(setting: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_store_url("postgres://admin:hunter2@db:5432/x", setting=setting)
    assert "hunter2" not in str(caught.value)
    assert setting in str(caught.value) and "sqlite:///" in str(caught.value)


def test_the_ledger_refuses_redis_by_name() -> None:
    with pytest.raises(ConfigurationError, match="ledger= has no redis store"):
        ledger_from_url("redis://:secret@localhost:6379/0")


def test_sqlite_without_a_path_is_refused_for_both() -> None:
    for setting in ("cache", "ledger"):
        with pytest.raises(
            ConfigurationError, match=f"{setting}='sqlite:///...' needs a file path"
        ):
            parse_store_url("sqlite://", setting=setting)
