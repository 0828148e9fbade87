"""Pricing: our costs equal genai-prices' own calculation; overrides, local and unknown models."""

from __future__ import annotations

import warnings
from decimal import Decimal

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from genai_prices.data import providers as genai_providers

from llmrouter_integrations.costs.pricing import Pricer, decimal_cost
from llmrouter_integrations.types import CostDetail, Deployment, Usage


def genai_total(provider: str, model: str, usage: Usage) -> Decimal:
    """What genai-prices itself charges (our Usage.input_tokens already includes cache tokens)."""
    result = calc_price(
        PriceUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cached_input_tokens or None,
            cache_write_tokens=usage.cache_write_tokens or None,
            output_reasoning_tokens=usage.reasoning_tokens or None,
        ),
        model_ref=model,
        provider_id=provider,
    )
    return Decimal(result.total_price)


def usage(inp: int, out: int, cached: int = 0, written: int = 0, reasoning: int = 0) -> Usage:
    return Usage(inp, out, inp + out, cached, written, reasoning)


KNOWN = [
    ("openai", "gpt-4o-mini", usage(12_000, 800, cached=4_000)),
    ("openai", "gpt-5", usage(3_000, 5_000, cached=1_024, reasoning=4_000)),
    ("anthropic", "claude-haiku-4-5", usage(20_000, 700, cached=15_000, written=3_000)),
    ("anthropic", "claude-sonnet-4-5", usage(9_000, 1_200, cached=6_000, written=2_000)),
    # Past 200k input tokens Claude Sonnet's long-context tier prices every token higher.
    ("anthropic", "claude-sonnet-4-5", usage(260_000, 3_000, cached=100_000, written=50_000)),
    ("groq", "openai/gpt-oss-20b", usage(5_000, 2_000, cached=1_000)),
    ("groq", "llama-3.3-70b-versatile", usage(5_000, 2_000)),
    ("openrouter", "anthropic/claude-sonnet-4.5", usage(8_000, 900, cached=2_000, written=1_000)),
    ("openrouter", "openai/gpt-oss-20b", usage(8_000, 900)),
    ("openrouter", "openai/gpt-4o", usage(8_000, 900, cached=4_000)),  # price changed by date
    ("deepseek", "deepseek-chat", usage(8_000, 900, cached=4_000)),  # off-peak by time of day
    ("perplexity", "sonar-deep-research", usage(1_000, 9_000, reasoning=6_000)),  # reasoning rate
]


@pytest.mark.parametrize(("provider", "model", "used"), KNOWN)
def test_cost_equals_genai_prices(provider: str, model: str, used: Usage) -> None:
    detail = Pricer().cost(Deployment(provider, model), used, prices_provider=provider)
    assert detail is not None
    assert detail.source == "genai-prices"
    assert detail.total == genai_total(provider, model, used)


def test_anthropic_cache_reads_and_writes_are_priced_as_such() -> None:
    # claude-haiku-4-5: $1 input, $5 output, $0.10 cache read, $1.25 cache write per MTok.
    used = usage(20_000, 1_000, cached=15_000, written=3_000)
    detail = Pricer().cost(
        Deployment("anthropic", "claude-haiku-4-5"), used, prices_provider="anthropic"
    )
    assert detail is not None
    assert detail.input == Decimal("0.002")  # 2,000 uncached tokens
    assert detail.cached_input == Decimal("0.0015")
    assert detail.cache_write == Decimal("0.00375")
    assert detail.output == Decimal("0.005")


def test_long_context_tier_prices_cache_parts_at_the_tier_rate() -> None:
    # claude-sonnet-4-5 above 200k input: $6 input, $0.60 cache read, $7.50 cache write.
    used = usage(300_000, 1_000, cached=100_000, written=100_000)
    detail = Pricer().cost(
        Deployment("anthropic", "claude-sonnet-4-5"), used, prices_provider="anthropic"
    )
    assert detail is not None
    assert detail.cached_input == Decimal("0.06")
    assert detail.cache_write == Decimal("0.75")
    assert detail.input == Decimal("0.6")
    assert detail.total == genai_total("anthropic", "claude-sonnet-4-5", used)


def test_every_genai_prices_model_matches_calc_price() -> None:
    # The fast path applies cached unit prices itself; it must agree with genai-prices
    # for every model it knows, short and long prompts, cache and reasoning tokens.
    pricer = Pricer()
    usages = [usage(1_000, 100), usage(300_000, 2_000, 120_000, 30_000, 500), usage(5, 7, 5, 0, 7)]
    checked = 0
    for provider in genai_providers:
        for model in provider.models:
            for used in usages:
                try:
                    expected = genai_total(provider.id, model.id, used)
                except LookupError:
                    break  # genai-prices cannot find it by its own id either
                detail = pricer.cost(
                    Deployment(provider.id, model.id), used, prices_provider=provider.id
                )
                assert detail is not None, (provider.id, model.id)
                assert detail.total == expected, (provider.id, model.id, used)
                checked += 1
    assert checked > 5_000


