"""Fixtures for the LangChain tests: a loopback fake provider server, sockets kept local.

Sockets may only connect to 127.0.0.1 here (pytest-socket), which proves the standard
suites and the end-to-end tests run offline.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket

from llmrouter_integrations.testing import FakeProviderServer


def pytest_configure(config: pytest.Config) -> None:
    # langchain-tests' test_init_time uses pytest-benchmark; one timed run is enough here.
    if hasattr(config.option, "benchmark_disable"):
        config.option.benchmark_disable = True


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    pytest_socket.socket_allow_hosts(["127.0.0.1"], allow_unix_socket=True)
    yield
    pytest_socket._remove_restrictions()


@pytest.fixture
def fake() -> Iterator[FakeProviderServer]:
    """A fresh fake server per test (starting one takes about a millisecond)."""
    with FakeProviderServer() as server:
        yield server
