"""ChatLLMRouter reports Anthropic's one-hour cache writes apart, as langchain-anthropic does:
`input_token_details` holds `ephemeral_5m_input_tokens` and `ephemeral_1h_input_tokens` (and
`cache_creation` 0, so the details never add up past `input_tokens`)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_fakes import TEST_KEY

from llmrouter_integrations.langchain import ChatLLMRouter
from llmrouter_integrations.testing import FakeProviderServer

RULES = "You are a careful assistant. " * 400  # ~2,400 tokens: over Sonnet's 1,024 minimum
NOTES = "Notes. " * 3000


def model(fake: FakeProviderServer) -> ChatLLMRouter:
    deployment = {"provider": "anthropic", "model": "claude-sonnet-4-5", "api_key": TEST_KEY,
                  "base_url": fake.anthropic_base_url}  # fmt: skip
    return ChatLLMRouter(deployments=[deployment], max_retries=0, max_tokens=50)


def history(question: str) -> list[Any]:
    # The rules cached for an hour, a long document for 5 minutes (longer TTLs first).
    hourly = {"type": "ephemeral", "ttl": "1h"}
    document = {"type": "text", "text": NOTES, "cache_control": {"type": "ephemeral"}}
    return [
        SystemMessage([{"type": "text", "text": RULES, "cache_control": hourly}]),
        HumanMessage([document, {"type": "text", "text": question}]),
    ]


def test_one_hour_writes_are_split_from_five_minute_ones(fake: FakeProviderServer) -> None:
    answer = model(fake).invoke(history("first question"))
    usage = answer.usage_metadata
    assert usage is not None
    details: dict[str, int] = dict(usage["input_token_details"])  # type: ignore[arg-type]
    hour, five = details["ephemeral_1h_input_tokens"], details["ephemeral_5m_input_tokens"]
    assert hour > 1024 and five > 1024
    # langchain-anthropic's shape: the generic key at 0, so nothing is counted twice...
    assert details["cache_creation"] == 0
    assert sum(details.values()) <= usage["input_tokens"]
    assert usage["input_tokens"] > hour + five  # the question itself was not cached


def test_a_stream_reports_the_split_on_its_final_chunk(fake: FakeProviderServer) -> None:
    chat = model(fake)
    merged: AIMessageChunk | None = None
    for chunk in chat.stream(history("first question")):
        assert isinstance(chunk, AIMessageChunk)
        merged = chunk if merged is None else merged + chunk
    assert merged is not None and merged.usage_metadata is not None
    details: dict[str, int] = dict(merged.usage_metadata["input_token_details"])  # type: ignore[arg-type]
    assert details["ephemeral_1h_input_tokens"] > 1024
    assert details["ephemeral_5m_input_tokens"] > 1024
    assert details["cache_creation"] == 0
    # Within 5 minutes both entries are read and nothing is written: no split to report.
    again = chat.invoke(history("second question")).usage_metadata
    assert again is not None
    read = again["input_token_details"]
    assert (
        read["cache_read"]
        == details["ephemeral_1h_input_tokens"] + details["ephemeral_5m_input_tokens"]
    )
    assert "ephemeral_1h_input_tokens" not in read and "cache_creation" not in read


def test_five_minute_writes_alone_keep_the_generic_key(fake: FakeProviderServer) -> None:
    system = SystemMessage(
        [{"type": "text", "text": RULES, "cache_control": {"type": "ephemeral"}}]
    )
    usage = model(fake).invoke([system, HumanMessage("Say hi.")]).usage_metadata
    assert usage is not None
    details = usage["input_token_details"]
    assert details["cache_creation"] > 1024
    assert "ephemeral_1h_input_tokens" not in details
