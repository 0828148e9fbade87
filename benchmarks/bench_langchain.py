"""ChatLLMRouter inside LangChain: per-call latency of `ainvoke` and throughput at concurrency 64.

Same loopback fake server (own process) as bench_overhead.py. For comparison, `ChatOpenAI`
measured on these machines against one loopback server: 6.4 ms per `ainvoke`, 130 req/s at
concurrency 64.

    python benchmarks/bench_langchain.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_overhead import MODEL, free_port, percentile, start_server, throughput


async def run(base: str) -> None:
    from llmrouter_integrations import Deployment
    from llmrouter_integrations.langchain import ChatLLMRouter

    model = ChatLLMRouter(
        deployments=[Deployment("openai", MODEL, api_key="sk-bench", base_url=f"{base}/v1")],
        max_tokens=60,
    )
    prompt = "Explain quantum computing in one sentence."

    async def call() -> object:
        return await model.ainvoke(prompt)

    for _ in range(50):
        await call()
    times = []
    for _ in range(1000):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    rps = statistics.median([(await throughput(call, 3000, 64))[0] for _ in range(3)])
    print(
        f"ChatLLMRouter.ainvoke: p50 {percentile(times, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(times, 0.99) * 1000:.2f} ms; {rps:.0f} req/s at concurrency 64"
    )
    await model.aclose()


def main() -> None:
    port = free_port()
    server = start_server(port)
    try:
        asyncio.run(run(f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
