"""The fake provider server, driven by the official openai and anthropic SDKs, must pass for real."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from pydantic import BaseModel

from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

OPENAI_KEY = "sk-test-openai-0000000000001234"
ANTHROPIC_KEY = "sk-ant-test-000000000000005678"

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather at a place",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["location", "days"],
        },
    },
}
STOCK_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_stock_price",
        "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}},
    },
}
ANTHROPIC_WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather at a place",
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


_open_clients: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _clean(fake: FakeProviderServer) -> Iterator[None]:
    fake.reset()
    yield
    while _open_clients:
        _open_clients.pop().close()


def oai(fake: FakeProviderServer, base_url: str | None = None, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    client = openai.OpenAI(base_url=base_url or fake.openai_base_url, api_key=OPENAI_KEY, **kw)
    _open_clients.append(client)
    return client


def claude(fake: FakeProviderServer, **kw: Any) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=ANTHROPIC_KEY, **kw)
    _open_clients.append(client)
    return client


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def first_text(message: anthropic.types.Message) -> str:
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


# --- OpenAI ------------------------------------------------------------------------------------


def test_openai_text_reply_usage_and_headers(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(served_model="gpt-4o-mini-2024-07-18"))
    raw = oai(fake).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=user("What is the capital of France?")
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: What is the capital of France?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.usage is not None
    # Documented rule: 3 per message + len(text)//4 + 1.
    assert completion.usage.prompt_tokens == 3 + len("What is the capital of France?") // 4 + 1
    assert (
        completion.usage.completion_tokens == len("Echo: What is the capital of France?") // 4 + 1
    )
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == str(10_000 - 1)
    assert fake.requests[0].api_key_tail == "1234"
    assert fake.requests[0].retry_count == 0


def test_openai_stream_with_usage_chunk(fake: FakeProviderServer) -> None:
    stream = oai(fake).chat.completions.create(
        model="gpt-4o-mini",
        messages=user("stream me please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me please"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 3
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == (
        chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    )
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_stream_without_include_usage_has_no_usage_chunk(fake: FakeProviderServer) -> None:
    chunks = list(
        oai(fake).chat.completions.create(model="gpt-4o", messages=user("hi"), stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_openai_forced_tool_call_then_tool_result(fake: FakeProviderServer) -> None:
    client = oai(fake)
    messages: list[Any] = user("What's the weather in 'Paris' for the next (3) days?")
    first = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        tools=[STOCK_TOOL, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris", "days": 3}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    second = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    assert second.choices[0].finish_reason == "stop"
    assert "18C and sunny" in (second.choices[0].message.content or "")


def test_openai_stream_helper_accumulates_parallel_tool_calls(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4.1", ModelBehavior(parallel_tool_calls_n=2))
    with oai(fake).chat.completions.stream(
        model="gpt-4.1",
        messages=user("weather in 'Oslo' and a ticker"),
        tools=[WEATHER_TOOL, STOCK_TOOL],
        tool_choice="required",
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_stock_price"]
    assert json.loads(calls[0].function.arguments) == {"location": "Oslo", "days": 1}
    assert calls[0].id != calls[1].id
    assert final.choices[0].finish_reason == "tool_calls"


def test_openai_structured_output_parse(fake: FakeProviderServer) -> None:
    class Joke(BaseModel):
        setup: str
        punchline: str
        rating: int

    completion = oai(fake).chat.completions.parse(
        model="gpt-4o-mini", messages=user("Tell me a joke rated (7)"), response_format=Joke
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Joke)
    assert parsed.rating == 7
    body = fake.requests[0].body
    assert body["response_format"]["type"] == "json_schema"


def test_openai_json_object_mode(fake: FakeProviderServer) -> None:
    completion = oai(fake).chat.completions.create(
        model="gpt-4o-mini",
        messages=user("Return JSON with 'setup' and 'punchline' keys."),
        response_format={"type": "json_object"},
    )
    assert set(json.loads(completion.choices[0].message.content or "")) == {"setup", "punchline"}


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (403, openai.PermissionDeniedError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (408, openai.APIStatusError),
    ],
)
def test_openai_sdk_raises_its_own_error_classes(
    fake: FakeProviderServer, status: int, error_class: type[openai.APIStatusError]
) -> None:
    fake.set_behavior("m", ModelBehavior(permanent_error=status, error_message=f"boom {status}"))
    with pytest.raises(error_class) as caught:
        oai(fake).chat.completions.create(model="m", messages=user("hi"))
    assert caught.value.status_code == status
    assert f"boom {status}" in str(caught.value)


def test_openai_wrong_key_is_authentication_error_with_masked_key(fake: FakeProviderServer) -> None:
    strict = FakeProviderServer(valid_keys={"sk-the-only-good-key-0000"})
    with strict, pytest.raises(openai.AuthenticationError) as caught:
        oai(strict).chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert caught.value.code == "invalid_api_key"
    assert "sk-...1234" in caught.value.message
    assert OPENAI_KEY not in str(caught.value.body)


def test_openai_unknown_model_is_not_found(fake: FakeProviderServer) -> None:
    with FakeProviderServer({"gpt-4o": ModelBehavior()}, strict_models=True) as strict:
        with pytest.raises(openai.NotFoundError) as caught:
            oai(strict).chat.completions.create(model="gpt-9", messages=user("hi"))
        assert caught.value.code == "model_not_found"
        assert oai(strict).chat.completions.create(model="gpt-4o", messages=user("hi")).choices


def test_openai_context_window_exceeded(fake: FakeProviderServer) -> None:
    fake.set_behavior("small", ModelBehavior(context_window=10))
    with pytest.raises(openai.BadRequestError) as caught:
        oai(fake).chat.completions.create(model="small", messages=user("word " * 40))
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is 10 tokens" in caught.value.message


def test_request_over_the_whole_tpm_limit_is_refused_as_openai_and_groq_do(
    fake: FakeProviderServer,
) -> None:
    # The prompt plus max_tokens is over the per-minute allowance: no wait would admit it.
    fake.set_behavior("tpm", ModelBehavior(tokens_per_minute=500))
    with pytest.raises(openai.RateLimitError) as caught:
        oai(fake).chat.completions.create(model="tpm", messages=user("hi"), max_tokens=1_000)
    assert caught.value.code == "rate_limit_exceeded"
    assert "Request too large for tpm in organization org-fake on tokens per min (TPM): " in (
        caught.value.message
    )
    assert "Limit 500, Requested 10" in caught.value.message
    with pytest.raises(openai.APIStatusError) as groq:
        oai(fake, base_url=fake.groq_base_url).chat.completions.create(
            model="tpm", messages=user("hi"), max_tokens=1_000
        )
    assert groq.value.status_code == 413
    assert "on tokens per minute (TPM): Limit 500" in groq.value.message
    # A request that fits is answered.
    oai(fake).chat.completions.create(model="tpm", messages=user("hi"), max_tokens=100)


@pytest.mark.parametrize(
    ("server", "error", "message"),
    [
        ("llama.cpp", openai.InternalServerError, "Expected 'content' to be a string or an array"),
        ("ollama", openai.BadRequestError, "invalid message content type: <nil>"),
    ],
)
def test_servers_that_refuse_null_content_on_a_tool_call_turn(
    fake: FakeProviderServer, server: Any, error: type[openai.APIStatusError], message: str
) -> None:
    fake.set_behavior("local", ModelBehavior(null_content_error=server))
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history: Any = [
        {"role": "user", "content": "use f"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    with pytest.raises(error) as caught:
        oai(fake).chat.completions.create(model="local", messages=history, tools=[WEATHER_TOOL])
    assert message in caught.value.message
    history[1]["content"] = ""  # what those servers take
    oai(fake).chat.completions.create(model="local", messages=history, tools=[WEATHER_TOOL])
    del history[1]["content"]  # and so is no content at all
    oai(fake).chat.completions.create(model="local", messages=history, tools=[WEATHER_TOOL])


def test_openai_sdk_honours_retry_after_and_retries_to_success(fake: FakeProviderServer) -> None:
    fake.set_behavior("flaky", ModelBehavior(errors=[429, 500], retry_after_ms=10))
    completion = oai(fake, max_retries=2).chat.completions.create(
        model="flaky", messages=user("hi")
    )
    assert completion.choices[0].message.content == "Echo: hi"
    attempts = fake.requests_for("flaky")
    assert [r.status for r in attempts] == [429, 500, 200]
    assert [r.retry_count for r in attempts] == [0, 1, 2]
    gaps = [b.started_at - (a.ended_at or 0) for a, b in itertools.pairwise(attempts)]
    # Without the header the SDK would wait at least 0.375 s before each retry.
    assert max(gaps) < 0.3


def test_openai_sdk_obeys_x_should_retry_false(fake: FakeProviderServer) -> None:
    fake.set_behavior("m", ModelBehavior(errors=[503], x_should_retry=False))
    with pytest.raises(openai.InternalServerError):
        oai(fake, max_retries=2).chat.completions.create(model="m", messages=user("hi"))
    assert fake.request_count("m") == 1


def test_openai_mid_stream_error_raises_api_error(fake: FakeProviderServer) -> None:
    fake.set_behavior("m", ModelBehavior(mid_stream_error=2))
    stream = oai(fake).chat.completions.create(model="m", messages=user("a b c d e"), stream=True)
    texts: list[str] = []
    with pytest.raises(openai.APIError, match="server had an error"):
        for chunk in stream:
            texts.append(chunk.choices[0].delta.content or "")
    assert "".join(texts) == "Echo: a"


def test_openai_usage_overrides_report_cache_and_reasoning(fake: FakeProviderServer) -> None:
    usage = {"input": 1200, "cached": 1024, "output": 30, "reasoning": 12}
    fake.set_behavior("o4-mini", ModelBehavior(usage=usage))
    reported = oai(fake).chat.completions.create(model="o4-mini", messages=user("hi")).usage
    assert reported is not None
    assert (reported.prompt_tokens, reported.completion_tokens) == (1200, 30)
    assert reported.prompt_tokens_details is not None
    assert reported.prompt_tokens_details.cached_tokens == 1024
    assert reported.completion_tokens_details is not None
    assert reported.completion_tokens_details.reasoning_tokens == 12


def test_openai_reasoning_model_rejects_max_tokens(fake: FakeProviderServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai(fake).chat.completions.create(model="o3", messages=user("hi"), max_tokens=10)
    assert caught.value.code == "unsupported_parameter"
    ok = oai(fake).chat.completions.create(
        model="o3", messages=user("hi"), max_completion_tokens=10
    )
    assert ok.choices[0].message.content


async def test_async_openai_client_against_the_threaded_server(fake: FakeProviderServer) -> None:
    client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=OPENAI_KEY, max_retries=0)
    async with client:
        completion = await client.chat.completions.create(model="gpt-4o", messages=user("async"))
    assert completion.choices[0].message.content == "Echo: async"


# --- Groq and OpenRouter through the openai SDK ------------------------------------------------


def test_groq_path_reports_x_groq_and_timed_usage(fake: FakeProviderServer) -> None:
    client = oai(fake, base_url=fake.groq_base_url)
    completion = client.chat.completions.create(model="openai/gpt-oss-20b", messages=user("hi"))
    extra = completion.model_extra or {}
    assert extra["x_groq"]["id"].startswith("req_")
    assert completion.usage is not None and completion.usage.model_extra
    assert "queue_time" in completion.usage.model_extra
    assert fake.requests[0].path == "/openai/v1/chat/completions"
    chunks = list(
        client.chat.completions.create(model="openai/gpt-oss-20b", messages=user("hi"), stream=True)
    )
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    groq_usage = (final.model_extra or {})["x_groq"]["usage"]
    assert (
        groq_usage["total_tokens"] == groq_usage["prompt_tokens"] + groq_usage["completion_tokens"]
    )


def test_openrouter_path_always_reports_cost(fake: FakeProviderServer) -> None:
    client = oai(fake, base_url=fake.openrouter_base_url)
    completion = client.chat.completions.create(model="openai/gpt-5.4-mini", messages=user("hi"))
    assert completion.usage is not None
    assert (completion.usage.model_extra or {})["cost"] > 0
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-5.4-mini", messages=user("hi"), stream=True
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and (chunks[-1].usage.model_extra or {})["cost"] > 0


# --- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_text_reply_and_headers(fake: FakeProviderServer) -> None:
    raw = claude(fake).messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=100, messages=user("Bonjour")
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: Bonjour"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 3 + len("Bonjour") // 4 + 1
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == str(10_000 - 1)
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert fake.requests[0].api_key_tail == "5678"


def test_anthropic_stream_helper_final_message(fake: FakeProviderServer) -> None:
    texts: list[str] = []
    with claude(fake).messages.stream(
        model="claude-sonnet-4-6", max_tokens=200, messages=user("tell me a long story")
    ) as stream:
        texts.extend(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) >= 3
    assert "".join(texts) == "Echo: tell me a long story"
    assert first_text(final) == "Echo: tell me a long story"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len("Echo: tell me a long story") // 4 + 1


def test_anthropic_forced_tool_then_tool_result(fake: FakeProviderServer) -> None:
    client = claude(fake)
    messages: list[Any] = user("Weather in 'Lyon' for (2) days")
    with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=200,
        messages=messages,
        tools=[ANTHROPIC_WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    tool_use = first.content[-1]
    assert tool_use.type == "tool_use"
    assert tool_use.input == {"location": "Lyon", "days": 2}
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "12C"}],
        },
    ]
    second = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        messages=messages,
        tools=[ANTHROPIC_WEATHER],
    )
    assert second.stop_reason == "end_turn"
    assert "12C" in first_text(second)


def test_anthropic_tool_choice_any_calls_a_tool(fake: FakeProviderServer) -> None:
    message = claude(fake).messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        messages=user("Hello!"),
        tools=[ANTHROPIC_WEATHER],
        tool_choice={"type": "any"},
    )
    assert [b.type for b in message.content] == ["tool_use"]


def test_anthropic_cache_usage_excludes_cache_from_input_tokens(fake: FakeProviderServer) -> None:
    usage = {"input": 100, "cached": 60, "cache_write": 10, "output": 7}
    fake.set_behavior("claude-opus-4-6", ModelBehavior(usage=usage))
    message = claude(fake).messages.create(
        model="claude-opus-4-6", max_tokens=100, messages=user("hi")
    )
    assert message.usage.input_tokens == 30
    assert message.usage.cache_read_input_tokens == 60
    assert message.usage.cache_creation_input_tokens == 10
    with claude(fake).messages.stream(
        model="claude-opus-4-6", max_tokens=100, messages=user("hi")
    ) as stream:
        streamed = stream.get_final_message().usage
    assert (streamed.input_tokens, streamed.cache_read_input_tokens) == (30, 60)
    assert streamed.output_tokens == 7


def test_anthropic_structured_output_via_output_config(fake: FakeProviderServer) -> None:
    class City(BaseModel):
        name: str
        population: int

    parsed = claude(fake).messages.parse(
        model="claude-sonnet-4-6",
        max_tokens=200,
        messages=user("City 'Nantes' with (320000) people"),
        output_format=City,
    )
    assert parsed.parsed_output == City(name="Nantes", population=320000)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (529, anthropic.OverloadedError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (403, anthropic.PermissionDeniedError),
    ],
)
def test_anthropic_sdk_raises_its_own_error_classes(
    fake: FakeProviderServer, status: int, error_class: type[anthropic.APIStatusError]
) -> None:
    fake.set_behavior("c", ModelBehavior(permanent_error=status))
    with pytest.raises(error_class) as caught:
        claude(fake).messages.create(model="c", max_tokens=10, messages=user("hi"))
    assert caught.value.status_code == status
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")


def test_anthropic_overloaded_then_success_with_retry_after(fake: FakeProviderServer) -> None:
    fake.set_behavior("c", ModelBehavior(errors=[529], retry_after=0.01))
    message = claude(fake, max_retries=1).messages.create(
        model="c", max_tokens=10, messages=user("hi")
    )
    assert first_text(message) == "Echo: hi"
    assert [r.status for r in fake.requests_for("c")] == [529, 200]


def test_anthropic_bad_key_and_unknown_model(fake: FakeProviderServer) -> None:
    with FakeProviderServer(
        {"claude-haiku-4-5": ModelBehavior()}, valid_keys={ANTHROPIC_KEY}, strict_models=True
    ) as strict:
        bad = anthropic.Anthropic(
            base_url=strict.anthropic_base_url, api_key="sk-ant-wrong-0000000000", max_retries=0
        )
        _open_clients.append(bad)
        with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
            bad.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=user("hi"))
        with pytest.raises(anthropic.NotFoundError, match="claude-nope"):
            claude(strict).messages.create(model="claude-nope", max_tokens=10, messages=user("hi"))


def test_anthropic_mid_stream_error_event(fake: FakeProviderServer) -> None:
    fake.set_behavior("c", ModelBehavior(mid_stream_error=1))
    stream = claude(fake).messages.stream(model="c", max_tokens=50, messages=user("one two"))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"), stream as events:
        for _ in events.text_stream:
            pass


def test_anthropic_context_window_exceeded(fake: FakeProviderServer) -> None:
    fake.set_behavior("c", ModelBehavior(context_window=5))
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        claude(fake).messages.create(model="c", max_tokens=10, messages=user("x" * 200))


PNG_URL = "data:image/png;base64,iVBORw0KGgo="


def test_openai_rejects_images_outside_user_turns(fake: FakeProviderServer) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}
    messages: Any = [
        {"role": "user", "content": "screenshot please"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}],
        },
    ]
    with pytest.raises(openai.BadRequestError, match=r"Invalid 'messages\[2\]'.*role 'tool'"):
        oai(fake).chat.completions.create(model="gpt-4o-mini", messages=messages)
    moved = [
        *messages[:2],
        {"role": "tool", "tool_call_id": "c1", "content": "see the image below"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]},
    ]
    assert oai(fake).chat.completions.create(model="gpt-4o-mini", messages=moved).choices


@pytest.mark.parametrize("tool_id", ["", "call.1", "a b"])
def test_anthropic_rejects_tool_ids_outside_its_pattern(
    fake: FakeProviderServer, tool_id: str
) -> None:
    messages: Any = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": tool_id, "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "1"}],
        },
    ]
    with pytest.raises(anthropic.BadRequestError, match=r"tool_use\.id: String should match"):
        claude(fake).messages.create(model="c", max_tokens=10, messages=messages)


def test_anthropic_rejects_an_empty_user_turn(fake: FakeProviderServer) -> None:
    messages: Any = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.2: all messages must have"):
        claude(fake).messages.create(
            model="claude-empty-turn",
            max_tokens=10,
            messages=[*messages, {"role": "user", "content": []}],
        )
    # The final assistant turn (a prefill) may be empty.
    assert (
        claude(fake)
        .messages.create(
            model="claude-empty-turn",
            max_tokens=10,
            messages=[messages[0], {"role": "assistant", "content": ""}],
        )
        .content
    )

# --- scripted truncation: complete streams that never say why they stopped -------------------


def test_openai_sdk_reads_a_stream_without_finish_reason(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(no_finish_reason=True))
    chunks = list(
        oai(fake).chat.completions.create(
            model="gpt-4o-mini", messages=user("cut me off"), stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: cut me off"  # every byte arrived, [DONE] included...
    assert all(c.choices[0].finish_reason is None for c in chunks if c.choices)  # ...but no reason
    reply = oai(fake).chat.completions.create(model="gpt-4o-mini", messages=user("again"))
    assert reply.choices[0].finish_reason is None  # type: ignore[comparison-overlap]


def test_anthropic_sdk_reads_a_stream_without_stop_reason(fake: FakeProviderServer) -> None:
    fake.set_behavior("claude-sonnet-4-6", ModelBehavior(no_finish_reason=True))
    with claude(fake).messages.stream(
        model="claude-sonnet-4-6", max_tokens=200, messages=user("cut me off")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: cut me off"
    assert final.stop_reason is None


def test_sdks_read_raw_bodies_verbatim(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(raw_body='{"id": "x", "choices": 7}'))
    raw = oai(fake).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=user("hi")
    )
    assert raw.http_response.content == b'{"id": "x", "choices": 7}'
    fake.set_behavior("gpt-4o-mini", ModelBehavior(raw_stream=["data: [DONE]\n\n"]))
    stream = oai(fake).chat.completions.create(model="gpt-4o-mini", messages=user("hi"), stream=True)
    assert list(stream) == []
