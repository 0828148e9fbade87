"""Soak: thousands of requests, many cancelled at random points; nothing may pile up.

Calls and streams run through one Router (cache with single-flight, a budget, a
concurrency cap, two deployments, one of them failing now and then) while random
requests are cancelled before, during or after their exchange, or abandoned mid-stream.
Afterwards every deployment is back to zero in flight and queued, no budget money is
held, no task is left, and the memory traced in the router's own modules after a warm-up
has not grown with the number of requests. A longer run: benchmarks/soak.py.
"""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import llmrouter_integrations
from llmrouter_integrations import Budget, Deployment, RetryPolicy, Router, RouterError
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

KEY = "sk-test-chaos-soak-0123456789"
PACKAGE = str(Path(llmrouter_integrations.__file__).parent)
# The fake server's own records are not the router's. (The ledger is SQLite here: an
# in-memory ledger keeps every row by design.)
EXEMPT = ("testing/",)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY], record_limit=100) as server:
        yield server


def _router(fake: FakeProviderServer, ledger: str) -> Router:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[500, 503, 429] * 200))
    fake.set_behavior("claude-haiku-4-5", ModelBehavior(inter_chunk_delay_s=0.0005))
    return Router(
        strategy="priority",
        deployments=[
            Deployment(
                "openai",
                "gpt-4o-mini",
                api_key=KEY,
                base_url=fake.openai_base_url,
                max_concurrency=8,
            ),
            Deployment(
                "anthropic",
                "claude-haiku-4-5",
                api_key=KEY,
                base_url=fake.anthropic_base_url,
                max_concurrency=8,
            ),
        ],
        cache="memory",
        ledger=ledger,
        budgets=[Budget(1_000.0, name="soak")],
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.002),
        timeout=5.0,
    )


async def _one(router: Router, rng: random.Random, counts: dict[str, int]) -> None:
    prompt = f"question {rng.randrange(40)}"  # repeats: cache hits and single-flight
    options = {"max_tokens": 50, "cache": rng.random() < 0.5}
    if rng.random() < 0.5:
        work = router.acomplete(prompt, **options)
    else:

        async def read_stream() -> None:
            async for chunk in router.astream(prompt, **options):
                if rng.random() < 0.05:  # walk away mid-stream
                    counts["abandoned"] += 1
                    break
                del chunk

        work = read_stream()
    task = asyncio.ensure_future(work)
    if rng.random() < 0.3:  # cancel at a random point before, during or after the exchange
        for _ in range(rng.randrange(6)):
            await asyncio.sleep(0)
        if rng.random() < 0.5:
            await asyncio.sleep(rng.random() * 0.003)
        task.cancel()
    try:
        await task
        counts["ok"] += 1
    except asyncio.CancelledError:
        counts["cancelled"] += 1
    except RouterError:
        counts["error"] += 1


async def _wave(router: Router, rng: random.Random, size: int, counts: dict[str, int]) -> None:
    await asyncio.gather(*(_one(router, rng, counts) for _ in range(size)))


def _traced_in_package(snapshot: tracemalloc.Snapshot) -> dict[str, int]:
    return {
        stat.traceback[0].filename[len(PACKAGE) + 1 :]: stat.size
        for stat in snapshot.statistics("filename")
        if stat.traceback[0].filename.startswith(PACKAGE)
        and not any(part in stat.traceback[0].filename for part in EXEMPT)
    }


async def test_soak_with_random_cancellation_leaves_nothing_behind(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    rng = random.Random(12)
    counts = {"ok": 0, "cancelled": 0, "error": 0, "abandoned": 0}
    router = _router(fake, f"sqlite:///{tmp_path / 'soak-ledger.db'}")
    tasks_before = len(asyncio.all_tasks())
    tracemalloc.start(1)
    try:
        for _ in range(8):  # warm-up: caches, pools and lazy imports fill once
            await _wave(router, rng, 50, counts)
        gc.collect()
        baseline = _traced_in_package(tracemalloc.take_snapshot())
        for _ in range(16):
            await _wave(router, rng, 50, counts)
        gc.collect()
        after = _traced_in_package(tracemalloc.take_snapshot())
        growth = {f: size - baseline.get(f, 0) for f, size in after.items()}
        grown = sum(growth.values())
    finally:
        tracemalloc.stop()
    total = sum(counts[k] for k in ("ok", "cancelled", "error"))
    assert total == 24 * 50
    assert counts["cancelled"] > 100 and counts["abandoned"] > 20 and counts["ok"] > 500
    # 2,000 requests after the warm-up: less than 20 bytes each would still be under this.
    top = sorted(growth.items(), key=lambda item: -item[1])[:5]
    assert grown < 40_000, f"{grown} bytes more in the router's modules: {top}; {counts}"
    await asyncio.sleep(0.05)
    for name, health in router.health().items():
        assert (health.in_flight, health.queued) == (0, 0), name
    assert all(status.reserved_usd == 0 for status in router.budgets.status())
    await router.aclose()
    await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) <= tasks_before
