"""Model facts for routing: context window, capabilities, quality and typical speed.

Facts come from three places, most trusted first:

1. the `Deployment` itself (`quality=`, `context_window=`, `capabilities={...}`): the
   user knows their deployment best;
2. genai-prices for the context window (imported lazily, looked up once per model);
3. `data/model_priors.json`, a small file derived from public leaderboards and LiteLLM's
   model map, every figure with its source key and date (the file's `_sources` table).

`quality` is the LMArena text score (style control, 2026-10-08 snapshot) mapped linearly
onto 0..1 with fixed anchors: `clamp((arena - 1200) / 300, 0, 1)`, so 1200 (a small 8B
model) is 0 and 1500 (the best models of the snapshot) is 1. Fixed anchors keep a model's
quality stable when the file gains or loses models. The Artificial Analysis index is not
used for quality: it was rescaled twice in 2026 and many of its values are estimates.

    >>> catalog = Catalog()
    >>> info = catalog.for_deployment(Deployment(provider="openai", model="gpt-4o-mini"))
    >>> info.tools, info.context_window, round(info.quality, 2)
    (True, 128000, 0.39)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from ..errors import ConfigurationError
from ..types import Deployment

__all__ = ["CAPABILITIES", "LOCAL_PROVIDERS", "Catalog", "ModelInfo", "quality_from_arena"]

CAPABILITIES = ("tools", "vision", "json_schema", "reasoning", "pdf", "audio")
# Self-hosted servers: their context window is whatever the server was started with
# (Ollama's default is a few thousand tokens), so a public figure would mislead.
LOCAL_PROVIDERS = frozenset({"ollama", "vllm", "llamacpp", "llama.cpp", "lmstudio", "local"})
# OpenRouter forwards to the model's own vendor by default, so that vendor's speed applies.
_VENDOR_ROUTING_PROVIDERS = frozenset({"openrouter"})
# Vendors all of whose current chat models read images (Claude 3+, every Gemini).
_VISION_VENDORS = frozenset({"anthropic", "google"})
# Providers that serve other vendors' models (their catalog entries are host-specific).
_HOSTS = frozenset({"groq", "openrouter", "together", "fireworks"})

_ARENA_ZERO = 1200.0
_ARENA_SPAN = 300.0
_DATE_SUFFIX = re.compile(r"(?:[-@]\d{4}-?\d{2}-?\d{2}|-latest)$")
_DOT_IN_VERSION = re.compile(r"(?<=\d)\.(?=\d)")


def quality_from_arena(score: float) -> float:
    """Map an LMArena text score onto 0..1 (1200 -> 0, 1500 -> 1, clamped).

    >>> quality_from_arena(1455.2)
    0.851
    """
    return round(min(1.0, max(0.0, (score - _ARENA_ZERO) / _ARENA_SPAN)), 3)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the router knows about one model; `sources` names where each fact came from.

    An empty `sources` means nothing was known and every field is a default.

    >>> ModelInfo(context_window=128_000, max_output_tokens=16_384, tools=True, vision=True,
    ...           json_schema=True, reasoning=False, quality=0.39,
    ...           output_tokens_per_s=72.3, ttft_s=1.33)
    """

    context_window: int | None
    max_output_tokens: int | None
    tools: bool
    vision: bool
    json_schema: bool
    reasoning: bool
    quality: float | None
    output_tokens_per_s: float | None
    ttft_s: float | None
    sources: tuple[str, ...] = ()
    pdf: bool = False  # reads PDF documents (file parts)
    audio: bool = False  # hears wav/mp3 audio parts

    def supports(self, capability: str) -> bool:
        """Whether the model has `capability` (one of `CAPABILITIES`)."""
        return bool(getattr(self, capability))


def _media(provider: str, model: str, vision: bool) -> tuple[bool, bool]:
    """Who reads PDFs and hears audio, by rule (no public table lists it per model):
    PDFs: every Claude and Gemini, OpenAI's vision models, and anything through OpenRouter
    (it extracts PDFs itself); audio: OpenAI's and OpenRouter's `*audio*` models and Gemini.
    Set `Deployment(capabilities={"pdf": ..., "audio": ...})` where the rule is wrong."""
    vendor = (model.partition("/")[0] if "/" in model else provider).lower()
    name = model.lower()
    pdf = (
        vendor in _VISION_VENDORS
        or provider.lower() == "openrouter"
        or (vendor == "openai" and vision)
    )
    audio = "gemini" in name or (vendor == "openai" and "audio" in name)
    return pdf, audio


