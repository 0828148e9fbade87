"""Shared fixtures: offline guards, and a Redis Cluster and Sentinel set per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from _redis import SERVER, SKIP_REASON, RedisClusterServers, SentinelSet

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


# Redis Cluster and Sentinel, started once per session on loopback ports when a test asks.


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
