"""No API key reaches the shared state (`state=` SQLite file, Redis keys and values) or the
OpenTelemetry metrics, whatever the key's shape, with every shared feature in use at once.

The secrets sweep covers errors, logs, events, spans, ledger and cache files; the stores that
`state=` writes (budget holds, rate windows, circuits, single-flight locks) and the metric
data points are output channels of their own, read by other processes and collectors.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from _redis import RedisServer
from otel_support import make_otel

from llmrouter_integrations import (
    BreakerPolicy,
    Budget,
    Deployment,
    RetryPolicy,
    Router,
)
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

# Shapes that scrubbing by the exact repr or by a prefix pattern would miss.
KEYS = {
    "backslash": "zq-a\\b\\c-9f8e7d6c5b4a",
    "quotes": "zq-q\"uo'te-1a2b3c4d5e",
    "short": "k9Z",
}


def forms(key: str) -> set[str]:
    """The key as raw text, JSON, repr and percent-encoding would spell it."""
    return {key, json.dumps(key)[1:-1], repr(key)[1:-1], quote(key, safe="")}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def stored_bytes(state: str, tmp_path: Path, redis_server: RedisServer | None) -> str:
    """Everything the state store holds, as text (SQLite: every row of every table and the
    raw files; Redis: every key and the dump of its value)."""
    if state.startswith("sqlite:///"):
        path = Path(state[len("sqlite:///") :])
        texts = [p.read_bytes().decode("utf-8", "replace") for p in tmp_path.glob("state.db*")]
        with sqlite3.connect(path) as db:
            tables = [
                row[0] for row in db.execute("select name from sqlite_master where type='table'")
            ]
            for table in tables:
                texts.append(repr(db.execute(f'select * from "{table}"').fetchall()))
        return "\n".join(texts)
    import redis

    assert redis_server is not None
    client = redis.Redis.from_url(state)
    texts = []
    for name in client.scan_iter("*"):
        texts.append(name.decode("utf-8", "replace"))
        texts.append((client.dump(name) or b"").decode("utf-8", "replace"))
    client.close()
    assert texts, "the Redis store holds nothing: the test would prove nothing"
    return "\n".join(texts)


@pytest.mark.parametrize("shape", sorted(KEYS))
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_no_key_in_shared_state_or_metrics(
    fake: FakeProviderServer,
    tmp_path: Path,
    backend: str,
    shape: str,
    request: pytest.FixtureRequest,
) -> None:
    key = KEYS[shape]
    redis_server: RedisServer | None = None
    if backend == "sqlite":
        state = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        redis_server = request.getfixturevalue("redis_server")
        state = redis_server.url.rsplit("/", 1)[0] + f"/{sorted(KEYS).index(shape) + 1}"
    fake.reset()
    # The first deployment echoes the key in its error and its circuit opens (circuit state
    # in the store); the second serves under rate windows, a per-user budget and a cache
    # (holds, windows and single-flight locks in the store).
    fake.set_behavior("m1", ModelBehavior(permanent_error=500, error_message=f"bad {key} here"))
    otel = make_otel()
    common = {"api_key": key, "base_url": fake.openai_base_url, "price": {"input": 1, "output": 2}}
    deployments = [
        Deployment("together", "m1", **common),  # type: ignore[arg-type]
        Deployment("together", "m2", rpm=100, tpm=100_000, max_concurrency=4, **common),  # type: ignore[arg-type]
    ]
    async with Router(
        deployments=deployments,
        strategy="priority",
        state=state,
        cache=f"sqlite:///{tmp_path / 'cache.db'}",
        budgets=[Budget(5, period="day"), Budget(1, scope="user")],
        breaker=BreakerPolicy(failure_threshold=1),
        retry=RetryPolicy(max_attempts=1),
        instrument=otel.settings,
    ) as router:
        for turn in range(3):
            answer = await router.acomplete(f"question {turn}", max_tokens=20, user="alice")
            assert answer.deployment == "together/m2"
            chunks = [c async for c in router.astream(f"streamed {turn}", max_tokens=20)]
            assert chunks
        assert router.health()["together/m1"].circuit == "open"  # kept in the store
    texts = {
        "state store": stored_bytes(state, tmp_path, redis_server),
        "metrics": repr(otel.metrics()),
    }
    # the store was written to: m1's open circuit, m2's windows and budget holds
    assert "together/m1" in texts["state store"] and "together/m2" in texts["state store"]
    assert "llmrouter.cost" in texts["metrics"]
    for channel, text in texts.items():
        for form in forms(key):
            assert form not in text, f"{shape} key found in {channel}"
