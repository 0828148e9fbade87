"""The LangChain part of `llmrouter demo`: a chain and a tool-using agent through the router.

Runs offline against a `FakeProviderServer`; the OpenAI deployment fails halfway through
the agent's task and the Anthropic one finishes it, which the cost handler shows.

    >>> with FakeProviderServer() as fake:
    ...     asyncio.run(run_langchain_demo(fake, print))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from pydantic import BaseModel

from .._optional import require
from ..testing import FakeProviderServer, ModelBehavior
from .callbacks import get_router_callback
from .chat_model import ChatLLMRouter

__all__ = ["run_langchain_demo"]

# create_agent lives in the `langchain` package, not in langchain-core.
require("langchain.agents", package="langchain", extra="all", feature="the LangChain demo")


class Report(BaseModel):
    """The agent's final answer."""

    fahrenheit: float


def _model(fake: FakeProviderServer) -> ChatLLMRouter:
    return ChatLLMRouter(
        strategy="priority",
        deployments=[
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "base_url": fake.openai_base_url,
                "api_key": "sk-demo-openai",
            },
            {
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": fake.anthropic_base_url,
                "api_key": "sk-ant-demo",
            },
        ],
        max_retries=0,  # fall back at once; the demo should not wait on backoff
        temperature=0,
    )


def _describe_step(message: Any) -> str:
    if isinstance(message, AIMessage):
        served = message.response_metadata.get("deployment", "?")
        if message.tool_calls:
            calls = ", ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
            return f"model [{served}] calls {calls}"
        return f"model [{served}] answers: {message.content}"
    if isinstance(message, ToolMessage):
        return f"tool {message.name} returns {message.content}"
    return f"user: {message.content}"


async def run_langchain_demo(fake: FakeProviderServer, out: Callable[[str], None]) -> None:
    """Print a chain, then an agent surviving a provider outage, then what it all cost."""
    from langchain.agents import create_agent
    from langchain.agents.structured_output import ToolStrategy

    model = _model(fake)

    @tool
    def get_temperature(city: str) -> str:
        """Current temperature in a city, in degrees Celsius."""
        # The first provider goes down while the agent is working.
        fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=503))
        return "21"

    @tool
    def celsius_to_fahrenheit(celsius: float) -> str:
        """Convert a temperature from Celsius to Fahrenheit."""
        return str(celsius * 9 / 5 + 32)

    try:
        with get_router_callback() as cb:
            out("   a) an LCEL chain: prompt | ChatLLMRouter | StrOutputParser")
            prompt = ChatPromptTemplate.from_messages([("human", "Say hello to {name}")])
            chain = prompt | model | StrOutputParser()
            out(f"      {await chain.ainvoke({'name': 'LangChain'})}")

            out("   b) create_agent with two tools; OpenAI fails with HTTP 503 after step 1")
            agent = create_agent(
                model,
                tools=[get_temperature, celsius_to_fahrenheit],
                response_format=ToolStrategy(Report),
            )
            question = HumanMessage("How warm is 'Paris' in Fahrenheit? Use get_temperature first.")
            result = await agent.ainvoke({"messages": [question]})
            for message in result["messages"]:
                out(f"      {_describe_step(message)}")
            out(f"      structured answer: {result['structured_response']!r}")
        out("   c) get_router_callback() totals")
        for line in repr(cb).expandtabs(4).splitlines():
            out(f"      {line}")
    finally:
        fake.set_behavior("gpt-4o-mini", ModelBehavior())
        await model.aclose()
