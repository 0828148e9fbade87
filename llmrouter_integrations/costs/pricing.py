"""Prices usage in USD: a deployment's own price, the provider's reported cost, genai-prices.

>>> pricer = Pricer()
>>> detail = pricer.cost(Deployment("openai", "gpt-4o-mini"), Usage(1000, 100, 1100))
>>> float(detail.total)
0.00021
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from datetime import time as dt_time
from decimal import Decimal
from typing import Any

from ..types import CostDetail, Deployment, Usage

__all__ = ["Pricer", "UnitPrices", "decimal_cost"]

log = logging.getLogger("llmrouter_integrations")
_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)

# genai-prices price keys we can evaluate ourselves from our token counts. Prices for the
# keys in _ZERO_COUNT_KEYS apply to usage we never report (audio, images, web searches,
# 5-minute cache writes apart from the rest), so genai-prices counts 0 of them for our usage too. Any other key
# (per-request fees, citations...) or a date-dependent price sends the model down the slow,
# exact path: genai-prices' own calc_price on every call.
_TOKEN_KEYS = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "output_reasoning_mtok",
    }
)
_ZERO_COUNT_KEYS = frozenset(
    {
        "cache_write_5m_mtok",
        "input_audio_mtok",
        "output_audio_mtok",
        "cache_audio_read_mtok",
        "input_image_mtok",
        "output_image_mtok",
        "cache_image_read_mtok",
        "input_video_mtok",
        "output_video_mtok",
        "web_searches_kcount",
        "storage_searches_kcount",
    }
)


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """USD per million tokens. `cache_write_1h` prices Anthropic's one-hour cache writes
    (default: `cache_write`, else `input`).

    >>> UnitPrices.from_mapping({"input": 0.15, "output": 0.6}).input
    Decimal('0.15')
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None

    @classmethod
    def from_mapping(cls, price: dict[str, float]) -> UnitPrices:
        def dec(key: str) -> Decimal | None:
            value = price.get(key)
            return None if value is None else Decimal(str(value))

        return cls(
            input=dec("input") or _ZERO,
            output=dec("output") or _ZERO,
            cached_input=dec("cached_input"),
            cache_write=dec("cache_write"),
            cache_write_1h=dec("cache_write_1h"),
        )

    def cost(self, usage: Usage, source: str) -> CostDetail:
        _, cached, written, _ = _clamped(usage)
        plain = usage.input_tokens - cached - written
        hour = _hour_writes(usage, written)
        cached_rate = self.cached_input if self.cached_input is not None else self.input
        write_rate = self.cache_write if self.cache_write is not None else self.input
        hour_rate = self.cache_write_1h if self.cache_write_1h is not None else write_rate
        return CostDetail(
            input=plain * self.input / _MILLION,
            output=usage.output_tokens * self.output / _MILLION,
            cached_input=cached * cached_rate / _MILLION,
            cache_write=((written - hour) * write_rate + hour * hour_rate) / _MILLION,
            source=source,
        )


def _hour_writes(usage: Usage, written: int) -> int:
    """The part of `written` (clamped cache writes) written for an hour."""
    return min(max(0, usage.cache_write_1h_tokens), written)


def _clamped(usage: Usage) -> tuple[int, int, int, int]:
    """(input, cache reads, cache writes, reasoning), made consistent.

    Cache reads and writes are part of the input, reasoning part of the output; a provider
    that reports more than that would make genai-prices raise, so cap them instead.
    """
    total_input = usage.input_tokens
    if not (usage.cached_input_tokens or usage.cache_write_tokens or usage.reasoning_tokens):
        return (total_input if total_input > 0 else 0), 0, 0, 0  # the usual plain usage
    total_input = max(0, total_input)
    cached = min(max(0, usage.cached_input_tokens), total_input)
    written = min(max(0, usage.cache_write_tokens), total_input - cached)
    reasoning = min(max(0, usage.reasoning_tokens), max(0, usage.output_tokens))
    return total_input, cached, written, reasoning


def _rate(price: Any, total_input: int) -> Decimal:
    """A unit price, honouring long-context tiers the way genai-prices does.

    Crossing a tier's start (in total input tokens) prices *all* tokens at that tier.
    """
    if isinstance(price, Decimal):
        return price
    rate: Decimal = price.base
    for tier in reversed(price.tiers):
        if total_input > tier.start:
            return Decimal(tier.price)
    return rate


