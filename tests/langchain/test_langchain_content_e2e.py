"""ChatLLMRouter with what agents and RAG send in 2026, against the loopback fake: thinking
agents, prompt caching, PDFs and audio, on the wire each provider really takes.

FakeProviderServer signs thinking blocks and refuses (with Anthropic's 400) a tool loop
whose assistant turn comes back without its signed block, or with it modified; it writes
and reads its prompt cache at `cache_control` breakpoints as Anthropic does.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_fakes import TEST_KEY

from llmrouter_integrations.langchain import ChatLLMRouter
from llmrouter_integrations.testing import FakeProviderServer

THINKER = "claude-sonnet-4-5"
# USD per million tokens: Anthropic's Sonnet prices (cache reads 0.1x, 5-minute writes 1.25x).
SONNET_PRICE = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75}
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
WAV = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00"


def anthropic(fake: FakeProviderServer, model: str = THINKER, **fields: Any) -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "model": model,
        "base_url": fake.anthropic_base_url,
        "api_key": TEST_KEY,
        **fields,
    }


def openai(fake: FakeProviderServer, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": model,
        "base_url": fake.openai_base_url,
        "api_key": TEST_KEY,
    }


def bodies(fake: FakeProviderServer) -> list[dict[str, Any]]:
    return [request.body for request in fake.requests if isinstance(request.body, dict)]


@tool
def get_temperature(city: str) -> str:
    """Current temperature in a city, in degrees Celsius."""
    return "21"


@tool
def celsius_to_fahrenheit(celsius: float) -> str:
    """Convert a temperature from Celsius to Fahrenheit."""
    return str(celsius * 9 / 5 + 32)


QUESTION = "What is the temperature in 'Paris' (use get_temperature), in Fahrenheit?"


# ---------------------------------------------------------------------- thinking agents


def _run(agent: Any, messages: list[Any], mode: str) -> list[Any]:
    if mode == "invoke":
        return list(agent.invoke({"messages": messages})["messages"])
    # LangGraph streams the model's tokens: ChatLLMRouter._stream does the work.
    streamed, final = 0, []
    for kind, data in agent.stream({"messages": messages}, stream_mode=["messages", "values"]):
        if kind == "values":
            final = data["messages"]
        else:
            streamed += 1
    assert streamed > 3
    return list(final)


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_a_thinking_agent_completes_multi_turn_tool_use(
    fake: FakeProviderServer, mode: str
) -> None:
    """Two user turns, each a tool call and an answer: every request after the first
    replays each assistant turn's signed thinking, which the fake checks."""
    model = ChatLLMRouter(deployments=[anthropic(fake)], reasoning="low", max_retries=0)
    agent = create_agent(model, tools=[get_temperature, celsius_to_fahrenheit])
    history = _run(agent, [("user", QUESTION)], mode)
    history = _run(agent, [*history, ("user", "Now use celsius_to_fahrenheit on 21.")], mode)
    calls = [c["name"] for m in history if isinstance(m, AIMessage) for c in m.tool_calls]
    assert calls == ["get_temperature", "celsius_to_fahrenheit"]
    answer = history[-1]
    assert isinstance(answer, AIMessage) and not answer.tool_calls
    assert answer.content_blocks[0]["type"] == "reasoning"
    requests = bodies(fake)
    assert len(requests) == 4
    assert all(body["thinking"]["type"] == "enabled" for body in requests)
    for body in requests[1:]:
        for turn in body["messages"]:
            if turn["role"] == "assistant":
                assert turn["content"][0]["type"] == "thinking"
                assert turn["content"][0]["signature"]


async def test_a_streamed_thinking_reply_replays_on_the_next_turn(fake: FakeProviderServer) -> None:
    model = ChatLLMRouter(deployments=[anthropic(fake)], reasoning=2048, max_retries=0)
    bound = model.bind_tools([get_temperature])
    merged: AIMessageChunk | None = None
    async for chunk in bound.astream([HumanMessage(QUESTION)]):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None and merged.tool_calls
    assert merged.additional_kwargs["reasoning_content"]
    result = get_temperature.invoke(merged.tool_calls[0])
    final = await bound.ainvoke([HumanMessage(QUESTION), merged, result])
    assert isinstance(final, AIMessage)
    sent = bodies(fake)[-1]["messages"][1]["content"]
    assert [block["type"] for block in sent] == ["thinking", "tool_use"]


# ---------------------------------------------------------------------- prompt caching