def _canonical(model: str) -> str:
    """Spelling-independent model name: lower case, no OpenRouter `:variant`, dots in
    version numbers as dashes (`claude-sonnet-4.5` == `claude-sonnet-4-5`)."""
    name = model.strip().lower().split(":", 1)[0]
    return _DOT_IN_VERSION.sub("-", name)


def _spellings(model: str) -> list[str]:
    """The canonical name, then the same without a dated-snapshot suffix."""
    name = _canonical(model)
    undated = _DATE_SUFFIX.sub("", name)
    return [name] if undated == name else [name, undated]


@cache
def _load_priors() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("data/model_priors.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _default_prices_provider(provider: str) -> str | None:
    return None if provider.lower() in LOCAL_PROVIDERS else provider.lower()


class Catalog:
    """Looks up model facts by provider and model name, tolerant of spelling.

    Names match across provider prefixes (OpenRouter's `anthropic/claude-sonnet-4.5`,
    Groq's `openai/gpt-oss-20b`), dotted or dashed versions and dated snapshots
    (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`). When a model is found under
    another provider, its quality and capabilities carry over but its speed does not
    (different hardware), except through OpenRouter, which forwards to the vendor.

    Unknown models get defaults that keep them usable but never claim what is unlikely:
    `tools` and `json_schema` are assumed (every provider API this package speaks has them,
    and a model that lacks them fails loudly with the provider's message); `vision` is
    assumed only for Anthropic and Google models (every Claude since 3 and every Gemini
    reads images), because sending an image to a text-only model is an error no fallback
    can fix; `reasoning` is False;
    context window, quality and speed are unknown (None), which strategies treat as neutral.
    Set `Deployment(capabilities={...})` to correct any of it.

    `prices_provider(provider)` names the genai-prices provider id (None: do not ask
    genai-prices); `is_local(provider)` says a provider is self-hosted, whose context
    window is the server's setting, so no public figure is claimed for it.

    >>> Catalog().lookup("openrouter", "anthropic/claude-sonnet-4.5").quality
    0.851
    """

    def __init__(
        self,
        *,
        prices_provider: Callable[[str], str | None] | None = None,
        is_local: Callable[[str], bool] | None = None,
        use_genai_prices: bool = True,
    ) -> None:
        self._prices_provider = prices_provider or _default_prices_provider
        self._is_local = is_local or (lambda provider: provider in LOCAL_PROVIDERS)
        self._use_genai_prices = use_genai_prices
        self._lookups: dict[tuple[str, str], ModelInfo | None] = {}
        self._index: dict[str, tuple[str, dict[str, Any]]] | None = None
        self._by_name: dict[str, tuple[str, dict[str, Any]]] = {}

    # ------------------------------------------------------------------ lookup
    def lookup(self, provider: str, model: str) -> ModelInfo | None:
        """Known facts about `model` at `provider`, or None when nothing is known.

        >>> Catalog().lookup("groq", "openai/gpt-oss-20b").output_tokens_per_s
        1000.0
        """
        key = (provider.lower(), model)
        if key not in self._lookups:
            self._lookups[key] = self._compute(provider.lower(), model)
        return self._lookups[key]

    def for_deployment(self, deployment: Deployment) -> ModelInfo:
        """The facts for one deployment: catalog knowledge, defaults, then its overrides.

        >>> Catalog().for_deployment(Deployment("ollama", "llama3.2", capabilities={"tools": False})).tools
        False
        """
        info = self.lookup(deployment.provider, deployment.model) or self._defaults(
            deployment.provider, deployment.model
        )
        changes: dict[str, Any] = {}
        sources = list(info.sources)
        if deployment.quality is not None:
            if not 0.0 <= deployment.quality <= 1.0:
                raise ConfigurationError(
                    f"deployment {deployment.key!r}: quality must be between 0 and 1, "
                    f"got {deployment.quality}"
                )
            changes["quality"] = float(deployment.quality)
        if deployment.context_window is not None:
            if deployment.context_window <= 0:
                raise ConfigurationError(
                    f"deployment {deployment.key!r}: context_window must be positive"
                )
            changes["context_window"] = int(deployment.context_window)
        for capability, value in (deployment.capabilities or {}).items():
            if capability not in CAPABILITIES:
                raise ConfigurationError(
                    f"deployment {deployment.key!r}: unknown capability {capability!r}; "
                    f"known: {', '.join(CAPABILITIES)}"
                )
            changes[capability] = bool(value)
        if changes:
            sources.append("deployment")
            changes["sources"] = tuple(dict.fromkeys(sources))
            info = replace(info, **changes)
        return info

    # -------------------------------------------------------------- internals
    @staticmethod
    def _defaults(provider: str, model: str) -> ModelInfo:
        vendor = model.partition("/")[0] if "/" in model else provider
        vision = vendor.lower() in _VISION_VENDORS
        pdf, audio = _media(provider, model, vision)
        return ModelInfo(
            context_window=None,
            max_output_tokens=None,
            tools=True,
            vision=vision,
            json_schema=True,
            reasoning=False,
            quality=None,
            output_tokens_per_s=None,
            ttft_s=None,
            pdf=pdf,
            audio=audio,
        )

    def _compute(self, provider: str, model: str) -> ModelInfo | None:
        found = self._find(provider, model)
        window = self._genai_context_window(provider, model)
        if found is None and window is None:
            return None
        info = self._defaults(provider, model)
        changes: dict[str, Any] = {}
        sources: list[str] = []
        if found is not None:
            entry, same_host = found
            changes, sources = _facts(entry, keep_speed=same_host)
            if self._is_local(provider):
                changes.pop("context_window", None)
        if window is not None:
            changes["context_window"] = window
            sources.append("genai-prices")
        changes["sources"] = tuple(dict.fromkeys(sources))
        info = replace(info, **changes)
        pdf, audio = _media(provider, model, info.vision)
        return replace(info, pdf=pdf, audio=audio)

    def _find(self, provider: str, model: str) -> tuple[dict[str, Any], bool] | None:
        """The priors entry for a model, and whether its speed applies to this provider."""
        index = self._build_index()
        for spelling in _spellings(model):
            if f"{provider}/{spelling}" in index:
                return index[f"{provider}/{spelling}"][1], True
        vendor, slash, rest = model.partition("/")
        if slash:  # "vendor/model" as OpenRouter and Groq spell it
            for spelling in _spellings(rest):
                if f"{vendor.lower()}/{spelling}" in index:
                    return index[f"{vendor.lower()}/{spelling}"][1], (
                        provider in _VENDOR_ROUTING_PROVIDERS
                    )
        for spelling in _spellings(model.rsplit("/", 1)[-1]):
            if spelling in self._by_name:
                return self._by_name[spelling][1], False
        return None

    def _build_index(self) -> dict[str, tuple[str, dict[str, Any]]]:
        if self._index is None:
            index: dict[str, tuple[str, dict[str, Any]]] = {}
            by_name: dict[str, tuple[str, dict[str, Any]]] = {}
            for key, entry in _load_priors()["models"].items():
                entry_provider, _, name = key.partition("/")
                index[f"{entry_provider}/{_canonical(name)}"] = (entry_provider, entry)
                short = _canonical(name.rsplit("/", 1)[-1])
                # A model's own vendor wins over a host serving it under the same name.
                current = by_name.get(short)
                if current is None or (current[0] in _HOSTS and entry_provider not in _HOSTS):
                    by_name[short] = (entry_provider, entry)
            self._index, self._by_name = index, by_name
        return self._index

    def _genai_context_window(self, provider: str, model: str) -> int | None:
        if not self._use_genai_prices:
            return None
        prices_provider = self._prices_provider(provider)
        if prices_provider is None:
            return None
        try:
            from genai_prices import data_snapshot
        except ImportError:  # pragma: no cover - genai-prices is a declared dependency
            return None
        try:
            _, found = data_snapshot.get_snapshot().find_provider_model(
                model, None, prices_provider, None
            )
        except LookupError:
            return None
        window = getattr(found, "context_window", None)
        return int(window) if isinstance(window, int) and window > 0 else None


def _facts(entry: Mapping[str, Any], *, keep_speed: bool) -> tuple[dict[str, Any], list[str]]:
    """ModelInfo fields and their source keys from one entry of the priors file."""
    changes: dict[str, Any] = {}
    sources: list[str] = []
    if entry.get("capabilities_source"):
        for field in ("context_window", "max_output_tokens", *CAPABILITIES):
            if entry.get(field) is not None:
                changes[field] = entry[field]
        sources.append(entry["capabilities_source"])
    if entry.get("arena_score") is not None:
        changes["quality"] = quality_from_arena(float(entry["arena_score"]))
        sources.append(entry["arena_source"])
    if keep_speed and entry.get("output_tokens_per_s") is not None:
        changes["output_tokens_per_s"] = float(entry["output_tokens_per_s"])
        if entry.get("ttft_s") is not None:
            changes["ttft_s"] = float(entry["ttft_s"])
        sources.append(entry["speed_source"])
    return changes, sources