@dataclass(frozen=True, slots=True)
class _ModelPrices:
    """One genai-prices model's token prices, resolved once; `fast` when we can price it alone."""

    snapshot: Any  # the genai-prices data snapshot it came from (prices can be updated live)
    fast: bool = False
    known: bool = True
    valid_until: float = math.inf  # wall-clock time of the next announced price change
    input: Any = None
    output: Any = None
    cache_read: Any = None
    cache_write: Any = None
    cache_write_1h: Any = None
    reasoning: Any = None

    def split(self, usage: Usage) -> CostDetail:
        """Cost per kind of token (fast path: equals genai-prices' calc_price)."""
        total_input, cached, written, reasoning = _clamped(usage)
        plain_input = total_input
        input_part = cached_part = write_part = reasoning_part = output_part = _ZERO
        if self.cache_read is not None and cached:
            plain_input -= cached
            cached_part = _rate(self.cache_read, total_input) * cached / _MILLION
        if self.cache_write is not None and written:
            plain_input -= written
            hour = _hour_writes(usage, written) if self.cache_write_1h is not None else 0
            write_part = _rate(self.cache_write, total_input) * (written - hour) / _MILLION
            if hour:
                write_part += _rate(self.cache_write_1h, total_input) * hour / _MILLION
        price = self.input
        if price is not None and plain_input:
            rate = price if type(price) is Decimal else _rate(price, total_input)
            input_part = rate * plain_input / _MILLION
        plain_output = usage.output_tokens
        if plain_output < 0:
            plain_output = 0
        if self.reasoning is not None and reasoning:
            plain_output -= reasoning
            reasoning_part = _rate(self.reasoning, total_input) * reasoning / _MILLION
        price = self.output
        if price is not None and plain_output:
            rate = price if type(price) is Decimal else _rate(price, total_input)
            output_part = rate * plain_output / _MILLION
        return CostDetail(
            input=input_part,
            output=output_part + reasoning_part,
            cached_input=cached_part,
            cache_write=write_part,
            source="genai-prices",
        )

    def estimate(self, input_tokens: int, output_tokens: int) -> Decimal:
        """`split(...).total` for a call without cache or reasoning tokens, without the split."""
        total = _ZERO
        price = self.input
        if price is not None and input_tokens > 0:
            rate = price if type(price) is Decimal else _rate(price, input_tokens)
            total += rate * input_tokens / _MILLION
        price = self.output
        if price is not None and output_tokens > 0:
            rate = price if type(price) is Decimal else _rate(price, input_tokens)
            total += rate * output_tokens / _MILLION
        return total


def _model_prices(
    model_price: Any, snapshot: Any, fast: bool, valid_until: float = math.inf
) -> _ModelPrices:
    def get(key: str) -> Any:
        return getattr(model_price, key, None)

    return _ModelPrices(
        snapshot=snapshot,
        fast=fast,
        valid_until=valid_until,
        input=get("input_mtok"),
        output=get("output_mtok"),
        cache_read=get("cache_read_mtok"),
        cache_write=get("cache_write_mtok"),
        cache_write_1h=get("cache_write_1h_mtok"),
        reasoning=get("output_reasoning_mtok"),
    )


def _resolve_prices(info: Any, snapshot: Any) -> _ModelPrices:
    """A genai-prices model's prices as of now, and until when they hold.

    Prices that change on announced dates (StartDateConstraint) are resolved for today and
    kept until the next change; time-of-day prices (off-peak discounts) are never cached.
    """
    from genai_prices.types import ModelPrice, StartDateConstraint

    valid_until = math.inf
    current: Any = None
    if isinstance(info.prices, ModelPrice):
        current = info.prices
    elif all(
        c.constraint is None or isinstance(c.constraint, StartDateConstraint) for c in info.prices
    ):
        now = datetime.now(timezone.utc)
        current = info.get_prices(now)
        upcoming = [
            c.constraint.start_date
            for c in info.prices
            if c.constraint is not None and c.constraint.start_date > now.date()
        ]
        if upcoming:
            midnight = datetime.combine(min(upcoming), dt_time(), tzinfo=timezone.utc)
            valid_until = midnight.timestamp()
    fast = current is not None and all(
        name in _TOKEN_KEYS or name in _ZERO_COUNT_KEYS
        for name, value in vars(current).items()
        if value is not None
    )
    return _model_prices(current if fast else None, snapshot, fast, valid_until)


