"""What shared state (`Router(state=...)`) adds per call: state=None vs SQLite vs Redis.

Runs FakeProviderServer in its own process and a redis-server on loopback, then drives
one Router per setting, identical except for `state=`: one deployment with an `rpm`
limit, a daily `Budget` that never runs out, the circuit breaker. Per call that is, with
shared state: one store round trip before it (`admit_call`: the circuit admission, the
rate-window count and the budget hold) and one after it (`finish_call`: the settle, with
the provider's rate-limit headers), which a background thread sends, several calls' in
one trip when they queue up. Measures sequential latency (p50/p99, and what each adds
over state=None), throughput at concurrency 64, and the store round trips per call
(counted at the store's one entry point: each SQLite transaction, each Redis script
call); then times each store operation on its own (p50), which stays readable on a busy
machine, and for Redis the server's own mean time per script (the rest is the wire and
redis-py).

    python benchmarks/bench_state.py            # ~1 min
    python benchmarks/bench_state.py --quick    # ~15 s
    python benchmarks/bench_state.py --quick --ab   # + rows settling on the caller's path
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench_overhead import (
    BODY,
    MODEL,
    free_port,
    percentile,
    sequential,
    start_server,
    throughput,
)


def start_redis(port: int) -> subprocess.Popen[bytes] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("redis-server did not start")


# A row whose router sends the trip after each call on the caller's path, as before the
# settler (state/settler.py): the A/B of that change, interleaved in the same run.
INLINE = " inline"


def counted_store(url: str | None) -> tuple[Any, list[int]]:
    """A store for `url` whose round trips are counted at its one entry point."""
    if url is None:
        return None, [0]
    from llmrouter_integrations.state.stores import shared_state_from_spec

    store: Any = shared_state_from_spec(url)
    trips = [0]
    # A Redis pipeline (`_call_many`: the trips after several calls, sent together) is one.
    entries = ["_run"] if store.backend == "sqlite" else ["_call", "_call_many"]
    for entry in entries:
        inner = getattr(store, entry)

        def counted(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            trips[0] += 1
            return _inner(*args, **kwargs)

        setattr(store, entry, counted)
    return store, trips


async def run(
    base: str, states: dict[str, str | None], n: int, total: int, concurrency: int
) -> dict[str, dict[str, float]]:
    from llmrouter_integrations import Budget, Deployment, Router

    routers: dict[str, Any] = {}
    counters: dict[str, list[int]] = {}
    for name, state in states.items():
        store, counters[name] = counted_store(state)
        router = routers[name] = Router(
            deployments=[
                Deployment(
                    provider="openai",
                    model=MODEL,
                    api_key="sk-bench",
                    base_url=f"{base}/v1",
                    rpm=100_000_000,
                )
            ],
            budgets=[Budget(1_000_000, period="day")],
            state=store,
        )
        if name.endswith(INLINE):  # the trip after each call back on the caller's path
            router.budgets.shared.settler = None
            router.limits.shared.settler = None
    messages = BODY["messages"]

    made = {name: [0] for name in routers}

    def caller(router: Any, count: list[int]) -> Callable[[], Awaitable[object]]:
        async def call() -> object:
            count[0] += 1
            return await router.achat(messages, max_tokens=60)

        return call

    calls = {name: caller(router, made[name]) for name, router in routers.items()}
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(5):  # interleaved rounds: drift on a shared machine hits all alike
        for name, call in calls.items():
            latencies[name] += await sequential(call, n // 5)
    results: dict[str, dict[str, float]] = {}
    for name, call in calls.items():
        rps = statistics.median([(await throughput(call, total, concurrency))[0] for _ in range(3)])
        values = latencies[name]
        results[name] = {
            "p50_ms": percentile(values, 0.5) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "rps": rps,
        }
    for name, router in routers.items():
        await router.aclose()  # the trips after the last calls land first
        results[name]["trips"] = counters[name][0] / made[name][0]
        if router.state is not None:
            router.state.close()
    return results


def _operations(
    store: Any, account: list[Any], deployment: str
) -> dict[str, Callable[[int], object]]:
    from llmrouter_integrations.state.shared import CallPlan, HoldAsk, RateAsk, RateDone

    def admit(i: int) -> object:
        rate = RateAsk(deployment, f"p{i}", 100_000_000, None, None, 100, 300.0)
        plan = CallPlan(deployment, 60.0, rate, HoldAsk(f"h{i}", tuple(account), 1000, 300.0))
        return store.admit_call(plan, time.time())

    def finish(i: int) -> object:
        return store.finish_call(
            (f"h{i}", account, 900), RateDone(deployment, f"p{i}"), time.time()
        )

    return {"admit_call": admit, "finish_call": finish}


def _script_timer(url: str | None) -> Callable[[], float] | None:
    """For Redis: resets the server's command stats; the returned function reads the mean
    microseconds the server spent per EVALSHA since (the Lua run, without the wire)."""
    if url is None or not url.startswith("redis"):
        return None
    import redis

    client = redis.Redis.from_url(url)
    client.config_resetstat()

    def read() -> float:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        client.close()
        return float(stats.get("usec_per_call", 0.0))

    return read


def store_operations(states: dict[str, str | None], n: int) -> dict[str, dict[str, float]]:
    """p50 microseconds of each store operation a call makes, called directly (no router)."""
    import uuid

    from llmrouter_integrations.state.shared import Account
    from llmrouter_integrations.state.stores import shared_state_from_spec

    out: dict[str, dict[str, float]] = {}
    for name, url in states.items():
        store = shared_state_from_spec(url) if url is not None else None
        if store is None:
            continue
        account = [Account(f"bench|{uuid.uuid4().hex}", limit=10**15)]
        deployment = f"bench-{uuid.uuid4().hex[:8]}"
        operations = _operations(store, account, deployment)
        row: dict[str, float] = {}
        for label, operation in operations.items():
            operation(-1)
            server = _script_timer(url)
            samples = []
            for i in range(n):
                start = time.perf_counter()
                operation(i)
                samples.append(time.perf_counter() - start)
            row[label] = statistics.median(samples) * 1e6
            if server is not None:
                row[label + " in Lua"] = server()
        row["per call"] = row["admit_call"] + row["finish_call"]
        out[name] = row
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--ab",
        action="store_true",
        help="also rows with the trip after each call on the caller's path (' inline')",
    )
    args = parser.parse_args()
    n, total = (500, 2000) if args.quick else (3000, 10000)
    port, redis_port = free_port(), free_port()
    server = start_server(port)
    redis = start_redis(redis_port)
    workdir = tempfile.mkdtemp(prefix="bench-state-")
    sqlite = f"sqlite:///{os.path.join(workdir, 'state.db')}"
    states: dict[str, str | None] = {"state=None": None, "sqlite": sqlite}
    if args.ab:
        states["sqlite" + INLINE] = sqlite
    if redis is not None:
        states["redis"] = f"redis://127.0.0.1:{redis_port}/0"
        if args.ab:
            states["redis" + INLINE] = states["redis"]
    try:
        results = asyncio.run(run(f"http://127.0.0.1:{port}", states, n, total, args.concurrency))
        operations = store_operations({k: v for k, v in states.items() if INLINE not in k}, n)
    finally:
        server.terminate()
        server.wait()
        if redis is not None:
            redis.terminate()
            redis.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    base = results["state=None"]
    print(
        f"loopback fake server in its own process, redis-server on loopback; {n} sequential "
        f"calls, {total} at concurrency {args.concurrency}; python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores"
    )
    print(
        f"{'state':<15} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} "
        f"{'req/s':>8} {'% of none':>10} {'trips/call':>11}"
    )
    for name, row in results.items():
        print(
            f"{name:<15} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} "
            f"{row['p50_ms'] - base['p50_ms']:+8.3f} {row['p99_ms'] - base['p99_ms']:+8.3f} "
            f"{row['rps']:8.0f} {100 * row['rps'] / base['rps']:9.0f}% {row['trips']:11.2f}"
        )
    print()
    print(
        "store operations, p50 us (each is one round trip / transaction; a call makes both); "
        "'in Lua': the server's mean time per script (INFO commandstats)"
    )
    labels = ["admit_call", "finish_call", "per call"]
    print(f"{'state':<15} " + " ".join(f"{label:>13}" for label in labels))
    for name, row in operations.items():
        print(f"{name:<15} " + " ".join(f"{row[label]:13.0f}" for label in labels))
        if "admit_call in Lua" in row:
            inside = [row["admit_call in Lua"], row["finish_call in Lua"]]
            print(f"{'  in Lua':<15} " + " ".join(f"{value:13.0f}" for value in inside))
    if redis is None:
        print("(redis-server not installed: Redis row skipped)")


if __name__ == "__main__":
    main()
