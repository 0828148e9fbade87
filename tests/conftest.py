"""Shared fixtures: offline guards, redis-servers (one per module; Cluster, Sentinel per session),
the sqlite/redis `state_url` pair, and the `workers` of the multi-process tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _redis import SERVER, SKIP_REASON, RedisClusterServers, RedisServer, SentinelSet

if TYPE_CHECKING:
    from _processes import Workers

# No test may reach a real provider: clear keys and base URLs the developer's shell may hold.
for _name in list(os.environ):
    if _name.endswith(("_API_KEY", "_BASE_URL")) and _name.split("_")[0] in {
        "OPENAI",
        "ANTHROPIC",
        "OPENROUTER",
        "GROQ",
        "OLLAMA",
        "TOGETHER",
        "DEEPSEEK",
        "MISTRAL",
        "FIREWORKS",
    }:
        del os.environ[_name]


# Real redis-servers on loopback ports, started when a test asks: one per test module (tests keep
# apart by database number or key prefix), a Cluster and a Sentinel set once per session.


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    if SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new SQLite file, or an emptied database (numbered by the test's name) on `redis_server`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.fresh(abs(hash(request.node.name)) % 15 + 1)


@pytest.fixture
def workers() -> Iterator[Workers]:
    """Starts tests/_state_worker.py processes (see tests/_processes.py); kills any left over."""
    from _processes import Workers  # the Router's import, only where processes are used

    started = Workers()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """Three cluster masters; tests keep apart by key prefix or by `flush()`."""
    if SERVER is None:
        pytest.skip(SKIP_REASON)
    cluster = RedisClusterServers.start(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    """A master, a replica and a sentinel; tests keep apart by database number."""
    if SERVER is None:
        pytest.skip(SKIP_REASON)
    watched = SentinelSet.start(tmp_path_factory.mktemp("sentinel"))
    yield watched
    watched.stop()
