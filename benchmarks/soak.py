"""Long soak: the chaos soak (tests/chaos/test_soak.py) for as many requests as you like.

Requests and streams with random cancellation points and abandoned streams go through
one Router (cache, budget, concurrency caps, a flaky deployment) against the loopback
fake. Every `--report` requests it prints the memory traced in the package's modules
(the fake server's records left out; SQLite ledger, so rows are not kept in memory),
and at the end whether anything is left in flight, queued or held.

    python benchmarks/soak.py                    # 30,000 requests, a few minutes
    python benchmarks/soak.py --requests 3000    # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "chaos"))

from test_soak import _router, _traced_in_package, _wave

from llmrouter_integrations.testing import FakeProviderServer

KEY = "sk-test-chaos-soak-0123456789"
WAVE = 50


async def main(requests: int, report: int) -> None:
    rng = random.Random(7)
    counts = {"ok": 0, "cancelled": 0, "error": 0, "abandoned": 0}
    with (
        FakeProviderServer(valid_keys=[KEY], record_limit=100) as fake,
        tempfile.TemporaryDirectory() as folder,
    ):
        router = _router(fake, f"sqlite:///{folder}/soak.db")
        tracemalloc.start(1)
        for _ in range(8):
            await _wave(router, rng, WAVE, counts)
        gc.collect()
        baseline = sum(_traced_in_package(tracemalloc.take_snapshot()).values())
        started, done = time.perf_counter(), 0
        print(f"{'requests':>9} {'traced KiB':>11} {'B/request':>10} {'req/s':>7}")
        while done < requests:
            await _wave(router, rng, WAVE, counts)
            done += WAVE
            if done % report == 0 or done >= requests:
                gc.collect()
                now = sum(_traced_in_package(tracemalloc.take_snapshot()).values())
                rate = done / (time.perf_counter() - started)
                print(
                    f"{done:>9,} {now / 1024:>11.1f} {(now - baseline) / done:>10.1f} {rate:>7.0f}"
                )
        tracemalloc.stop()
        await asyncio.sleep(0.05)
        left = {
            name: (h.in_flight, h.queued)
            for name, h in router.health().items()
            if h.in_flight or h.queued
        }
        held = sum(status.reserved_usd for status in router.budgets.status())
        await router.aclose()
    print(f"outcomes: {counts}")
    print(f"left in flight or queued: {left or 'nothing'}; budget held: ${held:.6f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--report", type=int, default=5_000)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.report))
