"""Measure the HTTP seam against raw aiohttp on loopback: per-call latency and throughput.

Runs a minimal OpenAI-style server in a child process, then times, against it:
raw `aiohttp` (the floor), `AiohttpTransport.send`, and `DeploymentBackend.chat`
(dialect, JSON encode/decode, usage and cost included), sequentially and at concurrency 64.

    python benchmarks/bench_transport.py [--calls 2000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
from pydantic import SecretStr

from llmrouter_integrations.costs.pricing import Pricer
from llmrouter_integrations.layers.http import DeploymentBackend
from llmrouter_integrations.providers.endpoints import get_endpoint
from llmrouter_integrations.transport import AiohttpTransport, HTTPRequest
from llmrouter_integrations.types import ChatRequest, Deployment, Message

REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital of France."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22},
}

SERVER = f"""
import sys
from aiohttp import web
BODY = {json.dumps(json.dumps(REPLY))}.encode()
async def chat(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")
app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

Call = Callable[[], Awaitable[object]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_server(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("benchmark server did not start")


async def sequential(call: Call, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


async def throughput(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """Requests per second, and this process's CPU microseconds per request."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = (time.process_time() - cpu_started) / calls * 1e6
    return calls / (time.perf_counter() - started), cpu


async def main(calls: int, concurrency: int, rounds: int) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        await wait_for_server(port)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        chat_request = ChatRequest(
            messages=[Message(role="user", content="What is the capital of France?")],
            max_tokens=50,
        )
        headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
        body = json.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        ).encode()

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        transport = AiohttpTransport()
        backend = DeploymentBackend(
            Deployment(provider="openai", model="gpt-4o-mini", api_key=SecretStr("sk-bench")),
            endpoint=get_endpoint("openai"),
            transport=transport,
            base_url=f"http://127.0.0.1:{port}/v1",
            pricer=Pricer(),
        )
        http_request = HTTPRequest("POST", url, headers, body, total_timeout=600.0)

        async def raw() -> object:
            async with session.post(url, data=body, headers=headers) as response:
                return json.loads(await response.read())

        async def seam() -> object:
            return json.loads((await transport.send(http_request)).body)

        async def full() -> object:
            return await backend.chat(chat_request)

        contenders: dict[str, Call] = {"raw aiohttp": raw, "AiohttpTransport": seam}
        contenders["DeploymentBackend"] = full
        for call in contenders.values():  # warm pools, caches and price tables
            await sequential(call, 200)

        p50: dict[str, list[float]] = {name: [] for name in contenders}
        p99: dict[str, list[float]] = {name: [] for name in contenders}
        rps: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):  # interleaved, so drift on a shared machine hits all alike
            for name, call in contenders.items():
                times = sorted(await sequential(call, calls))
                p50[name].append(statistics.median(times) * 1e3)
                p99[name].append(times[int(len(times) * 0.99)] * 1e3)
                requests_per_s, cpu_us = await throughput(call, calls * 2, concurrency)
                rps[name].append(requests_per_s)
                cpu[name].append(cpu_us)

        floor_p50 = statistics.median(p50["raw aiohttp"])
        best_rps = max(rps["raw aiohttp"])
        floor_cpu = statistics.median(cpu["raw aiohttp"])
        print(f"{calls} sequential calls and {calls * 2} at concurrency {concurrency}, ")
        print(f"{rounds} interleaved rounds: latency medians, best req/s, median client CPU\n")
        print(
            f"{'':18} {'p50 ms':>7} {'p99 ms':>7} {'+p50 ms':>8} {'req/s':>7} {'vs raw':>6}"
            f" {'CPU us':>7} {'+CPU us':>8}"
        )
        for name in contenders:
            median_p50 = statistics.median(p50[name])
            median_cpu = statistics.median(cpu[name])
            print(
                f"{name:18} {median_p50:7.3f} {statistics.median(p99[name]):7.3f} "
                f"{median_p50 - floor_p50:+8.3f} {max(rps[name]):7.0f} "
                f"{max(rps[name]) / best_rps:6.0%} {median_cpu:7.1f} {median_cpu - floor_cpu:+8.1f}"
            )
        await session.close()
        await transport.aclose()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    asyncio.run(main(options.calls, options.concurrency, options.rounds))
