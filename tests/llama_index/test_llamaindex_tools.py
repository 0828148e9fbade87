"""Tool calling and structured output through LLMRouter: what reaches the wire and what comes back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llamaindex_support import anthropic_deployment, make_router, openai_deployment
from pydantic import BaseModel

from llmrouter_integrations.llama_index import LLMRouter
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=multiply)]


class Capital(BaseModel):
    """A country's capital city."""

    city: str
    country: str


@pytest.fixture(params=["openai", "anthropic"])
def llm(fake: FakeProviderServer, request: pytest.FixtureRequest) -> Iterator[LLMRouter]:
    model = f"tools-{request.param}"
    fake.set_behavior(model, ModelBehavior(parallel_tool_calls_n=2))
    make = openai_deployment if request.param == "openai" else anthropic_deployment
    router = make_router(make(fake, model=model))
    try:
        yield LLMRouter(router=router)
    finally:
        router.close()


def last_body(fake: FakeProviderServer) -> dict:
    body = fake.requests[-1].body
    assert isinstance(body, dict)
    return body


def test_chat_with_tools_sends_tools_and_returns_tool_calls(
    llm: LLMRouter, fake: FakeProviderServer
) -> None:
    history = [ChatMessage(role="system", content="You are a calculator.")]
    response = llm.chat_with_tools(
        TOOLS, user_msg="add 3 and 4", chat_history=history, allow_parallel_tool_calls=True
    )
    calls = llm.get_tool_calls_from_response(response)
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [
        ("add", {"a": 3, "b": 4}),
        ("multiply", {"a": 3, "b": 4}),
    ]
    assert all(c.tool_id for c in calls)
    assert len(history) == 1, "the caller's chat history must not be mutated"
    names = {t.get("name") or t["function"]["name"] for t in last_body(fake)["tools"]}
    assert names == {"add", "multiply"}


async def test_parallel_calls_trimmed_when_not_allowed(
    llm: LLMRouter, fake: FakeProviderServer
) -> None:
    response = await llm.achat_with_tools(TOOLS, user_msg="multiply 2 by 5")
    calls = llm.get_tool_calls_from_response(response)
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("multiply", {"a": 2, "b": 5})]
    body = last_body(fake)
    if "parallel_tool_calls" in body:  # OpenAI
        assert body["parallel_tool_calls"] is False
    else:  # Anthropic
        assert body["tool_choice"]["disable_parallel_tool_use"] is True


def test_tool_choice_by_name_and_tool_required_reach_the_wire(
    llm: LLMRouter, fake: FakeProviderServer
) -> None:
    response = llm.chat_with_tools(TOOLS, user_msg="add 1 and 2", tool_choice="multiply")
    assert llm.get_tool_calls_from_response(response)[0].tool_name == "multiply"
    choice = last_body(fake)["tool_choice"]
    assert choice in ({"type": "function", "function": {"name": "multiply"}},) or (
        choice["type"] == "tool" and choice["name"] == "multiply"
    )
    llm.chat_with_tools(TOOLS, user_msg="hello", tool_required=True)
    choice = last_body(fake)["tool_choice"]
    assert choice == "required" or choice["type"] == "any"


def test_stream_chat_with_tools_accumulates_tool_call_blocks(llm: LLMRouter) -> None:
    chunks = list(
        llm.stream_chat_with_tools(TOOLS, user_msg="add 3 and 4", allow_parallel_tool_calls=True)
    )
    for chunk in chunks:  # FunctionAgent reads every chunk this way: it must never raise
        llm.get_tool_calls_from_response(chunk, error_on_no_tool_call=False)
    blocks = [b for b in chunks[-1].message.blocks if isinstance(b, ToolCallBlock)]
    assert [(b.tool_name, b.tool_kwargs) for b in blocks] == [
        ("add", {"a": 3, "b": 4}),
        ("multiply", {"a": 3, "b": 4}),
    ]
    assert chunks[-1].raw["usage"]["completion_tokens"] > 0


async def test_tool_results_go_back_and_the_model_answers(llm: LLMRouter) -> None:
    first = await llm.achat_with_tools(TOOLS, user_msg="add 3 and 4")
    (call,) = llm.get_tool_calls_from_response(first)
    history = [
        ChatMessage(role="user", content="add 3 and 4"),
        first.message,
        ChatMessage(role="tool", content="7", additional_kwargs={"tool_call_id": call.tool_id}),
    ]
    second = await llm.achat_with_tools(TOOLS, chat_history=history)
    assert second.message.content == "The tool returned: 7"
    assert llm.get_tool_calls_from_response(second, error_on_no_tool_call=False) == []


def test_predict_and_call_runs_the_tool(llm: LLMRouter) -> None:
    output = llm.predict_and_call(TOOLS, user_msg="multiply 6 and 7")
    assert output.response == "42"


async def test_structured_predict_forces_the_tool(llm: LLMRouter, fake: FakeProviderServer) -> None:
    prompt = PromptTemplate("Fill in the record: city is '{city}', country is '{country}'.")
    capital = llm.structured_predict(Capital, prompt, city="Paris", country="France")
    assert capital == Capital(city="Paris", country="France")
    choice = last_body(fake)["tool_choice"]
    assert choice == "required" or choice["type"] in ("any", "tool")
    capital = await llm.astructured_predict(Capital, prompt, city="Rome", country="Italy")
    assert capital == Capital(city="Rome", country="Italy")


async def test_stream_structured_predict_ends_with_the_full_object(llm: LLMRouter) -> None:
    # As LlamaIndex's own OpenAI LLM: partial objects fill in, the last one is complete.
    prompt = PromptTemplate("Fill in the record: city is '{city}', country is '{country}'.")
    partials = list(llm.stream_structured_predict(Capital, prompt, city="Oslo", country="Norway"))
    assert partials and partials[-1] == Capital(city="Oslo", country="Norway")
    stream = await llm.astream_structured_predict(Capital, prompt, city="Bern", country="Swiss")
    apartials = [partial async for partial in stream]
    assert apartials and apartials[-1] == Capital(city="Bern", country="Swiss")


def test_as_structured_llm(llm: LLMRouter) -> None:
    structured = llm.as_structured_llm(Capital)
    response = structured.chat(
        [ChatMessage(role="user", content="city is 'Lima', country is 'Peru'.")]
    )
    assert response.raw == Capital(city="Lima", country="Peru")