def test_prompt_caching_second_call_reads_the_cache_and_costs_less(
    fake: FakeProviderServer,
) -> None:
    model = ChatLLMRouter(
        deployments=[anthropic(fake, price=SONNET_PRICE)], max_retries=0, max_tokens=50
    )
    rules = "You are a careful assistant. " * 400  # ~2,400 tokens: over Sonnet's 1,024 minimum
    history = [
        SystemMessage([{"type": "text", "text": rules, "cache_control": {"type": "ephemeral"}}]),
        HumanMessage("Say hi."),
    ]
    first, second = model.invoke(history), model.invoke(history)
    assert first.usage_metadata is not None and second.usage_metadata is not None
    written = first.usage_metadata["input_token_details"]["cache_creation"]
    assert written > 1024
    assert second.usage_metadata["input_token_details"]["cache_read"] == written
    assert bodies(fake)[0]["system"][0]["cache_control"] == {"type": "ephemeral"}

    def cost(message: AIMessage) -> Decimal:
        return Decimal(str(message.response_metadata["cost_usd"]))

    # The same prompt: what the second call saved is the cached tokens' write price
    # (paid by the first) less their read price, exactly.
    output_delta = (
        Decimal(second.usage_metadata["output_tokens"] - first.usage_metadata["output_tokens"])
        * Decimal("15")
        / 1_000_000
    )
    saved = Decimal(written) * (Decimal("3.75") - Decimal("0.3")) / 1_000_000
    assert cost(first) - cost(second) + output_delta == pytest.approx(saved, rel=1e-6)
    assert cost(second) < cost(first)


def test_cache_control_on_a_tool_definition_reaches_anthropic(fake: FakeProviderServer) -> None:
    color_picker = {
        "name": "color_picker",
        "description": "Pick a color.",
        "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}},
        "cache_control": {"type": "ephemeral"},
    }
    model = ChatLLMRouter(deployments=[anthropic(fake)], max_retries=0)
    model.bind_tools([color_picker]).invoke("pick one")
    assert bodies(fake)[-1]["tools"][0]["cache_control"] == {"type": "ephemeral"}


# ---------------------------------------------------------------------- documents and audio


@pytest.mark.parametrize("first", ["openai", "anthropic"])
def test_a_pdf_reaches_each_provider_in_its_own_shape(fake: FakeProviderServer, first: str) -> None:
    chain = [openai(fake), anthropic(fake, model="claude-haiku-4-5")]
    model = ChatLLMRouter(
        deployments=chain if first == "openai" else chain[::-1], strategy="priority", max_retries=0
    )
    pdf = base64.b64encode(PDF).decode()
    message = HumanMessage(
        [
            {"type": "text", "text": "Summarize:"},
            {"type": "file", "base64": pdf, "mime_type": "application/pdf", "filename": "a.pdf"},
        ]
    )
    assert model.invoke([message]).content
    part = bodies(fake)[-1]["messages"][0]["content"][1]
    if first == "openai":
        assert part == {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"},
        }
    else:
        assert part["type"] == "document"
        assert part["source"] == {"type": "base64", "media_type": "application/pdf", "data": pdf}


def test_audio_is_routed_past_a_provider_without_audio_input(fake: FakeProviderServer) -> None:
    model = ChatLLMRouter(
        deployments=[
            anthropic(fake, model="claude-haiku-4-5"),
            openai(fake, "gpt-4o-audio-preview"),
        ],
        strategy="priority",
        max_retries=0,
    )
    wav = base64.b64encode(WAV).decode()
    reply = model.invoke(
        [
            HumanMessage(
                [
                    {"type": "text", "text": "Transcribe"},
                    {"type": "audio", "base64": wav, "mime_type": "audio/wav"},
                ]
            )
        ]
    )
    assert reply.response_metadata["provider"] == "openai"
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"]
    part = bodies(fake)[-1]["messages"][0]["content"][1]
    assert part == {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}


# ---------------------------------------------------------------------- model profile


def test_the_profile_claims_reasoning_only_when_every_deployment_reasons(
    fake: FakeProviderServer,
) -> None:
    def profile(*chain: dict[str, Any]) -> dict[str, Any]:
        found = ChatLLMRouter(deployments=list(chain)).profile
        assert found is not None
        return dict(found)

    thinker = profile(anthropic(fake))
    assert thinker["reasoning_output"] is True
    assert thinker["reasoning_effort_levels"] == ["minimal", "low", "medium", "high"]
    mixed = profile(anthropic(fake), openai(fake))
    assert mixed["reasoning_output"] is False and "reasoning_effort_levels" not in mixed
    # Images a tool returns reach OpenAI too (in a user turn after the tool results).
    assert profile(openai(fake), anthropic(fake))["image_tool_message"] is True


def test_the_profile_claims_pdfs_and_audio_only_when_every_deployment_takes_them(
    fake: FakeProviderServer,
) -> None:
    def profile(*chain: dict[str, Any]) -> dict[str, Any]:
        found = ChatLLMRouter(deployments=list(chain)).profile
        assert found is not None
        return dict(found)

    both = profile(openai(fake), anthropic(fake, model="claude-haiku-4-5"))
    assert (both["pdf_inputs"], both["pdf_tool_message"], both["audio_inputs"]) == (
        True,
        True,
        False,  # Anthropic takes no audio
    )
    assert profile(openai(fake, "gpt-4o-audio-preview"))["audio_inputs"] is True
    no_pdf = profile(openai(fake), anthropic(fake, capabilities={"pdf": False}))
    assert (no_pdf["pdf_inputs"], no_pdf["pdf_tool_message"]) == (False, False)