@pytest.mark.parametrize("input_tokens", [1_000, 200_000, 200_001, 500_000])
def test_estimate_equals_the_cost_of_that_usage(input_tokens: int) -> None:
    pricer = Pricer()
    for provider, model in [("anthropic", "claude-sonnet-4-5"), ("deepseek", "deepseek-chat")]:
        expected = genai_total(provider, model, usage(input_tokens, 4_096))
        assert (
            pricer.estimate(
                Deployment(provider, model), input_tokens, 4_096, prices_provider=provider
            )
            == expected
        )


def test_served_model_is_priced_before_the_configured_one() -> None:
    pricer = Pricer()
    deployment = Deployment("openai", "gpt-4o-mini")
    used = usage(1_000_000, 0)
    detail = pricer.cost(deployment, used, prices_provider="openai", served_model="gpt-4o")
    assert detail is not None and detail.total == Decimal("2.5")


def test_deployment_price_overrides_genai_prices() -> None:
    deployment = Deployment(
        "openai", "gpt-4o-mini", price={"input": 1.0, "output": 2.0, "cached_input": 0.5}
    )
    detail = Pricer().cost(
        deployment, usage(3_000_000, 1_000_000, cached=1_000_000), prices_provider="openai"
    )
    assert detail == CostDetail(
        input=Decimal(2), output=Decimal(2), cached_input=Decimal("0.5"), source="deployment"
    )
    assert Pricer().estimate(deployment, 1_000_000, 1_000_000) == Decimal(3)


def test_deployment_price_without_cache_rates_bills_cache_tokens_as_input() -> None:
    deployment = Deployment("vllm", "my-finetune", price={"input": 2, "output": 4})
    detail = Pricer().cost(deployment, usage(1_000_000, 0, cached=250_000, written=250_000))
    assert detail is not None and detail.total == Decimal(2)


def test_provider_reported_cost_is_used() -> None:
    detail = Pricer().cost(
        Deployment("openrouter", "some/new-model"), usage(10, 10), provider_cost=Decimal("0.0123")
    )
    assert detail is not None and detail.total == Decimal("0.0123") and detail.source == "provider"


def test_local_models_cost_nothing_even_when_a_cloud_price_exists() -> None:
    pricer = Pricer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        local = pricer.cost(Deployment("ollama", "gpt-oss:20b"), usage(5_000, 5_000), local=True)
        known = pricer.cost(
            Deployment("vllm", "openai/gpt-oss-20b"), usage(5_000, 5_000), local=True
        )
    assert local == CostDetail(source="local")
    assert known is not None and known.total == 0
    assert pricer.estimate(Deployment("ollama", "llama3.2"), 1_000, 1_000, local=True) == 0


def test_unknown_price_is_none_with_exactly_one_warning_per_model() -> None:
    pricer = Pricer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert (
                pricer.cost(
                    Deployment("openai", "no-such-model-x"), usage(10, 10), prices_provider="openai"
                )
                is None
            )
        assert pricer.cost(Deployment("acme", "other-model"), usage(10, 10)) is None
        # A second deployment of the same model does not warn again.
        assert (
            pricer.cost(
                Deployment("openai", "no-such-model-x", name="backup"),
                usage(1, 1),
                prices_provider="openai",
            )
            is None
        )
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "no-such-model-x" in messages[0] and "other-model" in messages[1]
    assert (
        pricer.estimate(Deployment("openai", "no-such-model-x"), 10, 10, prices_provider="openai")
        is None
    )


def test_inconsistent_usage_is_capped_instead_of_raising() -> None:
    # More cache reads than input tokens (a buggy provider): priced as all-cached input.
    detail = Pricer().cost(
        Deployment("openai", "gpt-4o-mini"),
        Usage(100, 10, 110, cached_input_tokens=500),
        prices_provider="openai",
    )
    assert detail is not None
    assert detail.total == genai_total("openai", "gpt-4o-mini", usage(100, 10, cached=100))


def test_decimal_cost_prefers_the_exact_detail() -> None:
    assert decimal_cost(CostDetail(input=Decimal("0.1")), 0.2) == Decimal("0.1")
    assert decimal_cost(None, 0.25) == Decimal("0.25")
    assert decimal_cost(None, None) is None
