"""The fake server's reasoning, prompt caching, documents and audio, driven by the official SDKs."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

OPENAI_KEY = "sk-test-openai-0000000000001234"
ANTHROPIC_KEY = "sk-ant-test-000000000000005678"
CLAUDE = "claude-sonnet-4-5"
THINKING = {"type": "enabled", "budget_tokens": 2048}
PDF_B64 = base64.b64encode(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n").decode()
WAV_B64 = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather at a place",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
LONG_RULES = "Follow these house rules carefully. " * 600  # ~5400 fake tokens


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def fake(clock: ManualClock) -> Iterator[FakeProviderServer]:
    with FakeProviderServer(clock=clock) as server:
        yield server


@pytest.fixture()
def claude(fake: FakeProviderServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url=fake.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0
    )
    yield client
    client.close()


@pytest.fixture()
def oai(fake: FakeProviderServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=OPENAI_KEY, max_retries=0)
    yield client
    client.close()


def _dump(message: anthropic.types.Message) -> list[dict[str, Any]]:
    return [block.model_dump(exclude_none=True) for block in message.content]


# --- Anthropic thinking ---------------------------------------------------------------------


def test_thinking_block_comes_first_signed_and_counted(claude: anthropic.Anthropic) -> None:
    reply = claude.messages.create(
        model=CLAUDE, max_tokens=4096, thinking=THINKING,
        messages=[{"role": "user", "content": "What is 2+2?"}],
    )  # fmt: skip
    thinking, text = reply.content
    assert isinstance(thinking, anthropic.types.ThinkingBlock)
    assert thinking.thinking.startswith("Reasoning about: What is 2+2?")
    assert thinking.signature
    assert isinstance(text, anthropic.types.TextBlock) and text.text == "Echo: What is 2+2?"
    # Thinking tokens are part of output_tokens, as Anthropic bills them.
    assert reply.usage.output_tokens > len(text.text) // 4 + 1


def test_streamed_thinking_uses_thinking_and_signature_deltas(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=CLAUDE, max_tokens=4096, thinking=THINKING,
        messages=[{"role": "user", "content": "What is 2+2?"}],
    ) as stream:  # fmt: skip
        kinds = [event.delta.type for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" in kinds and "signature_delta" in kinds
    assert kinds.index("signature_delta") < kinds.index("text_delta")
    block = final.content[0]
    assert isinstance(block, anthropic.types.ThinkingBlock)
    unstreamed = claude.messages.create(
        model=CLAUDE, max_tokens=4096, thinking=THINKING,
        messages=[{"role": "user", "content": "What is 2+2?"}],
    )  # fmt: skip
    assert _dump(final)[0] == _dump(unstreamed)[0]


def _tool_turn(claude: anthropic.Anthropic, question: str) -> list[dict[str, Any]]:
    first = claude.messages.create(
        model=CLAUDE, max_tokens=4096, thinking=THINKING, tools=[WEATHER],
        messages=[{"role": "user", "content": question}],
    )  # fmt: skip
    assert first.content[0].type == "thinking"
    assert first.stop_reason == "tool_use"
    return _dump(first)


def _answer(claude: anthropic.Anthropic, question: str, assistant: list[dict[str, Any]]) -> Any:
    use = next(b for b in assistant if b["type"] == "tool_use")
    return claude.messages.create(
        model=CLAUDE, max_tokens=4096, thinking=THINKING, tools=[WEATHER],
        messages=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": use["id"], "content": "18C"}]},
        ],
    )  # fmt: skip


def test_tool_loop_with_thinking_replayed_unmodified_succeeds(claude: anthropic.Anthropic) -> None:
    question = "Weather in 'Paris'?"
    assistant = _tool_turn(claude, question)
    second = _answer(claude, question, assistant)
    assert second.stop_reason == "end_turn"
    assert "The tool returned: 18C" in [b.text for b in second.content if b.type == "text"]


def test_tool_loop_without_its_thinking_block_is_anthropics_400(
    claude: anthropic.Anthropic,
) -> None:
    question = "Weather in 'Paris'?"
    assistant = [b for b in _tool_turn(claude, question) if b["type"] != "thinking"]
    with pytest.raises(anthropic.BadRequestError) as caught:
        _answer(claude, question, assistant)
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith("messages.1.content.0.type: Expected `thinking` or")
    assert "a final `assistant` message must start with a thinking block" in message


def test_modified_thinking_block_has_an_invalid_signature(claude: anthropic.Anthropic) -> None:
    question = "Weather in 'Paris'?"
    assistant = _tool_turn(claude, question)
    assistant[0]["thinking"] += " (edited)"
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature` in `thinking` block"):
        _answer(claude, question, assistant)


def test_redacted_thinking_streams_whole_and_replays(claude: anthropic.Anthropic) -> None:
    from llmrouter_integrations.testing._fake_thinking import REDACT_TRIGGER

    question = f"Weather in 'Paris'? {REDACT_TRIGGER}"
    with claude.messages.stream(
        model=CLAUDE, max_tokens=4096, thinking=THINKING, tools=[WEATHER],
        messages=[{"role": "user", "content": question}],
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
    assistant = _dump(final)
    assert assistant[0]["type"] == "redacted_thinking" and assistant[0]["data"]
    assert _answer(claude, question, assistant).stop_reason == "end_turn"
    assistant[0]["data"] = "forged"
    with pytest.raises(anthropic.BadRequestError, match="redacted_thinking"):
        _answer(claude, question, assistant)


def test_thinking_blocks_in_final_position_need_thinking_enabled(
    claude: anthropic.Anthropic,
) -> None:
    assistant = _tool_turn(claude, "Weather in 'Paris'?")
    with pytest.raises(anthropic.BadRequestError, match="When thinking is disabled"):
        claude.messages.create(
            model=CLAUDE, max_tokens=100,
            messages=[{"role": "user", "content": "hi"},
                      {"role": "assistant", "content": assistant[:1]}],
        )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (
            {"extra_body": {"temperature": 0.5}},
            "`temperature` may only be set to 1 when thinking is enabled",
        ),
        ({"max_tokens": 2048}, "`max_tokens` must be greater than `thinking.budget_tokens`"),
        ({"thinking": {"type": "enabled", "budget_tokens": 500}}, "greater than or equal to 1024"),
        ({"tool_choice": {"type": "any"}}, "tool_choice forces tool use"),
    ],
)
def test_thinking_parameter_errors(
    claude: anthropic.Anthropic, options: dict[str, Any], fragment: str
) -> None:
    kwargs: dict[str, Any] = {
        "model": CLAUDE, "max_tokens": 4096, "thinking": THINKING, "tools": [WEATHER],
        "messages": [{"role": "user", "content": "hi"}], **options,
    }  # fmt: skip
    with pytest.raises(anthropic.BadRequestError, match=fragment.replace("`", ".")):
        claude.messages.create(**kwargs)


def test_model_without_thinking_refuses_it(
    fake: FakeProviderServer, claude: anthropic.Anthropic
) -> None:
    fake.set_behavior("claude-3-5-haiku-latest", ModelBehavior())
    with pytest.raises(anthropic.BadRequestError, match="does not support thinking"):
        claude.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=4096, thinking=THINKING,
            messages=[{"role": "user", "content": "hi"}],
        )  # fmt: skip


# --- OpenAI and OpenAI-compatible reasoning -------------------------------------------------


def test_openai_reasoning_model_bills_hidden_reasoning_tokens(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="o3-mini", messages=[{"role": "user", "content": "Prove it"}],
        reasoning_effort="low", max_completion_tokens=500,
    )  # fmt: skip
    usage = reply.usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens or 0
    assert reasoning > 0
    assert usage.completion_tokens == reasoning + len("Echo: Prove it") // 4 + 1
    assert "reasoning" not in (reply.choices[0].message.model_extra or {})


def test_openai_refuses_sampling_on_reasoning_and_effort_on_others(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}], temperature=0.2
        )
    assert caught.value.code == "unsupported_value"
    assert "Only the default (1) value is supported" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            reasoning_effort="low",
        )  # fmt: skip
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == "reasoning_effort"


def test_deepseek_style_reasoning_content(oai: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Why?"}]
    reply = oai.chat.completions.create(model="deepseek-reasoner", messages=messages)
    extra = reply.choices[0].message.model_extra or {}
    assert extra["reasoning_content"] == "Reasoning about: Why?"
    pieces = [
        (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for chunk in oai.chat.completions.create(
            model="deepseek-reasoner", messages=messages, stream=True
        )
        if chunk.choices
    ]
    assert "".join(pieces) == "Reasoning about: Why?"


@pytest.mark.parametrize("path", ["groq", "openrouter"])
def test_compatible_servers_return_reasoning(fake: FakeProviderServer, path: str) -> None:
    base = fake.groq_base_url if path == "groq" else fake.openrouter_base_url
    with openai.OpenAI(base_url=base, api_key=OPENAI_KEY, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="openai/gpt-oss-20b", messages=[{"role": "user", "content": "Why?"}]
        )
        assert (reply.choices[0].message.model_extra or {})["reasoning"] == "Reasoning about: Why?"
        details = reply.usage.completion_tokens_details if reply.usage else None
        assert details is not None and (details.reasoning_tokens or 0) > 0
        if path == "groq":
            with pytest.raises(openai.BadRequestError, match="reasoning_effort"):
                client.chat.completions.create(
                    model="llama-3.3-70b-versatile", reasoning_effort="low",
                    messages=[{"role": "user", "content": "Why?"}],
                )  # fmt: skip


# --- prompt caching -------------------------------------------------------------------------


def _cached_call(claude: anthropic.Anthropic, question: str, **extra: Any) -> Any:
    system: Any = [{"type": "text", "text": LONG_RULES, "cache_control": {"type": "ephemeral"}}]
    return claude.messages.create(
        model=CLAUDE, max_tokens=100, system=system,
        messages=[{"role": "user", "content": question}], **extra,
    ).usage  # fmt: skip


def test_anthropic_cache_breakpoint_writes_then_reads(
    claude: anthropic.Anthropic, clock: ManualClock
) -> None:
    first = _cached_call(claude, "first question!")
    assert first.cache_creation_input_tokens > 1024 and first.cache_read_input_tokens == 0
    second = _cached_call(claude, "second question")
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    # input_tokens is what came after the breakpoint, as Anthropic reports it.
    assert second.input_tokens == first.input_tokens
    clock.advance(301)  # the 5-minute entry expired: written again
    third = _cached_call(claude, "later question")
    assert third.cache_read_input_tokens == 0 and third.cache_creation_input_tokens > 0


def test_anthropic_one_hour_writes_are_reported_apart(
    claude: anthropic.Anthropic, clock: ManualClock
) -> None:
    # The system prompt cached for an hour, a long document for 5 minutes (longer TTLs
    # first, as Anthropic requires): the write splits in usage.cache_creation, adding up.
    hourly = {"type": "ephemeral", "ttl": "1h"}
    system: Any = [{"type": "text", "text": LONG_RULES, "cache_control": hourly}]
    document = {"type": "text", "text": "Notes. " * 3000, "cache_control": {"type": "ephemeral"}}
    question = {"type": "text", "text": "hourly question"}
    request: Any = {
        "model": CLAUDE, "max_tokens": 50, "system": system,
        "messages": [{"role": "user", "content": [document, question]}],
    }  # fmt: skip
    first = claude.messages.create(**request).usage
    assert first.cache_creation is not None
    hour = first.cache_creation.ephemeral_1h_input_tokens
    five = first.cache_creation.ephemeral_5m_input_tokens
    assert hour > 1024 and five > 1024 and hour + five == first.cache_creation_input_tokens
    clock.advance(301)  # the 5-minute entry expired, the hour's did not: only it is read
    with claude.messages.stream(**request) as stream:
        again = stream.get_final_message().usage
    assert again.cache_read_input_tokens == hour
    assert again.cache_creation_input_tokens == five
    assert again.cache_creation is not None
    assert again.cache_creation.ephemeral_1h_input_tokens == 0
    assert again.cache_creation.ephemeral_5m_input_tokens == five


def test_anthropic_short_prefix_is_not_cached(claude: anthropic.Anthropic) -> None:
    system: Any = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    usage = claude.messages.create(
        model=CLAUDE, max_tokens=100, system=system, messages=[{"role": "user", "content": "hi"}]
    ).usage
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0


def test_anthropic_five_breakpoints_is_a_400(claude: anthropic.Anthropic) -> None:
    marked: Any = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
        for i in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": marked}]
        )
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    assert message == "A maximum of 4 blocks with cache_control may be provided. Found 5."


def test_openai_caches_long_prefixes_automatically(oai: openai.OpenAI) -> None:
    def cached(question: str) -> int:
        usage = oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": LONG_RULES},
                      {"role": "user", "content": question}],
        ).usage  # fmt: skip
        assert usage is not None and usage.prompt_tokens_details is not None
        return usage.prompt_tokens_details.cached_tokens or 0

    assert cached("first") == 0
    hit = cached("second")
    assert hit >= 1024 and (hit - 1024) % 128 == 0
    short = [{"role": "user", "content": "short"}]
    for _ in range(2):
        usage = oai.chat.completions.create(model="gpt-4o-mini", messages=short).usage  # type: ignore[arg-type]
        assert usage is not None and usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 0


# --- documents and audio --------------------------------------------------------------------


def test_anthropic_documents_accepted_and_validated(claude: anthropic.Anthropic) -> None:
    def send(source: dict[str, Any]) -> Any:
        content: Any = [{"type": "document", "source": source}, {"type": "text", "text": "Sum up"}]
        return claude.messages.create(
            model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": content}]
        )

    pdf = {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}
    assert send(pdf).usage.input_tokens > 85
    assert send({"type": "url", "url": "https://example.com/a.pdf"}).stop_reason == "end_turn"
    assert send({"type": "text", "media_type": "text/plain", "data": "notes"}).content
    with pytest.raises(anthropic.BadRequestError, match="Input should be 'application/pdf'"):
        send({**pdf, "media_type": "image/png"})
    with pytest.raises(anthropic.BadRequestError, match="The PDF specified was not valid"):
        send({**pdf, "data": base64.b64encode(b"not a pdf").decode()})
    audio: Any = [{"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}}]
    with pytest.raises(anthropic.BadRequestError, match="Input tag 'input_audio'"):
        claude.messages.create(
            model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": audio}]
        )


def test_openai_file_and_audio_parts_accepted_and_validated(
    fake: FakeProviderServer, oai: openai.OpenAI
) -> None:
    def send(part: dict[str, Any], model: str = "gpt-4o") -> Any:
        content: Any = [{"type": "text", "text": "What is in it?"}, part]
        return oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}]
        )

    pdf = {"type": "file", "file": {"filename": "a.pdf",
                                    "file_data": f"data:application/pdf;base64,{PDF_B64}"}}  # fmt: skip
    audio = {"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}}
    assert send(pdf).choices[0].finish_reason == "stop"
    assert send(audio).choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError, match=r"file\.filename"):
        send({"type": "file", "file": {"file_data": pdf["file"]["file_data"]}})
    with pytest.raises(openai.BadRequestError, match="without the 'data:' prefix"):
        send({"type": "file", "file": {"filename": "a.pdf", "file_data": PDF_B64}})
    with pytest.raises(openai.BadRequestError, match="Supported values are: 'wav' and 'mp3'"):
        send({"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "flac"}})
    fake.set_behavior("text-only", ModelBehavior(pdf=False, audio=False))
    for part in (pdf, audio):
        with pytest.raises(openai.BadRequestError, match="not supported by this model"):
            send(part, model="text-only")


def test_a_big_pdf_counts_against_the_context_window(
    fake: FakeProviderServer, oai: openai.OpenAI
) -> None:
    big = base64.b64encode(b"%PDF-1.4\n" + b"0" * 3_000_000).decode()
    fake.set_behavior("small-window", ModelBehavior(context_window=8_000))
    part: Any = {"type": "file", "file": {"filename": "big.pdf",
                                          "file_data": f"data:application/pdf;base64,{big}"}}  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="context length"):
        oai.chat.completions.create(
            model="small-window", messages=[{"role": "user", "content": [part]}]
        )
