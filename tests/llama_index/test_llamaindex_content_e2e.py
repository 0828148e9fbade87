"""LLMRouter with thinking, prompt caching, PDFs and audio, against the loopback fake.

FakeProviderServer signs thinking blocks and refuses (with Anthropic's 400) a tool loop
whose assistant turn comes back without its signed block; it writes and reads its prompt
cache at `cache_control` breakpoints as Anthropic does.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    TextBlock,
    ThinkingBlock,
)
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context
from llamaindex_support import anthropic_deployment, make_router, openai_deployment

from llmrouter_integrations.llama_index import LLMRouter
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

SONNET_PRICE = {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75}
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
WAV = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00"


def bodies(fake: FakeProviderServer, model: str) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests_for(model) if isinstance(r.body, dict)]


def tools() -> list[FunctionTool]:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    return [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=multiply)]


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "not-streaming"])
async def test_a_thinking_function_agent_completes_multi_turn_tool_use(
    fake: FakeProviderServer, streaming: bool
) -> None:
    """Two user turns in one context, each a tool call and an answer: every request after
    the first replays each assistant turn's signed thinking, which the fake checks."""
    model = f"claude-sonnet-4-5-agent-{streaming}"
    fake.set_behavior(model, ModelBehavior(reasoning=True))
    router = make_router(anthropic_deployment(fake, model=model))
    agent = FunctionAgent(
        tools=tools(), llm=LLMRouter(router=router, reasoning="low"), streaming=streaming
    )
    context = Context(agent)
    outputs: dict[str, str] = {}
    for question in ("Use add on 3 and 4.", "Now use multiply on 3 and 4."):
        handler = agent.run(user_msg=question, ctx=context)
        async for event in handler.stream_events():
            if isinstance(event, ToolCallResult):
                outputs[event.tool_name] = str(event.tool_output.content)
        result = await handler
    router.close()
    assert outputs == {"add": "7", "multiply": "12"}
    assert isinstance(result.response.blocks[0], ThinkingBlock)
    sent = bodies(fake, model)
    assert len(sent) == 4 and all(body["thinking"]["type"] == "enabled" for body in sent)
    for body in sent[1:]:
        for turn in body["messages"]:
            if turn["role"] == "assistant":
                assert turn["content"][0]["type"] == "thinking"


def test_cache_point_makes_the_second_call_read_the_cache_and_cost_less(
    fake: FakeProviderServer,
) -> None:
    model = "claude-sonnet-4-5-cache"
    router = make_router(anthropic_deployment(fake, model=model, price=SONNET_PRICE))
    llm = LLMRouter(router=router, max_tokens=50)
    rules = "You are a careful assistant. " * 400  # over Sonnet's 1,024-token minimum
    history = [
        ChatMessage(
            role="system",
            blocks=[
                TextBlock(text=rules),
                CachePoint(cache_control=CacheControl(type="ephemeral")),
            ],
        ),
        ChatMessage(role="user", content="Say hi."),
    ]
    first, second = llm.chat(history), llm.chat(history)
    router.close()
    assert first.raw is not None and second.raw is not None
    written = first.raw["usage"]["cache_write_tokens"]
    assert written > 1024 and second.raw["usage"]["cached_input_tokens"] == written
    assert bodies(fake, model)[0]["system"][0]["cache_control"]["type"] == "ephemeral"
    output_delta = (
        (second.raw["usage"]["completion_tokens"] - first.raw["usage"]["completion_tokens"])
        * 15.0
        / 1e6
    )
    saved = written * (3.75 - 0.3) / 1e6
    cost_first, cost_second = first.additional_kwargs["cost"], second.additional_kwargs["cost"]
    assert cost_first - cost_second + output_delta == pytest.approx(saved, rel=1e-6)


def test_a_pdf_document_block_reaches_anthropic_as_a_document(fake: FakeProviderServer) -> None:
    model = "claude-haiku-4-5-pdf"
    router = make_router(anthropic_deployment(fake, model=model))
    llm = LLMRouter(router=router)
    document = DocumentBlock(data=PDF, document_mimetype="application/pdf", title="a.pdf")
    message = ChatMessage(role="user", blocks=[TextBlock(text="Summarize:"), document])
    assert llm.chat([message]).message.content
    router.close()
    block = bodies(fake, model)[0]["messages"][0]["content"][1]
    assert (block["type"], block["source"]["media_type"], block["title"]) == (
        "document",
        "application/pdf",
        "a.pdf",
    )


def test_an_audio_block_reaches_openai_as_input_audio(fake: FakeProviderServer) -> None:
    model = "gpt-4o-audio-preview"
    router = make_router(openai_deployment(fake, model=model))
    llm = LLMRouter(router=router)
    message = ChatMessage(
        role="user", blocks=[TextBlock(text="Transcribe"), AudioBlock(audio=WAV, format="wav")]
    )
    assert llm.chat([message]).message.content
    router.close()
    part = bodies(fake, model)[0]["messages"][0]["content"][1]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"
