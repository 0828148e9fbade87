"""LlamaIndex reasoning out and back in: ThinkingBlocks that replay, usage with cache and
reasoning counts, CachePoints and message-level cache_control (conversion only)."""

from __future__ import annotations

from llama_index.core.base.llms.types import (
    CacheControl,
    CachePoint,
    ChatMessage,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from llmrouter_integrations.llama_index._blocks import PROVIDER_BLOCK_KEY
from llmrouter_integrations.llama_index._convert import (
    StreamAccumulator,
    to_chat_response,
    to_router_messages,
)
from llmrouter_integrations.types import (
    ChatChunk,
    ChatResponse,
    ContentPart,
    Message,
    ProviderBlock,
    ToolCall,
    Usage,
)

THINKING = {"type": "thinking", "thinking": "I should call add.", "signature": "EqQBCgIYAhIM"}
BLOCK = ProviderBlock(dialect="anthropic_messages", data=dict(THINKING))


def _reply() -> ChatResponse:
    message = Message(
        role="assistant",
        content=[ContentPart(type="provider", block=BLOCK)],
        tool_calls=[ToolCall(id="toolu_1", name="add", arguments={"a": 1, "b": 2})],
        reasoning="I should call add.",
    )
    usage = Usage(
        input_tokens=1200,
        output_tokens=50,
        total_tokens=1250,
        cached_input_tokens=1000,
        cache_write_tokens=100,
        reasoning_tokens=30,
    )
    return ChatResponse(message=message, finish_reason="tool_calls", usage=usage, model="m")


def test_signed_thinking_comes_out_as_a_thinking_block_first() -> None:
    message = to_chat_response(_reply()).message
    thinking, call = message.blocks
    assert isinstance(thinking, ThinkingBlock) and isinstance(call, ToolCallBlock)
    assert thinking.content == "I should call add."
    assert thinking.additional_information["signature"] == "EqQBCgIYAhIM"


def test_the_thinking_block_replays_unmodified_before_the_tool_call() -> None:
    answer = to_chat_response(_reply()).message
    result = ChatMessage(
        role="tool", blocks=[TextBlock(text="3")], additional_kwargs={"tool_call_id": "toolu_1"}
    )
    assistant, tool = to_router_messages(
        [ChatMessage(role="user", content="1+2?"), answer, result]
    )[1:]
    assert assistant.blocks == [BLOCK]
    assert assistant.tool_calls == [ToolCall(id="toolu_1", name="add", arguments={"a": 1, "b": 2})]
    assert tool.tool_call_id == "toolu_1"


def test_llama_index_anthropic_thinking_blocks_replay_too() -> None:
    native = ThinkingBlock(content="hmm", additional_information={"signature": "sig"})
    message = ChatMessage(role="assistant", blocks=[native, TextBlock(text="4")])
    assert to_router_messages([message])[0].blocks == [
        ProviderBlock(
            dialect="anthropic_messages",
            data={"type": "thinking", "thinking": "hmm", "signature": "sig"},
        )
    ]


def test_reasoning_without_blocks_is_one_display_thinking_block() -> None:
    reply = ChatResponse(message=Message(role="assistant", content="4", reasoning="2+2"))
    thinking, text = to_chat_response(reply).message.blocks
    assert isinstance(thinking, ThinkingBlock) and thinking.content == "2+2"
    assert PROVIDER_BLOCK_KEY not in thinking.additional_information
    assert isinstance(text, TextBlock) and text.text == "4"
    # Not replayed: OpenAI-compatible servers do not take their reasoning back.
    assert to_router_messages([to_chat_response(reply).message])[0].content == "4"


def test_raw_usage_has_cache_and_reasoning_tokens() -> None:
    raw = to_chat_response(_reply()).raw
    assert raw is not None
    assert raw["usage"] == {
        "prompt_tokens": 1200,
        "completion_tokens": 50,
        "total_tokens": 1250,
        "cached_input_tokens": 1000,
        "cache_write_tokens": 100,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 30,
        "estimated": False,
    }


def test_streamed_thinking_ends_as_a_signed_thinking_block() -> None:
    accumulator = StreamAccumulator()
    responses = [
        accumulator.add(chunk)
        for chunk in (
            ChatChunk(reasoning="I should "),
            ChatChunk(reasoning="call add."),
            ChatChunk(blocks=[BLOCK]),
            ChatChunk(text="Adding."),
            ChatChunk(is_final=True, finish_reason="stop", usage=Usage(1, 2, 3)),
        )
    ]
    mid = responses[1].message.blocks[0]
    assert isinstance(mid, ThinkingBlock) and mid.content == "I should call add."
    assert responses[1].additional_kwargs["thinking_delta"] == "call add."
    final = responses[-1].message.blocks
    assert [type(block) for block in final] == [ThinkingBlock, TextBlock]
    assert final[0].additional_information[PROVIDER_BLOCK_KEY]["data"] == THINKING
    assert to_router_messages([responses[-1].message])[0].blocks == [BLOCK]


def test_cache_point_first_and_additional_kwargs_mark_the_whole_message() -> None:
    first = ChatMessage(
        role="user",
        blocks=[
            CachePoint(cache_control=CacheControl(type="ephemeral", ttl="1h")),
            TextBlock(text="x"),
        ],
    )
    legacy = ChatMessage(
        role="system", content="rules", additional_kwargs={"cache_control": {"type": "ephemeral"}}
    )
    converted = to_router_messages([first, legacy])
    assert converted[0].cache_control == {"type": "ephemeral", "ttl": "1h"}
    assert (converted[1].content, converted[1].cache_control) == ("rules", {"type": "ephemeral"})


def test_a_tool_result_marked_is_error_keeps_the_flag() -> None:
    failed = ChatMessage(
        role="tool",
        content="ZeroDivisionError",
        additional_kwargs={"tool_call_id": "c1", "is_error": True},
    )
    ok = ChatMessage(role="tool", content="3", additional_kwargs={"tool_call_id": "c2"})
    assert [m.is_error for m in to_router_messages([failed, ok])] == [True, False]
