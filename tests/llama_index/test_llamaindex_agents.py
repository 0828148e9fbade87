"""FunctionAgent, ReActAgent and AgentWorkflow finish a two-tool task through the router,
also when the first provider starts failing in the middle of the run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from llama_index.core.agent.workflow import (
    AgentWorkflow,
    FunctionAgent,
    ReActAgent,
    ToolCallResult,
)
from llama_index.core.tools import FunctionTool
from llamaindex_support import EventRecorder, anthropic_deployment, make_router, openai_deployment

from llmrouter_integrations.llama_index import (
    LLMRouter,
    RouterCostEvent,
    RouterFallbackEvent,
    RouterRetryEvent,
)
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

QUESTION = "Use add and multiply on 3 and 4."


def _message_texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of each message in an OpenAI or Anthropic request body."""
    out = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        out.append((message.get("role", ""), content or ""))
    return out


def react_script(body: dict[str, Any]) -> str:
    """A model that follows ReAct: add, then multiply, then answer from the observations."""
    observations = [
        text
        for role, text in _message_texts(body)
        if role == "user" and text.startswith("Observation:")
    ]
    if not observations:
        return 'Thought: I need to add first.\nAction: add\nAction Input: {"a": 3, "b": 4}'
    if len(observations) == 1:
        return 'Thought: Now multiply.\nAction: multiply\nAction Input: {"a": 3, "b": 4}'
    results = ", ".join(o.removeprefix("Observation:").strip() for o in observations)
    return (
        f"Thought: I can answer without using any more tools.\nAnswer: The results are {results}."
    )


@dataclass
class Scenario:
    """Two deployments on the fake; `break_primary()` makes the first one fail from now on."""

    fake: FakeProviderServer
    primary_model: str
    llm: LLMRouter
    tool_calls: list[str] = field(default_factory=list)
    fail_after_first_tool: bool = False

    def tools(self) -> list[FunctionTool]:
        def add(a: int, b: int) -> int:
            """Add two integers."""
            self._tool_ran("add")
            return a + b

        def multiply(a: int, b: int) -> int:
            """Multiply two integers."""
            self._tool_ran("multiply")
            return a * b

        return [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=multiply)]

    def _tool_ran(self, name: str) -> None:
        self.tool_calls.append(name)
        if self.fail_after_first_tool and len(self.tool_calls) == 1:
            # The provider that answered the first turn goes down mid-run.
            self.fake.update_behavior(self.primary_model, permanent_error=500)


@pytest.fixture(params=[False, True], ids=["healthy", "primary-fails-mid-run"])
def scenario(fake: FakeProviderServer, request: pytest.FixtureRequest) -> Iterator[Scenario]:
    failing = bool(request.param)
    suffix = request.node.name.replace("[", "-").replace("]", "")
    primary, backup = f"primary-{suffix}", f"backup-{suffix}"
    react = "react" in request.node.name
    behavior = (
        ModelBehavior(reply=react_script) if react else ModelBehavior(parallel_tool_calls_n=2)
    )
    fake.set_behavior(primary, behavior)
    fake.set_behavior(backup, behavior)
    router = make_router(
        openai_deployment(fake, model=primary, name="primary"),
        anthropic_deployment(fake, model=backup, name="backup"),
    )
    llm = LLMRouter(router=router)
    try:
        yield Scenario(fake, primary, llm, fail_after_first_tool=failing)
    finally:
        router.close()


async def run(agent: Any) -> tuple[Any, list[Any]]:
    handler = agent.run(user_msg=QUESTION)
    events = [event async for event in handler.stream_events()]
    return await handler, events


def check_run(scenario: Scenario, events: list[Any], recorder: EventRecorder, answer: str) -> None:
    results = {e.tool_name: e.tool_output.content for e in events if isinstance(e, ToolCallResult)}
    assert results == {"add": "7", "multiply": "12"}
    assert sorted(scenario.tool_calls) == ["add", "multiply"]
    assert "7" in answer and "12" in answer
    fallbacks = [e for e in recorder.events if isinstance(e, RouterFallbackEvent)]
    costs = [e for e in recorder.events if isinstance(e, RouterCostEvent)]
    assert costs[0].deployment == "primary"
    if scenario.fail_after_first_tool:
        assert fallbacks and fallbacks[0].deployment == "primary"
        retries = [e for e in recorder.events if isinstance(e, RouterRetryEvent)]
        assert retries and retries[0].deployment == "primary"
        assert fallbacks[0].data["to"] == "backup"
        assert costs[-1].deployment == "backup" and costs[-1].provider == "anthropic"
    else:
        assert not fallbacks
        assert {c.deployment for c in costs} == {"primary"}


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "not-streaming"])
async def test_function_agent(scenario: Scenario, recorder: EventRecorder, streaming: bool) -> None:
    agent = FunctionAgent(tools=scenario.tools(), llm=scenario.llm, streaming=streaming)
    result, events = await run(agent)
    check_run(scenario, events, recorder, str(result.response.content))
    assert result.raw["usage"]["prompt_tokens"] > 0
    json.dumps(result.raw)  # agents put raw into events; it must serialise


async def test_react_agent(scenario: Scenario, recorder: EventRecorder) -> None:
    agent = ReActAgent(tools=scenario.tools(), llm=scenario.llm)
    result, events = await run(agent)
    check_run(scenario, events, recorder, str(result.response.content))
    assert "The results are 7, 12" in str(result.response.content)


async def test_agent_workflow(scenario: Scenario, recorder: EventRecorder) -> None:
    workflow = AgentWorkflow.from_tools_or_functions(scenario.tools(), llm=scenario.llm)
    assert isinstance(workflow.agents[workflow.root_agent], FunctionAgent)
    result, events = await run(workflow)
    check_run(scenario, events, recorder, str(result.response.content))
