"""Router overhead over a raw aiohttp POST (the floor) and raw httpx, plus import time.

Runs FakeProviderServer in its own process (so the server does not share our event loop
or GIL), then measures on the same loopback server and the same request body:

- sequential latency (concurrency 1): p50 / p99 per call, and the router's added p50/p99;
- throughput at concurrency 64 (requests per second, median of interleaved rounds) and
  its share of raw aiohttp's (median of the per-round ratios), and this process's CPU
  time per request while at it (the steadier number when other work shares the cores);
- `import llmrouter_integrations` time in a fresh interpreter.

    python benchmarks/bench_overhead.py            # ~30 s
    python benchmarks/bench_overhead.py --quick    # ~5 s
    python benchmarks/bench_overhead.py --imports-only [--package ../other/llmrouter_integrations]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

MODEL = "gpt-4o-mini"
PACKAGE = Path(__file__).resolve().parent.parent / "llmrouter_integrations"
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Explain quantum computing in one sentence."}],
    "max_completion_tokens": 60,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, behavior: dict[str, object] | None = None) -> subprocess.Popen[bytes]:
    """The fake in its own process; `behavior` adds `ModelBehavior` fields for MODEL."""
    # The fake advertises OpenAI-like rate-limit headers (10k requests/min by default), which
    # the router obeys; raise them so the benchmark measures overhead, not a rate limit.
    limits = {"rate_limit": 100_000_000, "tokens_per_minute": 10_000_000_000}
    config = {"models": {MODEL: {**limits, **(behavior or {})}}, "record_limit": 1000}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config_file:
        json.dump(config, config_file)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmrouter_integrations.cli",
            "fake-server",
            "--port",
            str(port),
            "--config",
            config_file.name,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("fake server did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def sequential(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    for _ in range(min(50, n)):  # warm the connection pool
        await call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


async def throughput(
    call: Callable[[], Awaitable[object]], total: int, concurrency: int
) -> tuple[float, float]:
    """(requests per second, this process's CPU microseconds per request)."""
    for _ in range(20):
        await call()
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start), (time.process_time() - cpu) / total * 1e6


def import_time_ms(
    statement: str = "import llmrouter_integrations",
    runs: int = 7,
    *,
    bytecode: bool = True,
    package: Path = PACKAGE,
) -> tuple[float, float]:
    """Median time of `statement` (wall ms, CPU ms) in fresh interpreters.

    CPU time (process_time) is the steadier number on a busy shared machine, where wall
    time also counts waiting for a core.

    With bytecode: the package's .pyc files exist (any run after the first). Without: a copy
    of the package with no __pycache__, imported with -B, as on the first run after a clone
    (dependencies keep their bytecode either way). `package` is the directory copied (another
    checkout's, for an A/B comparison). PYTHONDONTWRITEBYTECODE is dropped from
    the children's environment: inherited, it would silently turn the first into the second.
    """
    code = (
        "import time; t=time.perf_counter(); c=time.process_time(); "
        f"{statement}; "
        "print(time.perf_counter()-t, time.process_time()-c, "
        "__import__('llmrouter_integrations').__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    samples = []
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "llmrouter_integrations"
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
        flags = [] if bytecode else ["-B"]
        if bytecode:  # write the .pyc files once
            subprocess.run(
                [sys.executable, "-c", code], cwd=scratch, env=env, check=True, capture_output=True
            )
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, *flags, "-c", code],
                cwd=scratch,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            wall, cpu, where = out.stdout.split()
            assert where.startswith(scratch), where  # the copy, not an installed package
            samples.append((float(wall) * 1000, float(cpu) * 1000))
    return (
        statistics.median(wall for wall, _ in samples),
        statistics.median(cpu for _, cpu in samples),
    )


