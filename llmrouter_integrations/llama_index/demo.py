"""The LlamaIndex part of `llmrouter demo`: a query engine and an agent on a failing provider.

>>> with FakeProviderServer() as fake:
...     run_llamaindex_demo(fake, print)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import Callable, Coroutine
from typing import Any

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index_instrumentation import get_dispatcher

from ..layers.retry import RetryPolicy
from ..router import Router
from ..testing import FakeProviderServer, ModelBehavior
from .events import RouterCostEventHandler, RouterInstrumentationEvent
from .llm import LLMRouter

__all__ = ["run_llamaindex_demo"]

PRIMARY_MODEL = "gpt-4o-mini"
BACKUP_MODEL = "claude-haiku-4-5"
DOCUMENTS = [
    "The Eiffel Tower is 330 metres tall and stands in Paris.",
    "Mount Fuji is the highest mountain in Japan at 3,776 metres.",
    "The Amazon river carries more water than any other river on Earth.",
]
QUESTION = "How tall is the Eiffel Tower?"
TASK = "Use add and multiply on 3 and 4."


def demo_reply(body: dict[str, Any]) -> str:
    """What the demo's fake model says in text: answers from retrieved context, or from
    tool results. (Tool calls themselves come from the fake's own schema-driven logic.)"""
    messages = body.get("messages") or []
    texts = [_text(m.get("content")) for m in messages]
    tool_results = [
        _text(m.get("content")) for m in messages if m.get("role") == "tool"
    ] + _anthropic_tool_results(messages)
    if tool_results:
        return "The tools returned " + " and ".join(tool_results) + "."
    prompt = texts[-1] if texts else ""
    if "Context information" in prompt:
        question = prompt.rsplit("Query:", 1)[-1]
        words = set(re.findall(r"\w+", question.lower()))
        sentences = [s for s in DOCUMENTS if s in prompt]
        best = max(sentences, key=lambda s: len(words & set(re.findall(r"\w+", s.lower()))))
        return best
    return "Echo: " + prompt


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def _anthropic_tool_results(messages: list[dict[str, Any]]) -> list[str]:
    results = []
    for message in messages:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                results.append(_text(block.get("content")))
    return results


class _EventPrinter(BaseEventHandler):
    """Prints the router's retry and fallback events as LlamaIndex instrumentation sees them."""

    out: Any

    @classmethod
    def class_name(cls) -> str:
        return "DemoEventPrinter"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if not isinstance(event, RouterInstrumentationEvent):
            return
        kind = event.router_event_type
        if kind == "fallback":
            self.out(f"      router event: fallback {event.deployment} -> {event.data.get('to')}")
        elif kind != "cost":
            error = str(event.data.get("error", "")).split(":", 1)[0]
            self.out(f"      router event: {kind} {event.deployment} ({error})")


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, also from code that already runs an event loop (e.g. Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def run_llamaindex_demo(fake: FakeProviderServer, out: Callable[[str], None]) -> None:
    """Show `Settings.llm = LLMRouter(...)` answering a query engine and an agent offline,
    with the OpenAI deployment failing in the middle of the agent's run."""
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.tools import FunctionTool

    saved_behaviors = {m: fake.behavior(m) for m in (PRIMARY_MODEL, BACKUP_MODEL)}
    saved_settings = (Settings._llm, Settings._embed_model)
    for model in (PRIMARY_MODEL, BACKUP_MODEL):
        fake.set_behavior(model, ModelBehavior(reply=demo_reply, parallel_tool_calls_n=2))
    router = Router(
        strategy="priority",
        deployments=[
            {
                "provider": "openai",
                "model": PRIMARY_MODEL,
                "api_key": "sk-demo-openai",
                "base_url": fake.openai_base_url,
            },
            {
                "provider": "anthropic",
                "model": BACKUP_MODEL,
                "api_key": "sk-ant-demo",
                "base_url": fake.anthropic_base_url,
            },
        ],
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.05, jitter=0),
    )
    costs = RouterCostEventHandler()
    printer = _EventPrinter(out=out)
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(costs)
    dispatcher.add_event_handler(printer)
    try:
        Settings.llm = LLMRouter(router=router)
        Settings.embed_model = MockEmbedding(embed_dim=8)
        out("   >>> Settings.llm = LLMRouter(router=router)   # openai first, anthropic as backup")
        out("")
        out(f"   a) Query engine over {len(DOCUMENTS)} documents")
        index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
        response = index.as_query_engine(similarity_top_k=3).query(QUESTION)
        out(f"      Q: {QUESTION}")
        out(f"      A: {response}")
        out("")

        async def add(a: int, b: int) -> int:
            """Add two integers."""
            # The OpenAI deployment goes down while the agent is working.
            fake.update_behavior(PRIMARY_MODEL, permanent_error=503)
            return a + b

        async def multiply(a: int, b: int) -> int:
            """Multiply two integers."""
            return a * b

        out("   b) FunctionAgent with two tools; OpenAI fails after the first turn")
        out(f"      Q: {TASK}")
        agent = FunctionAgent(
            tools=[FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=multiply)],
            llm=Settings.llm,
        )

        async def run_agent() -> Any:
            handler = agent.run(user_msg=TASK)
            async for event in handler.stream_events():
                if isinstance(event, ToolCallResult):
                    arguments = ", ".join(f"{k}={v}" for k, v in event.tool_kwargs.items())
                    out(f"      tool {event.tool_name}({arguments}) -> {event.tool_output.content}")
                    if event.tool_name == "add":
                        out("      (meanwhile the fake OpenAI starts failing with HTTP 503)")
            return await handler

        result = _run(run_agent())
        out(f"      A: {result.response.content}   [served by {result.raw['deployment']}]")
        out("")
        out("   c) Cost seen by RouterCostEventHandler (a LlamaIndex event handler)")
        for provider, usd in sorted(costs.by_provider().items()):
            out(f"      {provider:<10} ${usd:.6f}")
        out(f"      {'total':<10} ${costs.total_usd:.6f} over {costs.requests} LLM calls")
    finally:
        dispatcher.event_handlers = [
            h for h in dispatcher.event_handlers if h is not costs and h is not printer
        ]
        Settings._llm, Settings._embed_model = saved_settings
        for model, behavior in saved_behaviors.items():
            fake.set_behavior(model, behavior)
        router.close()
