"""What a Redis Cluster or a Sentinel-found master costs per store operation, vs one server.

Starts, on loopback, one redis-server, a 3-master cluster and a master + replica + sentinel
(the same helpers the tests use: tests/_redis.py), then times each `RedisState` operation
a call makes (budget hold, settle, rate-window acquire and release, circuit admission)
on each, one at a time. The router's own work is the same on all three, so the
difference per operation is what the topology adds.

    python benchmarks/bench_state_topologies.py            # ~20 s
    python benchmarks/bench_state_topologies.py --n 500    # quicker
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _redis import SERVER, RedisClusterServers, RedisServer, SentinelSet

from llmrouter_integrations.state.shared import Account
from llmrouter_integrations.state.shared_redis import RedisState


def timed(n: int, operation: Callable[[int], object]) -> tuple[float, float]:
    """p50 and p99 of `operation(i)` over n runs, in microseconds."""
    samples = []
    for i in range(n):
        started = time.perf_counter()
        operation(i)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def measure(url: str, n: int) -> dict[str, tuple[float, float]]:
    store = RedisState(url, prefix=f"bench{uuid.uuid4().hex[:6]}", timeout_s=2.0)
    accounts = [Account("daily", limit=10**15)]
    now = time.time()
    store.read(accounts, now)  # connect (and, on a cluster, read the slot map) first
    rows = {
        "hold": timed(n, lambda i: store.reserve(f"h{i}", accounts, 1000, now, 300)),
        "settle": timed(n, lambda i: store.settle(f"h{i}", accounts, 900, now)),
        "rate acquire": timed(
            n,
            lambda i: store.acquire_rate(
                "d",
                f"p{i}",
                rpm=10**9,
                tpm=None,
                concurrency=None,
                tokens=0,
                now=now,
                lease_s=60,
            ),
        ),
        "rate release": timed(n, lambda i: store.release_rate("d", f"p{i}", 0, now)),
        "circuit admit": timed(n, lambda i: store.admit_circuit("d", now, 5)),
    }
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="runs per operation")
    args = parser.parse_args()
    if SERVER is None:
        sys.exit("redis-server is not installed")
    with tempfile.TemporaryDirectory() as directory:
        single = RedisServer.start()
        cluster = RedisClusterServers.start(Path(directory))
        watched = SentinelSet.start(Path(directory))
        try:
            results = {
                "one server": measure(single.url, args.n),
                "cluster (3 masters)": measure(cluster.url, args.n),
                "sentinel master": measure(watched.url(db=0), args.n),
            }
        finally:
            single.stop()
            cluster.stop()
            watched.stop()
    operations = list(next(iter(results.values())))
    print(f"p50 / p99 per store operation, microseconds ({args.n} runs each)")
    print(f"{'':22}" + "".join(f"{op:>18}" for op in operations))
    for name, rows in results.items():
        cells = "".join(f"{rows[op][0]:>10.0f} /{rows[op][1]:>6.0f}" for op in operations)
        print(f"{name:22}{cells}")


if __name__ == "__main__":
    main()
