"""Prompt caching through the Router against the fake providers: breakpoints reach Anthropic,
reads and writes reach usage and cost, prompt_cache="auto" places them, the limit is enforced."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from llmrouter_integrations import BadRequestError, Deployment, Message, Router
from llmrouter_integrations.testing import FakeProviderServer
from llmrouter_integrations.types import ContentPart, ToolSpec

KEY = "sk-test-0123456789abcdef"
RULES = "Follow these house rules carefully. " * 600  # ~5400 tokens by the fake's count
EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture()
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


def claude(fake: FakeProviderServer) -> Deployment:
    return Deployment(
        "anthropic", "claude-sonnet-4-5", api_key=KEY, base_url=fake.anthropic_base_url
    )


def _body(fake: FakeProviderServer) -> dict[str, Any]:
    body = fake.requests_for("claude-sonnet-4-5")[-1].body
    assert isinstance(body, dict)
    return body


async def test_second_call_costs_less_by_the_cache_discount(fake: FakeProviderServer) -> None:
    system = Message("system", RULES, cache_control=EPHEMERAL)
    async with Router([claude(fake)]) as router:
        first = await router.achat([system, Message("user", "first question!")])
        second = await router.achat([system, Message("user", "second question")])
    assert _body(fake)["system"] == [{"type": "text", "text": RULES, "cache_control": EPHEMERAL}]
    written = first.usage.cache_write_tokens
    assert written > 1024 and first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens == written and second.usage.cache_write_tokens == 0
    assert first.usage.input_tokens == second.usage.input_tokens  # same prompt size
    assert first.cost_detail is not None and second.cost_detail is not None
    fresh = first.usage.input_tokens - written
    rate = first.cost_detail.input / fresh  # USD per uncached input token
    # Anthropic's published multipliers: a 5-minute cache write costs 1.25x input, a read 0.1x.
    assert first.cost_detail.cache_write == pytest.approx(written * rate * Decimal("1.25"))
    assert second.cost_detail.cached_input == pytest.approx(written * rate * Decimal("0.1"))
    saved = Decimal(str(first.cost)) - Decimal(str(second.cost))
    assert saved == pytest.approx(written * rate * Decimal("1.15"), rel=Decimal("1e-6"))
    assert second.cost is not None and first.cost is not None and second.cost < first.cost


async def test_marks_on_parts_and_tools_reach_the_wire(fake: FakeProviderServer) -> None:
    tool = ToolSpec("lookup", "Look a thing up", cache_control=EPHEMERAL)
    content = [
        ContentPart("text", text=RULES, cache_control=EPHEMERAL),
        ContentPart("text", text="Q?"),
    ]
    async with Router([claude(fake)]) as router:
        await router.achat([Message("user", content)], tools=[tool])
    body = _body(fake)
    assert body["tools"][0]["cache_control"] == EPHEMERAL
    assert body["messages"][0]["content"][0]["cache_control"] == EPHEMERAL
    assert "cache_control" not in body["messages"][0]["content"][1]


async def test_dict_messages_carry_cache_control(fake: FakeProviderServer) -> None:
    messages: Any = [
        {
            "role": "system",
            "content": [{"type": "text", "text": RULES, "cache_control": EPHEMERAL}],
        },
        {"role": "user", "content": "hi"},
    ]
    async with Router([claude(fake)]) as router:
        first = await router.achat(messages)
    assert first.usage.cache_write_tokens > 1024


async def test_more_than_four_marks_is_a_clear_error_before_sending(
    fake: FakeProviderServer,
) -> None:
    parts = [ContentPart("text", text=f"part {i}", cache_control=EPHEMERAL) for i in range(5)]
    async with Router([claude(fake)]) as router:
        with pytest.raises(BadRequestError, match="A maximum of 4 blocks with cache_control"):
            await router.achat([Message("user", parts)])
    assert fake.request_count("claude-sonnet-4-5") == 0


async def test_auto_places_breakpoints_and_the_next_turn_reads_them(
    fake: FakeProviderServer,
) -> None:
    tool = ToolSpec("lookup", "Look a thing up")
    history: list[Any] = [Message("system", RULES), Message("user", "first question")]
    async with Router([claude(fake)], prompt_cache="auto") as router:
        first = await router.achat(history, tools=[tool], tool_choice="none")
        history += [first.message, Message("user", "and another one")]
        second = await router.achat(history, tools=[tool], tool_choice="none")
    body = _body(fake)
    assert body["system"][-1]["cache_control"] == EPHEMERAL
    assert body["tools"][-1]["cache_control"] == EPHEMERAL
    # The last stable turn (the assistant answer before the newest question) is marked.
    assert body["messages"][-2]["content"][-1]["cache_control"] == EPHEMERAL
    assert "cache_control" not in str(body["messages"][-1])
    assert first.usage.cache_write_tokens > 0
    assert second.usage.cached_input_tokens >= first.usage.cache_write_tokens
    # The caller's messages were not changed.
    assert history[0].cache_control is None


async def test_auto_leaves_other_providers_alone(fake: FakeProviderServer) -> None:
    openai = Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url)
    async with Router([openai], prompt_cache="auto") as router:
        first = await router.achat([Message("system", RULES), Message("user", "one")])
        second = await router.achat([Message("system", RULES), Message("user", "two")])
    body = fake.requests_for("gpt-4o-mini")[-1].body
    assert "cache_control" not in str(body)
    # OpenAI caches long prefixes by itself; the usage says so.
    assert first.usage.cached_input_tokens == 0 and second.usage.cached_input_tokens >= 1024


def _pair(fake: FakeProviderServer) -> list[Deployment]:
    return [
        Deployment("anthropic", model, api_key=KEY, base_url=fake.anthropic_base_url)
        for model in ("claude-haiku-4-5", "claude-sonnet-4-5")
    ]


async def test_cache_aware_routing_keeps_a_conversation_where_its_prefix_is_cached(
    fake: FakeProviderServer,
) -> None:
    history: list[Any] = [Message("system", RULES), Message("user", "first question")]
    router = Router(_pair(fake), strategy="cost", prompt_cache="auto")
    async with router:
        # Cheapest first: with no cache anywhere, Haiku wins on cost.
        fresh = await router.achat(history, max_tokens=100)
        assert fresh.deployment == "anthropic/claude-haiku-4-5"
        # The conversation then ran on Sonnet (say the user asked for it)...
        first = await router.achat(
            history, max_tokens=100, deployments=["anthropic/claude-sonnet-4-5"]
        )
        history += [first.message, Message("user", "and another one")]
        # ...and its next turn stays there: the cached prefix makes Sonnet the cheaper choice.
        second = await router.achat(history, max_tokens=100)
    assert second.deployment == "anthropic/claude-sonnet-4-5"
    assert second.usage.cached_input_tokens > 1024
    scores = second.route.scores["anthropic/claude-sonnet-4-5"]
    assert scores["cache_affinity_usd"] > 0


async def test_no_affinity_without_a_long_shared_prefix(fake: FakeProviderServer) -> None:
    router = Router(_pair(fake), strategy="cost")
    async with router:
        await router.achat("short", deployments=["anthropic/claude-sonnet-4-5"])
        again = await router.achat("short")
    assert again.deployment == "anthropic/claude-haiku-4-5"


async def test_openrouter_passes_marks_on_to_the_model_openai_does_not(
    fake: FakeProviderServer,
) -> None:
    openrouter = Deployment(
        "openrouter", "anthropic/claude-sonnet-4.5", api_key=KEY, base_url=fake.openrouter_base_url
    )
    openai = Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url)
    messages = [Message("system", RULES, cache_control=EPHEMERAL), Message("user", "hi")]
    async with Router([openrouter, openai], strategy="priority") as router:
        await router.achat(messages)
        await router.achat(messages, deployments=["openai/gpt-4o-mini"])
    sent = fake.requests_for("anthropic/claude-sonnet-4.5")[-1].body["messages"]
    assert sent[0]["content"] == [{"type": "text", "text": RULES, "cache_control": EPHEMERAL}]
    assert sent[1]["content"] == "hi"
    assert fake.requests_for("gpt-4o-mini")[-1].body["messages"][0]["content"] == RULES


async def test_one_hour_cache_writes_are_priced_at_the_one_hour_rate(
    fake: FakeProviderServer,
) -> None:
    # Before: every write was priced as a 5-minute one (1.25x input), the 1-hour part too.
    hourly = {"type": "ephemeral", "ttl": "1h"}
    system = Message("system", RULES, cache_control=hourly)
    document = ContentPart(type="text", text="Notes. " * 3000, cache_control=EPHEMERAL)
    question = ContentPart(type="text", text="a question")
    async with Router([claude(fake)]) as router:
        whole = await router.achat([system, Message("user", [document, question])])
        other = Message("system", "Other rules. " * 1500, cache_control=hourly)
        streamed = [c async for c in router.astream([other, Message("user", [document])])]
    usage, detail = whole.usage, whole.cost_detail
    assert usage is not None and detail is not None
    hour, written = usage.cache_write_1h_tokens, usage.cache_write_tokens
    assert 1024 < hour < written  # the system prompt for an hour, the document for 5 minutes
    rate = detail.input / (usage.input_tokens - written)  # USD per uncached input token
    # Anthropic's published multipliers: 2x input for an hour, 1.25x for 5 minutes.
    expected = hour * rate * 2 + (written - hour) * rate * Decimal("1.25")
    assert detail.cache_write == pytest.approx(expected)
    assert detail.total == pytest.approx(_genai_prices_total(usage))
    # A stream reports the split in message_start, and is priced the same way.
    final = streamed[-1]
    assert final.usage is not None
    assert 1024 < final.usage.cache_write_1h_tokens < final.usage.cache_write_tokens
    assert final.cost == pytest.approx(float(_genai_prices_total(final.usage)))


def _genai_prices_total(usage: Any) -> Decimal:
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    split = PriceUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
    )
    price = calc_price(split, model_ref="claude-sonnet-4-5", provider_id="anthropic")
    return Decimal(price.total_price)


async def test_a_deployment_price_can_set_the_one_hour_write_rate(fake: FakeProviderServer) -> None:
    price = {"input": 1.0, "output": 2.0, "cache_write": 1.25, "cache_write_1h": 2.0}
    deployment = Deployment(
        "anthropic", "claude-sonnet-4-5", api_key=KEY, base_url=fake.anthropic_base_url,
        price=price,
    )  # fmt: skip
    system = Message("system", RULES, cache_control={"type": "ephemeral", "ttl": "1h"})
    async with Router([deployment]) as router:
        response = await router.achat([system, Message("user", "hi")])
    assert response.usage is not None and response.cost_detail is not None
    hour = response.usage.cache_write_1h_tokens
    assert hour == response.usage.cache_write_tokens > 1024
    assert response.cost_detail.cache_write == Decimal(hour) * 2 / 1_000_000
