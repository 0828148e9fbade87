"""What cost tracking adds per request: pricing, the ledger layer (memory, SQLite), budgets.

Times, in one event loop, a trivial in-process backend that answers at once (so only our
layers are measured), bare and wrapped:

- `Pricer.cost` (cached unit prices) against genai-prices' own `calc_price`;
- `LedgerBackend` with the memory store and with the SQLite store (write-behind);
- `BudgetBackend` with one daily budget (reserve + settle);
- sequential and at concurrency 64; memory of the memory store after many requests;
- how fast the SQLite writer thread drains rows to disk.

    python benchmarks/bench_ledger.py            # ~15 s
    python benchmarks/bench_ledger.py --quick    # ~3 s
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

from llmrouter_integrations.costs.budget import Budget, BudgetManager
from llmrouter_integrations.costs.ledger import CostLedger, LedgerEntry, MemoryLedgerStore
from llmrouter_integrations.costs.pricing import Pricer
from llmrouter_integrations.layers.budget import BudgetBackend
from llmrouter_integrations.layers.ledger import LedgerBackend
from llmrouter_integrations.state.ledger_sqlite import SQLiteLedgerStore
from llmrouter_integrations.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CostDetail,
    Deployment,
    Message,
    Usage,
)

DEPLOYMENT = Deployment("openai", "gpt-4o-mini")
REQUEST = ChatRequest(
    messages=[Message(role="user", content="Explain quantum computing in one sentence.")],
    max_tokens=60,
    user="alice",
    tags=("bench",),
)


class Instant:
    """Answers at once with a priced response: the floor every layer is measured against."""

    def __init__(self) -> None:
        detail = CostDetail(input=Decimal("0.0000021"), output=Decimal("0.0000120"))
        self.response = ChatResponse(
            message=Message(role="assistant", content="Qubits hold superpositions."),
            finish_reason="stop",
            usage=Usage(14, 20, 34),
            cost=float(detail.total),
            cost_detail=detail,
            provider="openai",
            model="gpt-4o-mini-2024-07-18",
            deployment="openai/gpt-4o-mini",
        )

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return self.response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        yield ChatChunk(is_final=True)

    async def aclose(self) -> None:
        pass


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


async def sequential_us(backend: Instant | LedgerBackend | BudgetBackend, calls: int) -> float:
    """Median over 5 rounds of the mean time per sequential chat() call."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls // 5):
            await backend.chat(REQUEST)
        rounds.append((time.perf_counter() - start) / (calls // 5) * 1e6)
    return statistics.median(rounds)


async def concurrent_us(backend: Instant | LedgerBackend | BudgetBackend, calls: int) -> float:
    """Wall time per call with 64 tasks sharing the loop."""
    per_task = calls // 64

    async def worker() -> None:
        for _ in range(per_task):
            await backend.chat(REQUEST)
            await asyncio.sleep(0)  # interleave, as real I/O would

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(64)))
    return (time.perf_counter() - start) / (per_task * 64) * 1e6


def bench_pricing(calls: int) -> None:
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    pricer = Pricer()
    used = Usage(1_000, 200, 1_200, cached_input_tokens=400)
    ours = per_call_us(lambda: pricer.cost(DEPLOYMENT, used, prices_provider="openai"), calls)
    sonnet = Deployment("anthropic", "claude-sonnet-4-5")
    tiered = per_call_us(lambda: pricer.cost(sonnet, used, prices_provider="anthropic"), calls)
    estimate = per_call_us(
        lambda: pricer.estimate(DEPLOYMENT, 1_000, 200, prices_provider="openai"), calls
    )
    theirs = per_call_us(
        lambda: calc_price(
            PriceUsage(input_tokens=1_000, output_tokens=200, cache_read_tokens=400),
            "gpt-4o-mini",
            provider_id="openai",
        ),
        calls // 5,
    )
    print("pricing, per call")
    print(f"  Pricer.cost (gpt-4o-mini)             {ours:8.2f} us")
    print(f"  Pricer.cost (claude-sonnet-4-5 tiers) {tiered:8.2f} us")
    print(f"  Pricer.estimate                       {estimate:8.2f} us")
    print(f"  genai_prices.calc_price               {theirs:8.2f} us")


async def bench_layers(calls: int, folder: Path) -> None:
    floor = Instant()
    memory = CostLedger(MemoryLedgerStore())
    sqlite = CostLedger(SQLiteLedgerStore(folder / "bench.db"))
    manager = BudgetManager([Budget(1_000_000, period="day")])
    layers: dict[str, Instant | LedgerBackend | BudgetBackend] = {
        "bare backend (floor)": floor,
        "LedgerBackend, memory store": LedgerBackend(Instant(), memory),
        "LedgerBackend, SQLite store": LedgerBackend(Instant(), sqlite),
        "BudgetBackend, one budget": BudgetBackend(
            Instant(), DEPLOYMENT, manager=manager, pricer=Pricer(), prices_provider="openai"
        ),
    }
    print(f"\nper request, {calls:,} calls (added = minus the floor)")
    print(f"  {'layer':<30} {'sequential':>12} {'added':>8} {'64 tasks':>10} {'added':>8}")
    base_seq = base_conc = 0.0
    for name, backend in layers.items():
        seq = await sequential_us(backend, calls)
        conc = await concurrent_us(backend, calls)
        if backend is floor:
            base_seq, base_conc = seq, conc
        print(
            f"  {name:<30} {seq:10.2f}us {seq - base_seq:6.2f}us "
            f"{conc:8.2f}us {conc - base_conc:6.2f}us"
        )
    start = time.perf_counter()
    rows = sqlite.requests  # a read flushes what is still buffered
    print(
        f"  SQLite: {rows:,} rows on disk; final flush + count took {time.perf_counter() - start:.3f} s"
    )
    sqlite.close()


def bench_sqlite_drain(rows: int, folder: Path) -> None:
    store = SQLiteLedgerStore(folder / "drain.db")
    entry = LedgerEntry(
        time=time.time(),
        deployment="openai/gpt-4o-mini",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=14,
        output_tokens=20,
        cost=Decimal("0.0000141"),
        user="alice",
        tags=("bench",),
    )
    start = time.perf_counter()
    for _ in range(rows):
        store.append((entry,))
    appended = time.perf_counter() - start
    store.flush()
    total = time.perf_counter() - start
    store.close()
    print(f"\nSQLite store: {rows:,} rows appended in {appended * 1e6 / rows:.2f} us each;")
    print(f"  all on disk after {total:.2f} s ({rows / total:,.0f} rows/s, batched transactions)")


def bench_memory(rows: int) -> None:
    ledger = CostLedger(MemoryLedgerStore())  # keeps 10,000 rows whole, folds older ones

    def record(n: int) -> None:
        ledger.record(
            LedgerEntry(
                time=time.time(),
                deployment="d",
                provider="openai",
                model="m",
                cost=Decimal("0.00001"),
                user=f"user-{n % 50}",
            )
        )

    tracemalloc.start()
    for n in range(20_000):  # warm up past the 10,000 rows kept whole
        record(n)
    before = tracemalloc.take_snapshot()
    for n in range(rows):
        record(n)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    print(
        f"\nmemory store: {rows:,} more requests after warm-up grew memory by {grown / 1024:.0f} KiB"
    )
    print(f"  (totals stay exact: {ledger.requests:,} requests, ${ledger.total_usd:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls = 20_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory() as folder:
        bench_pricing(calls // 2)
        asyncio.run(bench_layers(calls, Path(folder)))
        bench_sqlite_drain(calls, Path(folder))
    bench_memory(calls)


if __name__ == "__main__":
    main()