async def run(
    base: str, n: int, total: int, concurrency: int, rounds: int = 3
) -> dict[str, dict[str, float]]:
    import aiohttp
    import httpx

    from llmrouter_integrations import Deployment, Router

    url = f"{base}/v1/chat/completions"
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    payload = json.dumps(BODY).encode()
    results: dict[str, dict[str, float]] = {}

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def raw_aiohttp() -> object:
            async with session.post(url, data=payload, headers=headers) as response:
                return await response.read()

        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=None)) as client:

            async def raw_httpx() -> object:
                response = await client.post(url, content=payload, headers=headers)
                return response.content

            router = Router(
                deployments=[
                    Deployment(
                        provider="openai", model=MODEL, api_key="sk-bench", base_url=f"{base}/v1"
                    )
                ]
            )
            messages = BODY["messages"]

            async def via_router() -> object:
                return await router.achat(messages, max_tokens=60)

            calls = {"raw aiohttp": raw_aiohttp, "raw httpx": raw_httpx, "router": via_router}
            latencies: dict[str, list[float]] = {name: [] for name in calls}
            # Interleave rounds so drift on a shared machine hits every contender alike.
            for _ in range(5):
                for name, call in calls.items():
                    latencies[name] += await sequential(call, n // 5)
            # Throughput too, in rounds: each round times every contender once, and the
            # share of raw aiohttp is taken per round, so a burst of load elsewhere on the
            # machine skews one round's pair rather than one contender.
            rates: dict[str, list[float]] = {name: [] for name in calls}
            cpus: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(rounds):
                for name, call in calls.items():
                    rate, cpu = await throughput(call, total, concurrency)
                    rates[name].append(rate)
                    cpus[name].append(cpu)
            for name in calls:
                values = latencies[name]
                shares = [r / f for r, f in zip(rates[name], rates["raw aiohttp"], strict=True)]
                results[name] = {
                    "p50_ms": percentile(values, 0.5) * 1000,
                    "p99_ms": percentile(values, 0.99) * 1000,
                    "rps": statistics.median(rates[name]),
                    "share": statistics.median(shares),
                    "cpu_us": statistics.median(cpus[name]),
                }
            await router.aclose()
    return results


def print_import_times(package: Path = PACKAGE) -> None:
    statements = ("import llmrouter_integrations", "from llmrouter_integrations import Router")
    for statement in statements:
        for label, bytecode in (("with bytecode", True), ("without bytecode", False)):
            wall, cpu = import_time_ms(statement, bytecode=bytecode, package=package)
            print(
                f"{statement} {label}: {wall:.0f} ms wall, {cpu:.0f} ms CPU "
                f"(median of 7 fresh interpreters; load average {os.getloadavg()[0]:.1f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=None, help="throughput rounds (3, quick 5)")
    parser.add_argument("--imports-only", action="store_true", help="only the import times")
    parser.add_argument(
        "--package", type=Path, default=PACKAGE, help="the package directory whose import to time"
    )
    args = parser.parse_args()
    if args.imports_only:
        print_import_times(args.package)
        return
    n, total = (500, 2000) if args.quick else (3000, 10000)
    rounds = args.rounds or (5 if args.quick else 3)
    port = free_port()
    server = start_server(port)
    try:
        results = asyncio.run(run(f"http://127.0.0.1:{port}", n, total, args.concurrency, rounds))
    finally:
        server.terminate()
        server.wait()
    floor = results["raw aiohttp"]
    print(
        f"loopback fake server in its own process; {n} sequential calls, "
        f"{total} calls at concurrency {args.concurrency} x {rounds} interleaved rounds; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'client':<12} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8} "
        f"{'req/s':>8} {'% of aiohttp':>12} {'CPU us/req':>10}"
    )
    for name, row in results.items():
        print(
            f"{name:<12} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} "
            f"{row['p50_ms'] - floor['p50_ms']:8.3f} {row['p99_ms'] - floor['p99_ms']:8.3f} "
            f"{row['rps']:8.0f} {100 * row['share']:11.0f}% {row['cpu_us']:10.1f}"
        )
    print_import_times(args.package)


if __name__ == "__main__":
    main()
