"""State URL options: `?timeout=` and `?prefix=` reach the store; anything else misspelt is
refused with the closest valid name, and a password never shows in the refusal."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from _redis import RedisServer

from llmrouter_integrations import Budget, ConfigurationError, Deployment, Router
from llmrouter_integrations.state import cache_store_from_spec, parse_store_url
from llmrouter_integrations.state.shared_redis import RedisState
from llmrouter_integrations.state.shared_sqlite import SQLiteState
from llmrouter_integrations.state.stores import shared_state_from_spec
from llmrouter_integrations.testing import FakeProviderServer

KEY = "sk-test-url-options-0123456789"


def test_sqlite_timeout_reaches_the_connection(tmp_path: Path) -> None:
    state = shared_state_from_spec(f"sqlite:///{tmp_path / 'state.db'}?timeout=1.5")
    assert isinstance(state, SQLiteState) and state.timeout_s == 1.5
    assert state.path == str(tmp_path / "state.db")  # the query is not part of the file name
    # SQLite's own busy timeout (how long a call waits for another process's write lock)
    busy = state._run(lambda db: db.execute("PRAGMA busy_timeout").fetchone()[0], write=False)
    assert busy == 1500
    assert not (tmp_path / "state.db?timeout=1.5").exists()
    default = shared_state_from_spec(f"sqlite:///{tmp_path / 'other.db'}")
    assert isinstance(default, SQLiteState) and default.timeout_s == 0.25


def test_a_sqlite_state_with_a_short_timeout_gives_up_on_a_held_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state = shared_state_from_spec(f"sqlite:///{path}?timeout=0.05")
    assert isinstance(state, SQLiteState)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        from llmrouter_integrations.state.shared import StoreUnavailable

        with pytest.raises(StoreUnavailable):
            state.count_failure("openai/gpt-4o-mini")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert state.count_failure("openai/gpt-4o-mini") == 1


def test_redis_prefix_and_timeout_reach_the_store(redis_server: RedisServer) -> None:
    url = redis_server.fresh(3)
    state = shared_state_from_spec(f"{url}?timeout=0.5&prefix=app1")
    assert isinstance(state, RedisState)
    assert (state.prefix, state.timeout_s) == ("app1", 0.5)
    kwargs = state._client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.5, 0.5)
    assert "prefix" not in kwargs and "timeout" not in kwargs
    assert state.count_failure("openai/gpt-4o-mini") == 1
    import redis

    keys = redis.Redis.from_url(url, decode_responses=True).keys("*")
    assert keys and all(key.startswith("{app1}") for key in keys), keys


def test_two_prefixes_on_one_redis_are_two_budgets(redis_server: RedisServer) -> None:
    url = redis_server.fresh(4)
    with FakeProviderServer(valid_keys=[KEY]) as fake:

        def router(prefix: str) -> Router:
            return Router(
                deployments=[
                    {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "api_key": KEY,
                        "base_url": fake.openai_base_url,
                    }
                ],
                budgets=[Budget(Decimal("5"), period="day")],
                state=f"{url}?prefix={prefix}&timeout=2",
            )

        with router("app1") as first, router("app1") as same, router("app2") as other:
            cost = first.complete("hi", max_tokens=5).cost
            assert cost
            assert first.settler is not None and first.settler.drain()  # its settle landed
            # The same prefix shares the spend; another prefix is another app's budget.
            assert [s.spent_usd for s in same.budgets.status()] == [pytest.approx(cost)]
            assert [s.spent_usd for s in other.budgets.status()] == [0]


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("redis://localhost:6379/0?timout=0.5", "did you mean 'timeout'?"),
        ("redis://localhost:6379/0?prefx=app1", "did you mean 'prefix'?"),
        ("redis+cluster://a:7000,b:7000?timeuot=1", "did you mean 'timeout'?"),
        ("sqlite:///state.db?timout=1", "did you mean 'timeout'?"),
        ("sqlite:///state.db?prefix=app1", "takes no prefix= option"),
        ("sqlite:///state.db?mode=ro", "unknown option 'mode'"),
    ],
)
def test_a_misspelt_option_names_the_closest_valid_one(spec: str, hint: str) -> None:
    with pytest.raises(ConfigurationError, match="state=") as caught:
        shared_state_from_spec(spec)
    assert hint in str(caught.value)


@pytest.mark.parametrize(
    "spec",
    [
        "redis://:hunter2@localhost:6379/0?timout=0.5",
        "redis://localhost:6379/0?password=hunter2&prefx=a",
        "redis+sentinel://:hunter2@s1:26379/mymaster?sentinel_password=hunter2&timeout=x",
        "redis://admin:hunter2@localhost:6379/0?timeout=-1",
        "redis://admin:hunter2@localhost:6379/0?prefix={a}",
    ],
)
def test_a_refused_option_never_shows_the_password(spec: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        shared_state_from_spec(spec)
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(caught.value)


def test_redis_own_options_still_reach_redis_and_ours_do_not() -> None:
    parsed = parse_store_url(
        "redis://:pw@h:6379/0?client_name=worker1&prefix=app1&timeout=2&password=pw2",
        setting="state",
        options=("timeout", "prefix"),
    )
    assert parsed.url == "redis://:pw@h:6379/0?client_name=worker1&password=pw2"
    assert (parsed.timeout_s, parsed.prefix) == (2.0, "app1")
    assert "pw" not in repr(parsed).replace("pw2", "").replace("***", "")
    assert "pw2" not in repr(parsed)
    cluster = parse_store_url(
        "redis+cluster://a:7000,b:7000?prefix=app2&ssl_ca_certs=/ca.pem",
        setting="state",
        options=("timeout", "prefix"),
    )
    assert cluster.url == "redis+cluster://a:7000,b:7000?ssl_ca_certs=/ca.pem"
    assert cluster.prefix == "app2"


def test_the_cache_takes_the_same_options_and_the_ledger_none(tmp_path: Path) -> None:
    cache = cache_store_from_spec("redis://localhost:6379/0?prefix=app1&timeout=0.3")
    assert (cache.prefix, cache.timeout_s) == ("app1:cache:", 0.3)  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="takes no timeout= option"):
        cache_store_from_spec(f"sqlite:///{tmp_path / 'cache.db'}?timeout=1")
    with pytest.raises(ConfigurationError, match="takes no timeout= option"):
        Router(
            deployments=[Deployment("openai", "gpt-4o-mini", api_key=KEY)],
            ledger=f"sqlite:///{tmp_path}/c.db?timeout=1",
        )
