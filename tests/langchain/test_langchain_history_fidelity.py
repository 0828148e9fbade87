"""LangChain histories reach each provider's wire whole: nothing dropped, nothing blanked.

Each case is a history LangChain users send, checked in the request the loopback fake
received (OpenAI chat completions and Anthropic messages), and the call's outcome.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_fakes import make_model

from llmrouter_integrations.errors import BadRequestError
from llmrouter_integrations.langchain._convert import to_router_messages
from llmrouter_integrations.testing import FakeProviderServer
from llmrouter_integrations.types import Message

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


def sent(fake: FakeProviderServer) -> dict[str, Any]:
    body = fake.requests[-1].body
    assert isinstance(body, dict)
    return body


def call(name: str, call_id: str | None, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def test_an_empty_human_message_stays_in_the_history() -> None:
    assert to_router_messages([HumanMessage(content=[])]) == [Message(role="user", content="")]


def test_an_empty_human_turn_reaches_openai(fake: FakeProviderServer) -> None:
    history = [HumanMessage("hi"), AIMessage("hello"), HumanMessage(content=[])]
    make_model(fake, "openai").invoke(history)
    assert sent(fake)["messages"][-1] == {"role": "user", "content": ""}


def test_an_empty_human_turn_is_refused_by_anthropic_not_turned_into_a_prefill(
    fake: FakeProviderServer,
) -> None:
    # Dropped, the history would end on the assistant's turn, which Anthropic continues
    # as a prefill: a different question answered without a word of warning.
    history = [HumanMessage("hi"), AIMessage("hello"), HumanMessage(content=[])]
    with pytest.raises(BadRequestError, match=r"messages\.2: all messages must have non-empty"):
        make_model(fake, "anthropic").invoke(history)


def _anonymous_calls_history() -> list[BaseMessage]:
    return [
        HumanMessage("weather in Oslo and Rome?"),
        AIMessage("", tool_calls=[call("weather", None, city="Oslo"), call("weather", None)]),
        ToolMessage("snow", tool_call_id=""),
        ToolMessage("sun", tool_call_id=""),
    ]


@pytest.mark.parametrize("first", ["openai", "anthropic"])
def test_tool_calls_without_ids_get_ids_their_answers_share(
    fake: FakeProviderServer, first: str
) -> None:
    make_model(fake, first).invoke(_anonymous_calls_history())
    body = sent(fake)
    if first == "openai":
        calls = [c["id"] for c in body["messages"][1]["tool_calls"]]
        answers = [m["tool_call_id"] for m in body["messages"][2:4]]
    else:
        calls = [b["id"] for b in body["messages"][1]["content"]]
        answers = [b["tool_use_id"] for b in body["messages"][2]["content"]]
    assert calls == answers and len(set(calls)) == 2
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", call_id) for call_id in calls)


def test_anonymous_call_ids_are_stable_so_the_cache_key_is() -> None:
    first = to_router_messages(_anonymous_calls_history())
    again = to_router_messages(_anonymous_calls_history())
    assert [c.id for c in first[1].tool_calls] == [c.id for c in again[1].tool_calls]


def _failed_tool_history() -> list[BaseMessage]:
    return [
        HumanMessage("divide 1 by 0"),
        AIMessage("", tool_calls=[call("divide", "c1", a=1, b=0)]),
        ToolMessage("ZeroDivisionError: division by zero", tool_call_id="c1", status="error"),
    ]


def test_a_failed_tool_is_flagged_is_error_to_anthropic(fake: FakeProviderServer) -> None:
    make_model(fake, "anthropic").invoke(_failed_tool_history())
    result = sent(fake)["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True


def test_a_failed_tool_says_so_in_the_openai_tool_message(fake: FakeProviderServer) -> None:
    make_model(fake, "openai").invoke(_failed_tool_history())
    assert sent(fake)["messages"][2] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "Error: ZeroDivisionError: division by zero",
    }


def test_a_successful_tool_is_not_flagged(fake: FakeProviderServer) -> None:
    history = _failed_tool_history()
    history[2] = ToolMessage("inf", tool_call_id="c1")
    make_model(fake, "anthropic").invoke(history)
    assert "is_error" not in sent(fake)["messages"][2]["content"][0]


def _screenshot_history() -> list[BaseMessage]:
    image = {"type": "image", "base64": PNG, "mime_type": "image/png"}
    return [
        HumanMessage("what is on screen?"),
        AIMessage("", tool_calls=[call("screenshot", "s1"), call("clock", "s2")]),
        ToolMessage([{"type": "text", "text": "captured"}, image], tool_call_id="s1"),
        ToolMessage("12:00", tool_call_id="s2"),
        HumanMessage("and the time?"),
    ]


def test_an_image_a_tool_returned_reaches_openai_in_a_user_turn(fake: FakeProviderServer) -> None:
    make_model(fake, "openai").invoke(_screenshot_history())
    messages = sent(fake)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user", "user"]
    assert messages[2]["content"].startswith("captured")
    assert messages[3]["content"] == "12:00"
    moved = messages[4]["content"]
    assert moved[0] == {"type": "text", "text": "Returned by tool call s1:"}
    assert moved[1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    assert messages[5] == {"role": "user", "content": "and the time?"}


def test_an_image_a_tool_returned_stays_in_the_anthropic_tool_result(
    fake: FakeProviderServer,
) -> None:
    make_model(fake, "anthropic").invoke(_screenshot_history())
    result = sent(fake)["messages"][2]["content"][0]
    assert [block["type"] for block in result["content"]] == ["text", "image"]
