"""ChatLLMRouter inside real LangChain / LangGraph programs, against the loopback fake.

Chains, `create_agent` tool loops (also with the first provider failing mid-run),
`astream_events`, LangGraph's `stream_mode="messages"`, structured output with the first
deployment down, per-call overrides and attribution.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ToolStrategy
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_fakes import ANTHROPIC_MODEL, OPENAI_MODEL, deployments, make_model
from pydantic import BaseModel, Field

from llmrouter_integrations.errors import AllDeploymentsFailedError, BadRequestError
from llmrouter_integrations.langchain import ChatLLMRouter, get_router_callback
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior
from llmrouter_integrations.types import ChatRequest

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


def paths(fake: FakeProviderServer) -> list[str]:
    return [request.path for request in fake.requests]


def down(fake: FakeProviderServer, model: str = OPENAI_MODEL, status: int = 503) -> None:
    fake.set_behavior(model, ModelBehavior(permanent_error=status))


# ---------------------------------------------------------------------------- chains


def _chain(model: ChatLLMRouter) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one line."), ("human", "Say something about {topic}")]
    )
    return prompt | model | StrOutputParser()


def test_lcel_chain_returns_text(fake: FakeProviderServer) -> None:
    answer = _chain(make_model(fake)).invoke({"topic": "lighthouses"})
    assert isinstance(answer, str)
    assert "lighthouses" in answer  # the fake echoes the question
    assert paths(fake) == [OPENAI_PATH]


async def test_lcel_chain_async_batch_and_stream(fake: FakeProviderServer) -> None:
    chain = _chain(make_model(fake))
    answers = await chain.abatch([{"topic": "owls"}, {"topic": "tides"}])
    assert ["owls" in answers[0], "tides" in answers[1]] == [True, True]
    pieces = [piece async for piece in chain.astream({"topic": "comets"})]
    assert len(pieces) > 1 and "comets" in "".join(pieces)


def test_chain_falls_back_when_the_first_provider_is_down(fake: FakeProviderServer) -> None:
    down(fake)
    answer = _chain(make_model(fake)).invoke({"topic": "volcanoes"})
    assert "volcanoes" in answer
    assert paths(fake) == [OPENAI_PATH, ANTHROPIC_PATH]


def test_all_deployments_down_raises_with_every_attempt(fake: FakeProviderServer) -> None:
    down(fake)
    down(fake, ANTHROPIC_MODEL, 500)
    with pytest.raises(AllDeploymentsFailedError) as caught:
        make_model(fake).invoke("hi")
    assert [error.deployment for error in caught.value.exceptions] == [
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
    ]


# ---------------------------------------------------------------------------- agents


@tool
def get_temperature(city: str) -> str:
    """Current temperature in a city, in degrees Celsius."""
    return "21"


@tool
def celsius_to_fahrenheit(celsius: float) -> str:
    """Convert a temperature from Celsius to Fahrenheit."""
    return str(celsius * 9 / 5 + 32)


class Report(BaseModel):
    """The final answer."""

    fahrenheit: float = Field(description="temperature in Fahrenheit")


QUESTION = "What is the temperature in 'Paris' (use get_temperature), in Fahrenheit?"


def _tool_names(messages: list[Any]) -> list[str]:
    return [call["name"] for m in messages if isinstance(m, AIMessage) for call in m.tool_calls]


def test_agent_completes_a_two_tool_task(fake: FakeProviderServer) -> None:
    """Temperature lookup, then conversion of its result, then the structured answer."""
    agent = create_agent(
        make_model(fake),
        tools=[get_temperature, celsius_to_fahrenheit],
        response_format=ToolStrategy(Report),
    )
    result = agent.invoke({"messages": [("user", QUESTION)]})
    assert _tool_names(result["messages"]) == ["get_temperature", "celsius_to_fahrenheit", "Report"]
    tool_outputs = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
    assert tool_outputs[:2] == ["21", "69.8"]
    assert result["structured_response"] == Report(fahrenheit=69.8)
    assert paths(fake) == [OPENAI_PATH] * 3


async def test_agent_survives_the_first_provider_failing_mid_run(fake: FakeProviderServer) -> None:
    """OpenAI answers the first step, then goes down; Anthropic finishes the task with the
    OpenAI-made tool-call history, and the cost callback shows the fallback."""

    @tool
    def get_temperature_then_outage(city: str) -> str:
        """Current temperature in a city, in degrees Celsius."""
        down(fake)  # the first provider fails from here on
        return "21"

    agent = create_agent(
        make_model(fake),
        tools=[get_temperature_then_outage, celsius_to_fahrenheit],
        response_format=ToolStrategy(Report),
    )
    question = QUESTION.replace("get_temperature", "get_temperature_then_outage")
    with get_router_callback() as cb:
        result = await agent.ainvoke({"messages": [("user", question)]})
    assert result["structured_response"] == Report(fahrenheit=69.8)
    served = [
        m.response_metadata["deployment"] for m in result["messages"] if isinstance(m, AIMessage)
    ]
    assert served == ["openai/gpt-4o-mini"] + ["anthropic/claude-haiku-4-5"] * 2
    assert paths(fake) == [OPENAI_PATH, OPENAI_PATH, ANTHROPIC_PATH, OPENAI_PATH, ANTHROPIC_PATH]
    assert (cb.successful_requests, cb.fallbacks, cb.failed_requests) == (3, 2, 0)
    assert set(cb.by_provider) == {"openai", "anthropic"}
    assert cb.by_provider["anthropic"].requests == 2
    assert cb.by_deployment["openai/gpt-4o-mini"].failed_attempts == 2
    assert [e["type"] for e in cb.events] == ["fallback", "fallback"]


def test_fallback_keeps_bound_tools(fake: FakeProviderServer) -> None:
    """Unlike `with_fallbacks` + `bind_tools`, the backup deployment gets the tools."""
    down(fake)
    bound = make_model(fake).bind_tools([get_temperature], tool_choice="get_temperature")
    reply = bound.invoke("How warm is it in 'Oslo'?")
    assert reply.tool_calls[0]["name"] == "get_temperature"
    assert reply.tool_calls[0]["args"] == {"city": "Oslo"}
    assert reply.response_metadata["deployment"] == "anthropic/claude-haiku-4-5"
    anthropic_body = fake.requests[-1].body
    assert [t["name"] for t in anthropic_body["tools"]] == ["get_temperature"]
    assert anthropic_body["tool_choice"] == {"type": "tool", "name": "get_temperature"}


# ------------------------------------------------------------------- streaming paths


async def test_astream_events_through_a_chain(fake: FakeProviderServer) -> None:
    down(fake)
    chain = _chain(make_model(fake))
    tokens: list[str] = []
    custom: list[tuple[str, dict[str, Any]]] = []
    ends: list[AIMessage] = []
    async for event in chain.astream_events({"topic": "glaciers"}, version="v2"):
        if event["event"] == "on_chat_model_stream":
            tokens.append(event["data"]["chunk"].content)
        elif event["event"] == "on_custom_event":
            custom.append((event["name"], event["data"]))
        elif event["event"] == "on_chat_model_end":
            ends.append(event["data"]["output"])
    assert "glaciers" in "".join(tokens)
    assert [name for name, _ in custom] == ["llmrouter.fallback"]
    assert custom[0][1]["deployment"] == "openai/gpt-4o-mini"
    assert custom[0][1]["to"] == "anthropic/claude-haiku-4-5"
    assert ends[0].response_metadata["model_name"] == ANTHROPIC_MODEL
    assert ends[0].usage_metadata is not None and ends[0].usage_metadata["output_tokens"] > 0


def test_langgraph_stream_mode_messages(fake: FakeProviderServer) -> None:
    agent = create_agent(make_model(fake), tools=[get_temperature])
    chunks: list[AIMessageChunk] = []
    for message, metadata in agent.stream(
        {"messages": [("user", "Temperature in 'Rome' via get_temperature?")]},
        stream_mode="messages",
    ):
        if isinstance(message, AIMessageChunk):
            assert metadata["langgraph_node"] == "model"
            chunks.append(message)
    # LangGraph runs the model through `_stream`: the upstream requests were streamed.
    assert [request.stream for request in fake.requests] == [True, True]
    assert any(chunk.tool_call_chunks for chunk in chunks)
    assert "21" in "".join(str(chunk.content) for chunk in chunks)
    finals = [chunk for chunk in chunks if chunk.usage_metadata]
    assert len(finals) == 2  # usage exactly once per model call
    assert all(chunk.response_metadata["model_name"] == OPENAI_MODEL for chunk in finals)


# ------------------------------------------------------------------ structured output


class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output_when_the_first_deployment_is_down(
    fake: FakeProviderServer, method: str
) -> None:
    down(fake)
    structured = make_model(fake).with_structured_output(Joke, method=method, include_raw=True)
    result = structured.invoke("A joke about cats as JSON with a 'setup' and a 'punchline'.")
    assert isinstance(result["parsed"], Joke)
    assert result["parsing_error"] is None
    assert result["raw"].response_metadata["deployment"] == "anthropic/claude-haiku-4-5"
    assert paths(fake) == [OPENAI_PATH, ANTHROPIC_PATH]


async def test_structured_output_streams_whole_objects(fake: FakeProviderServer) -> None:
    structured = make_model(fake).with_structured_output(Joke, strict=True)
    parsed = [item async for item in structured.astream("A joke about 'setup' and 'punchline'")]
    assert parsed and all(isinstance(item, Joke) for item in parsed)
    assert fake.requests[0].body["tools"][0]["function"]["strict"] is True


# ------------------------------------------------------------- overrides and attribution


def test_per_call_overrides_reach_the_wire(fake: FakeProviderServer) -> None:
    model = make_model(fake, temperature=0.1)
    reply = model.invoke("hi", model="gpt-4o", temperature=0.7, max_tokens=12)
    body = fake.requests[-1].body
    assert (body["model"], body["temperature"]) == ("gpt-4o", 0.7)
    assert reply.response_metadata["model_name"] == "gpt-4o"
    model.invoke("hi", deployments=["anthropic/claude-haiku-4-5"])
    assert paths(fake)[-1] == ANTHROPIC_PATH
    assert fake.requests[-1].body["temperature"] == 0.1


def test_config_metadata_and_tags_reach_the_router(
    fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(fake)
    seen: list[ChatRequest] = []
    build = model.llm_router.build_request

    def spy(*args: Any, **kwargs: Any) -> ChatRequest:
        request = build(*args, **kwargs)
        seen.append(request)
        return request

    monkeypatch.setattr(model.llm_router, "build_request", spy)
    config: Any = {"metadata": {"user": "alice", "team": "search"}, "tags": ["beta"]}
    model.invoke("hi", config=config)
    list(model.stream("hi", config=config))
    _chain(model).invoke({"topic": "x"}, config=config)
    assert len(seen) == 3
    for request in seen:
        assert request.user == "alice"
        assert "beta" in request.tags
        assert request.metadata == {"user": "alice", "team": "search"}
    assert fake.requests[0].body["user"] == "alice"
    model.invoke("hi", config=config, user="bob")  # an explicit option wins
    assert seen[-1].user == "bob"


def test_a_bad_request_is_not_retried_elsewhere(fake: FakeProviderServer) -> None:
    fake.set_behavior(OPENAI_MODEL, ModelBehavior(permanent_error=400))
    with pytest.raises(BadRequestError):
        make_model(fake).invoke([HumanMessage("hi")])
    assert paths(fake) == [OPENAI_PATH]


def test_token_estimates_need_no_download(fake: FakeProviderServer) -> None:
    model = make_model(fake)
    few = model.get_num_tokens_from_messages([HumanMessage("hi")])
    many = model.get_num_tokens_from_messages([HumanMessage("hi " * 200)], tools=[get_temperature])
    assert 0 < few < many
    assert model.get_num_tokens("hello world") > 0


async def test_demo_shows_the_agent_surviving_an_outage(fake: FakeProviderServer) -> None:
    from llmrouter_integrations.langchain.demo import run_langchain_demo

    lines: list[str] = []
    await run_langchain_demo(fake, lines.append)
    text = "\n".join(lines)
    assert "model [openai/gpt-4o-mini] calls get_temperature" in text
    assert "model [anthropic/claude-haiku-4-5] calls celsius_to_fahrenheit" in text
    assert "structured answer: Report(fahrenheit=69.8)" in text
    assert "Fallbacks: 2" in text
    assert fake.behavior(OPENAI_MODEL).permanent_error is None  # the demo cleans up


# ------------------------------------------------------------------- configuration


def test_profile_claims_only_what_every_deployment_supports(fake: FakeProviderServer) -> None:
    both = make_model(fake).profile
    assert both is not None
    # gpt-4o-mini and Claude both read PDFs; neither hears audio (the catalog's pdf/audio).
    assert (both["tool_calling"], both["structured_output"], both["pdf_inputs"]) == (
        True,
        True,
        True,
    )
    assert both["audio_inputs"] is False
    assert both["max_input_tokens"] == 128_000  # gpt-4o-mini's window, the smaller one
    chain = deployments(fake)
    chain[1]["capabilities"] = {"json_schema": False, "vision": False}
    limited = ChatLLMRouter(strategy="priority", deployments=chain, max_retries=0).profile
    assert limited is not None
    assert (limited["structured_output"], limited["image_inputs"]) == (False, False)


@pytest.mark.parametrize("native", [True, False])
def test_create_agent_picks_its_strategy_from_the_profile(
    fake: FakeProviderServer, native: bool
) -> None:
    """With native structured output on every deployment the agent asks for JSON schema
    output; otherwise it falls back to a forced tool call, which every deployment has."""
    chain = deployments(fake)
    if not native:
        chain[1]["capabilities"] = {"json_schema": False}
    agent = create_agent(
        ChatLLMRouter(strategy="priority", deployments=chain, max_retries=0), response_format=Report
    )
    result = agent.invoke({"messages": [("user", "It is 70 degrees. Report it.")]})
    assert isinstance(result["structured_response"], Report)
    body = fake.requests[0].body
    assert ("response_format" in body) is native
    assert ("tool_choice" in body) is not native


def test_wraps_an_existing_router(fake: FakeProviderServer) -> None:
    from llmrouter_integrations import Router

    router = Router(strategy="priority", deployments=deployments(fake))
    model = ChatLLMRouter(router=router)
    assert model.llm_router is router
    assert model.invoke("hi").response_metadata["deployment"] == "openai/gpt-4o-mini"
    with pytest.raises(ValueError, match="either router"):
        ChatLLMRouter(router=router, deployments=deployments(fake))
    with pytest.raises(ValueError, match="needs deployments"):
        ChatLLMRouter()


def test_cache_argument_goes_to_the_right_layer(fake: FakeProviderServer) -> None:
    from langchain_core.caches import InMemoryCache

    langchain_cache = InMemoryCache()
    assert make_model(fake, cache=langchain_cache).cache is langchain_cache
    assert make_model(fake, cache=False).cache is False
    routed = make_model(fake, cache="memory")
    assert (routed.cache, routed.router_cache) == (None, "memory")


def test_with_fallbacks_still_binds_tools_on_every_model(fake: FakeProviderServer) -> None:
    """Users who also wrap it in `with_fallbacks` keep their tools on the fallback model:
    the return annotations of bind_tools/with_structured_output resolve at runtime."""
    from langchain_core.runnables import RunnableWithFallbacks

    wrapped = make_model(fake).with_fallbacks([make_model(fake, first="anthropic")])
    assert isinstance(wrapped.bind_tools([get_temperature]), RunnableWithFallbacks)
    assert isinstance(wrapped.with_structured_output(Joke), RunnableWithFallbacks)


class _RunIds(BaseCallbackHandler):
    """The chat model runs started, and the run each router event was sent for."""

    def __init__(self) -> None:
        self.started: list[UUID] = []
        self.custom: list[tuple[str, UUID]] = []

    def on_chat_model_start(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self.started.append(run_id)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.custom.append((name, run_id))


@pytest.mark.parametrize("call", ["invoke", "ainvoke", "stream", "astream", "chain_astream"])
async def test_router_events_name_the_chat_model_run_on_every_path(
    fake: FakeProviderServer, call: str
) -> None:
    down(fake)  # the first deployment fails: the router falls back and says so
    model = make_model(fake)
    handler = _RunIds()
    config: Any = {"callbacks": [handler]}
    if call == "invoke":
        model.invoke("hi", config=config)
    elif call == "ainvoke":
        await model.ainvoke("hi", config=config)
    elif call == "stream":
        assert list(model.stream("hi", config=config))
    elif call == "astream":
        assert [c async for c in model.astream("hi", config=config)]
    else:
        assert [c async for c in _chain(model).astream({"topic": "owls"}, config=config)]
    assert [name for name, _ in handler.custom] == ["llmrouter.fallback"]
    assert [run for _, run in handler.custom] == handler.started  # one run, the model's


async def test_astream_events_custom_events_carry_the_model_run_id(
    fake: FakeProviderServer,
) -> None:
    down(fake)
    starts: list[str] = []
    custom: list[str] = []
    async for event in _chain(make_model(fake)).astream_events({"topic": "x"}, version="v2"):
        if event["event"] == "on_chat_model_start":
            starts.append(event["run_id"])
        elif event["event"] == "on_custom_event":
            custom.append(event["run_id"])
    assert len(starts) == 1 and custom and set(custom) == set(starts)


@pytest.mark.parametrize(
    "call", ["invoke", "ainvoke", "stream", "astream", "batch", "abatch", "chain_astream"]
)
async def test_model_level_callbacks_get_router_events_on_every_path(
    fake: FakeProviderServer, call: str
) -> None:
    # ChatLLMRouter(callbacks=[handler]): LangChain hands `_stream` no run manager, and the
    # call's config holds only the caller's handlers; the model's own must hear events too.
    down(fake)
    handler = _RunIds()
    model = make_model(fake, callbacks=[handler])
    if call == "invoke":
        model.invoke("hi")
    elif call == "ainvoke":
        await model.ainvoke("hi")
    elif call == "stream":
        assert list(model.stream("hi"))
    elif call == "astream":
        assert [c async for c in model.astream("hi")]
    elif call == "batch":
        assert len(model.batch(["hi", "ho"])) == 2
    elif call == "abatch":
        assert len(await model.abatch(["hi", "ho"])) == 2
    else:
        assert [c async for c in _chain(model).astream({"topic": "owls"})]
    calls = 2 if call in ("batch", "abatch") else 1
    assert [name for name, _ in handler.custom] == ["llmrouter.fallback"] * calls
    assert sorted(run for _, run in handler.custom) == sorted(handler.started)


def test_a_handler_given_twice_hears_each_event_once(fake: FakeProviderServer) -> None:
    down(fake)
    handler = _RunIds()
    model = make_model(fake, callbacks=[handler])
    assert list(model.stream("hi", config={"callbacks": [handler]}))
    assert [name for name, _ in handler.custom] == ["llmrouter.fallback"]
