"""The model catalog: name matching, sources, defaults for unknown models, overrides."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from llmrouter_integrations.errors import ConfigurationError
from llmrouter_integrations.routing.catalog import Catalog, ModelInfo, quality_from_arena
from llmrouter_integrations.types import Deployment


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def test_known_model_has_context_capabilities_quality_and_speed(catalog: Catalog) -> None:
    info = catalog.lookup("openai", "gpt-4o-mini")
    assert info is not None
    assert info.context_window == 128_000
    assert info.max_output_tokens == 16_384
    assert (info.tools, info.vision, info.json_schema) == (True, True, True)
    assert info.quality == pytest.approx(quality_from_arena(1317.6))
    assert info.output_tokens_per_s == pytest.approx(72.3)
    assert info.ttft_s == pytest.approx(1.33)
    assert "lmarena-text-2026-10-08" in info.sources
    assert "genai-prices" in info.sources  # the context window came from genai-prices


def test_quality_mapping_is_anchored_and_clamped() -> None:
    assert quality_from_arena(1200) == 0.0
    assert quality_from_arena(1500) == 1.0
    assert quality_from_arena(1600) == 1.0
    assert quality_from_arena(1100) == 0.0
    assert quality_from_arena(1350) == 0.5


@pytest.mark.parametrize(
    ("provider", "model", "expected_quality_of"),
    [
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),  # dated
        ("openrouter", "anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4-5"),  # dotted
        ("openai", "gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("openrouter", "openai/gpt-4o-mini:free", "openai/gpt-4o-mini"),  # OpenRouter variant
        ("anthropic", "claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku"),
        ("groq", "openai/gpt-oss-20b", "groq/openai/gpt-oss-20b"),
        ("azure", "gpt-4.1", "openai/gpt-4.1"),  # found under another provider by name
    ],
)
def test_model_names_match_across_spellings(
    catalog: Catalog, provider: str, model: str, expected_quality_of: str
) -> None:
    data = json.loads(
        resources.files("llmrouter_integrations.routing")
        .joinpath("data/model_priors.json")
        .read_text("utf-8")
    )
    info = catalog.lookup(provider, model)
    assert info is not None
    assert info.quality == quality_from_arena(data["models"][expected_quality_of]["arena_score"])


def test_speed_only_carries_to_the_same_host(catalog: Catalog) -> None:
    groq = catalog.lookup("groq", "openai/gpt-oss-20b")
    assert groq is not None and groq.output_tokens_per_s == 1000  # Groq's published figure
    elsewhere = catalog.lookup("openrouter", "openai/gpt-oss-20b")
    assert elsewhere is not None
    assert elsewhere.quality == groq.quality
    assert elsewhere.output_tokens_per_s is None  # different hardware: no claim
    assert catalog.lookup("azure", "gpt-4.1").output_tokens_per_s is None  # type: ignore[union-attr]
    # OpenRouter forwards to the vendor, whose speed applies.
    via_openrouter = catalog.lookup("openrouter", "anthropic/claude-sonnet-4.5")
    assert via_openrouter is not None and via_openrouter.output_tokens_per_s == pytest.approx(43.2)


def test_unknown_model_gets_documented_defaults(catalog: Catalog) -> None:
    assert catalog.lookup("ollama", "llama3.2") is None
    info = catalog.for_deployment(Deployment(provider="ollama", model="llama3.2"))
    assert info.tools and info.json_schema
    assert not info.vision and not info.reasoning
    assert info.context_window is None and info.quality is None
    assert info.output_tokens_per_s is None
    assert info.sources == ()
    claude = catalog.for_deployment(Deployment(provider="anthropic", model="claude-future-9"))
    assert claude.vision  # every Claude reads images


def test_local_models_take_quality_but_no_public_window_or_speed(catalog: Catalog) -> None:
    # A self-hosted server's window is whatever it was started with; its speed is your GPU's.
    info = catalog.for_deployment(Deployment(provider="vllm", model="openai/gpt-oss-20b"))
    hosted = catalog.lookup("groq", "openai/gpt-oss-20b")
    assert hosted is not None and hosted.context_window is not None
    assert info.quality == hosted.quality
    assert info.context_window is None
    assert info.output_tokens_per_s is None
    assert "genai-prices" not in info.sources


def test_deployment_overrides_win(catalog: Catalog) -> None:
    deployment = Deployment(
        provider="openai",
        model="gpt-4o-mini",
        quality=0.9,
        context_window=8_000,
        capabilities={"tools": False, "vision": False},
    )
    info = catalog.for_deployment(deployment)
    assert info.quality == 0.9
    assert info.context_window == 8_000
    assert not info.tools and not info.vision
    assert info.json_schema  # not overridden: the catalog's fact stays
    assert info.sources[-1] == "deployment"


@pytest.mark.parametrize(
    "fields",
    [{"quality": 1.5}, {"context_window": 0}, {"capabilities": {"function_calling": True}}],
)
def test_bad_overrides_are_configuration_errors(catalog: Catalog, fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        catalog.for_deployment(Deployment(provider="openai", model="gpt-4o-mini", **fields))


def test_without_genai_prices_the_priors_file_supplies_the_window() -> None:
    info = Catalog(use_genai_prices=False).lookup("anthropic", "claude-haiku-4-5")
    assert info is not None
    assert info.context_window == 200_000
    assert "genai-prices" not in info.sources


def test_every_shipped_entry_names_sources_that_exist() -> None:
    data = json.loads(
        resources.files("llmrouter_integrations.routing")
        .joinpath("data/model_priors.json")
        .read_text("utf-8")
    )
    sources = data["_sources"]
    for key, entry in data["models"].items():
        named = [entry.get(k) for k in ("arena_source", "speed_source", "capabilities_source")]
        named = [n for n in named if n]
        assert named, key
        assert all(n in sources for n in named), key
        if "arena_score" in entry:
            assert entry["arena_date"], key
        if "output_tokens_per_s" in entry:
            assert entry["speed_date"], key


def test_model_info_supports() -> None:
    info = ModelInfo(
        context_window=None,
        max_output_tokens=None,
        tools=True,
        vision=False,
        json_schema=True,
        reasoning=False,
        quality=None,
        output_tokens_per_s=None,
        ttft_s=None,
    )
    assert info.supports("tools") and not info.supports("vision")