class Pricer:
    """Turns usage into `CostDetail`, in this order of trust:

    1. `Deployment.price` (the user said so: overrides, unknown and self-hosted models);
    2. the cost the provider reported for this call (OpenRouter's `usage.cost`);
    3. local endpoints (Ollama, vLLM, llama.cpp on your machine) cost 0, whatever a cloud
       provider charges for the same model;
    4. genai-prices for the served model, else the configured one;
    5. otherwise None, with one warning per model, never a silent 0.

    genai-prices is asked once per (provider, model): its token prices (long-context tiers
    and announced price changes included) are then applied here in a few microseconds.
    Models priced by time of day or per request go through `calc_price` on every call.

    >>> Pricer().estimate(Deployment("openai", "gpt-4o-mini"), 1000, 100, prices_provider="openai")
    Decimal('0.00021')
    """

    def __init__(self) -> None:
        self._models: dict[tuple[str | None, str], _ModelPrices] = {}
        self._overrides: dict[int, tuple[dict[str, float], UnitPrices]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._get_snapshot: Callable[[], Any] | None = None

    def cost(
        self,
        deployment: Deployment,
        usage: Usage,
        *,
        prices_provider: str | None = None,
        local: bool = False,
        served_model: str | None = None,
        provider_cost: Decimal | None = None,
    ) -> CostDetail | None:
        """The cost of one call's usage; None (and one warning per model) when unknown."""
        if deployment.price is not None:
            return self._override(deployment.price).cost(usage, "deployment")
        if provider_cost is not None:
            return CostDetail(input=provider_cost, source="provider")
        if local:
            return CostDetail(source="local")
        detail = self._genai_prices(prices_provider, served_model, usage)
        if detail is None and served_model != deployment.model:
            detail = self._genai_prices(prices_provider, deployment.model, usage)
        if detail is not None:
            return detail
        self._warn_unknown(deployment)
        return None

    def estimate(
        self,
        deployment: Deployment,
        input_tokens: int,
        output_tokens: int,
        *,
        prices_provider: str | None = None,
        local: bool = False,
    ) -> Decimal | None:
        """Cost of a hypothetical call (no cache discount): for budgets and the cost strategy."""
        if deployment.price is not None:
            usage = Usage(input_tokens, output_tokens, input_tokens + output_tokens)
            return self._override(deployment.price).cost(usage, "deployment").total
        if local:
            return _ZERO
        prices = self._resolve(prices_provider, deployment.model)
        if prices is None:
            return None
        if prices.fast:
            return prices.estimate(input_tokens, output_tokens)
        usage = Usage(input_tokens, output_tokens, input_tokens + output_tokens)
        return self._calc_price(prices_provider, deployment.model, usage).total

    def _override(self, price: dict[str, float]) -> UnitPrices:
        # Keyed by the dict's identity and checked by value, so an edited dict is re-read.
        cached = self._overrides.get(id(price))
        if cached is not None and cached[0] == price:
            return cached[1]
        prices = UnitPrices.from_mapping(price)
        self._overrides[id(price)] = (dict(price), prices)
        return prices

    def _genai_prices(
        self, provider: str | None, model: str | None, usage: Usage
    ) -> CostDetail | None:
        if not model:
            return None
        prices = self._resolve(provider, model)
        if prices is None:
            return None
        if prices.fast:
            return prices.split(usage)
        return self._calc_price(provider, model, usage)

    def _resolve(self, provider: str | None, model: str) -> _ModelPrices | None:
        read_snapshot = self._get_snapshot
        if read_snapshot is None:
            from genai_prices.data_snapshot import get_snapshot

            read_snapshot = self._get_snapshot = get_snapshot
        snapshot = read_snapshot()
        key = (provider, model)
        cached = self._models.get(key)
        if (
            cached is not None
            and cached.snapshot is snapshot
            and (cached.valid_until == math.inf or time.time() < cached.valid_until)
        ):
            return cached if cached.known else None
        try:
            _, info = snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            self._models[key] = _ModelPrices(snapshot, known=False)
            return None
        resolved = _resolve_prices(info, snapshot)
        self._models[key] = resolved
        return resolved

    def _calc_price(self, provider: str | None, model: str, usage: Usage) -> CostDetail:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price

        total_input, cached, written, reasoning = _clamped(usage)
        result: Any = calc_price(
            PriceUsage(
                input_tokens=total_input,
                output_tokens=max(0, usage.output_tokens),
                cache_read_tokens=cached or None,
                cache_write_tokens=written or None,
                cache_write_1h_tokens=_hour_writes(usage, written) or None,
                output_reasoning_tokens=reasoning or None,
            ),
            model_ref=model,
            provider_id=provider,
        )
        # Split cache parts out with the same tier rule; whatever else the model charges
        # (a per-request fee, say) stays in `input`, so the total is genai-prices' own.
        parts = _model_prices(result.model_price, None, False).split(usage)
        total = Decimal(result.total_price)
        output = Decimal(result.output_price)
        return CostDetail(
            input=total - output - parts.cached_input - parts.cache_write,
            output=output,
            cached_input=parts.cached_input,
            cache_write=parts.cache_write,
            source="genai-prices",
        )

    def _warn_unknown(self, deployment: Deployment) -> None:
        model_key = (deployment.provider, deployment.model)
        if model_key in self._warned:
            return
        self._warned.add(model_key)
        message = (
            f"no price known for model {deployment.model!r} at {deployment.provider!r} "
            f"(deployment {deployment.key!r}); its cost is reported as None. Set "
            "Deployment(price={'input': ..., 'output': ...}) in USD per million tokens."
        )
        warnings.warn(message, stacklevel=3)
        log.warning(message)


def decimal_cost(detail: CostDetail | None, cost: float | None) -> Decimal | None:
    """The exact cost of an answer: its `cost_detail` total, else its float `cost`, else None.

    >>> decimal_cost(response.cost_detail, response.cost)
    Decimal('0.00021')
    """
    if detail is not None:
        return detail.total
    return None if cost is None else Decimal(str(cost))
