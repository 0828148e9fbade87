"""Client CPU per streamed chunk: Router.astream and ChatLLMRouter.astream against raw aiohttp.

Runs FakeProviderServer in its own process, streaming a reply of REPLY_WORDS words (one SSE
event each, plus the final usage event), and measures this process's CPU time
(`time.process_time`) per content chunk for:

- raw aiohttp (the floor): POST, read `data:` lines, `json.loads` each, collect the text;
- `Router.astream` (one deployment), iterating its `ChatChunk`s;
- `ChatLLMRouter.astream` (LangChain), iterating its `AIMessageChunk`s;
- `ChatOpenAI.astream` (langchain-openai, when installed: `pip install langchain-openai`),
  the same LangChain loop through the OpenAI SDK, for comparison.

Contenders take turns in interleaved rounds, so drift on a shared machine hits each alike.

    python benchmarks/bench_stream.py            # ~20 s
    python benchmarks/bench_stream.py --quick    # ~5 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench_overhead import MODEL, free_port, start_server

REPLY_WORDS = 200
REPLY = " ".join(f"word{i % 50}" for i in range(REPLY_WORDS))
PROMPT = "Explain quantum computing in one sentence."


async def cpu_per_chunk(stream_once: Callable[[], Awaitable[int]], streams: int) -> float:
    """CPU microseconds per content chunk over `streams` streams (after a warm-up)."""
    for _ in range(5):
        await stream_once()
    chunks = 0
    start = time.process_time()
    for _ in range(streams):
        chunks += await stream_once()
    return (time.process_time() - start) / chunks * 1e6


async def run(base: str, streams: int, rounds: int) -> dict[str, list[float]]:
    import aiohttp

    from llmrouter_integrations import Deployment, Router
    from llmrouter_integrations.langchain import ChatLLMRouter

    url = f"{base}/v1/chat/completions"
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_completion_tokens": 400,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    payload = json.dumps(body).encode()
    deployment = Deployment(
        provider="openai", model=MODEL, api_key="sk-bench", base_url=f"{base}/v1"
    )
    results: dict[str, list[float]] = {"raw aiohttp": [], "Router.astream": []}
    results["ChatLLMRouter.astream"] = []

    async with aiohttp.ClientSession() as session:

        async def raw() -> int:
            chunks = 0
            parts: list[str] = []
            async with session.post(url, data=payload, headers=headers) as response:
                async for line in response.content:
                    if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                        continue
                    event = json.loads(line[6:])
                    for choice in event.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            parts.append(text)
                            chunks += 1
            assert "".join(parts) == REPLY
            return chunks

        router = Router(deployments=[deployment])

        async def via_router() -> int:
            chunks = 0
            async for chunk in router.astream(PROMPT, max_tokens=400):
                chunks += bool(chunk.text)
            return chunks

        chat = ChatLLMRouter(router=router, max_tokens=400)

        async def via_langchain() -> int:
            chunks = 0
            async for chunk in chat.astream(PROMPT):
                chunks += bool(chunk.content)
            return chunks

        calls = {
            "raw aiohttp": raw,
            "Router.astream": via_router,
            "ChatLLMRouter.astream": via_langchain,
        }
        openai_chat = _chat_openai(base)
        if openai_chat is not None:

            async def via_chat_openai() -> int:
                chunks = 0
                async for chunk in openai_chat.astream(PROMPT):
                    chunks += bool(chunk.content)
                return chunks

            calls["ChatOpenAI.astream"] = via_chat_openai
            results["ChatOpenAI.astream"] = []
        for _ in range(rounds):
            for name, call in calls.items():
                results[name].append(await cpu_per_chunk(call, streams))
        await router.aclose()
    return results


def _chat_openai(base: str) -> Any:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        print("langchain-openai is not installed: ChatOpenAI.astream not measured")
        return None
    return ChatOpenAI(
        model=MODEL,
        api_key="sk-bench",
        base_url=f"{base}/v1",
        max_tokens=400,
        stream_usage=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    streams, rounds = (20, 3) if args.quick else (50, 7)
    port = free_port()
    server = start_server(port, {"reply": REPLY})
    try:
        results = asyncio.run(run(f"http://127.0.0.1:{port}", streams, rounds))
    finally:
        server.terminate()
        server.wait()
    floor = statistics.median(results["raw aiohttp"])
    print(
        f"loopback fake server in its own process; {REPLY_WORDS} content chunks per stream, "
        f"{streams} streams x {rounds} interleaved rounds; python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'client':<24} {'CPU us/chunk (median)':>22} {'range':>16} {'x raw':>6}")
    for name, values in results.items():
        median = statistics.median(values)
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"{name:<24} {median:22.1f} {spread:>16} {median / floor:6.2f}")


if __name__ == "__main__":
    main()
