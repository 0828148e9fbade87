"""Run thousands of requests per routing strategy against faulty fake providers; compare.

Four providers on one FakeProviderServer (real HTTP on 127.0.0.1), each with a different
price (genai-prices' real prices for these models; every answer reports 300 input and 100
output tokens), quality (the catalog's arena-based scores), speed and fault profile:

| deployment                               | latency | fault                                     |
|------------------------------------------|---------|-------------------------------------------|
| groq/openai/gpt-oss-20b (cheapest)       | 30 ms   | flaky: 30% of request blocks hang          |
| openai/gpt-4o-mini (cheap)               | 80 ms   | degrades mid-run (35%-65%): 450 ms, and    |
|                                          |         | a third of its blocks answer 503; recovers |
| anthropic/claude-haiku-4-5 (mid price)   | 150 ms  | none                                       |
| openrouter/anthropic/claude-sonnet-4.5   | 300 ms  | none (most expensive, best quality)        |

Faults are scheduled by request number in blocks of `--block` requests from one seeded
RNG, so every strategy meets exactly the same faults at the same point of its run.
Each attempt may take 0.5 s (`Deployment.timeout`), each deployment is tried twice
(`RetryPolicy(max_attempts=2)`), and the whole request has 1.0 s (`Router(timeout=1.0)`):
a request that starts on a hanging provider burns its budget there and fails, which is
what a strategy that learns from failures avoids. Deployments are listed cheapest first,
so `priority` is "cheapest provider first, the rest as fallbacks".

    python benchmarks/simulate_strategies.py                       # all strategies, 2,000 each
    python benchmarks/simulate_strategies.py --requests 500 --strategies priority,balanced
    python benchmarks/simulate_strategies.py --plot strategies.png # needs matplotlib
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmrouter_integrations import Deployment, RetryPolicy, Router
from llmrouter_integrations.costs.pricing import Pricer
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

STRATEGIES = [
    "priority",
    "round_robin",
    "weighted",
    "least_busy",
    "cost",
    "quality",
    "latency",
    "balanced",
]
API_KEY = "sk-simulation-0000000000"
ATTEMPT_TIMEOUT_S = 0.5
REQUEST_TIMEOUT_S = 1.0
INPUT_TOKENS, OUTPUT_TOKENS = 300, 100


@dataclass(frozen=True)
class Provider:
    label: str
    provider: str
    model: str
    latency_s: float


PROVIDERS = [
    Provider("groq", "groq", "openai/gpt-oss-20b", 0.03),
    Provider("openai", "openai", "gpt-4o-mini", 0.08),
    Provider("anthropic", "anthropic", "claude-haiku-4-5", 0.15),
    Provider("openrouter", "openrouter", "anthropic/claude-sonnet-4.5", 0.30),
]
FLAKY, DEGRADING = "groq", "openai"


def fault_schedule(blocks: int, seed: int) -> list[dict[str, dict[str, Any]]]:
    """Per block of requests, the behaviour changes of each faulty provider."""
    rng = random.Random(seed)
    schedule: list[dict[str, dict[str, Any]]] = []
    for block in range(blocks):
        progress = block / blocks
        degraded = 0.35 <= progress < 0.65
        schedule.append(
            {
                FLAKY: {"hang": rng.random() < 0.3},
                DEGRADING: {
                    "latency_s": 0.45 if degraded else 0.08,
                    "permanent_error": 503 if degraded and rng.random() < 1 / 3 else None,
                },
            }
        )
    return schedule


@dataclass
class Result:
    strategy: str
    latencies: list[float] = field(default_factory=list)  # successful requests, seconds
    failures: Counter[str] = field(default_factory=Counter)
    served: Counter[str] = field(default_factory=Counter)
    # Successes served by the degrading provider before / during / after its bad phase.
    degrading_by_phase: list[Counter[str]] = field(
        default_factory=lambda: [Counter(), Counter(), Counter()]
    )
    cost_usd: float = 0.0
    requests: int = 0
    wall_s: float = 0.0

    @property
    def success_rate(self) -> float:
        return len(self.latencies) / self.requests if self.requests else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def base_url(fake: FakeProviderServer, provider: str) -> str:
    return {
        "openai": fake.openai_base_url,
        "anthropic": fake.anthropic_base_url,
        "groq": fake.groq_base_url,
        "openrouter": fake.openrouter_base_url,
    }[provider]


def make_router(fake: FakeProviderServer, strategy: str) -> Router:
    deployments = [
        Deployment(
            provider=p.provider,
            model=p.model,
            name=p.label,
            api_key=API_KEY,
            base_url=base_url(fake, p.provider),
            timeout=ATTEMPT_TIMEOUT_S,
        )
        for p in PROVIDERS
    ]
    options: dict[str, Any] = {}
    if "breaker" in inspect.signature(Router).parameters:
        from llmrouter_integrations.routing.health import BreakerPolicy

        # Time is compressed (a run lasts seconds, not hours), so the breaker rests seconds
        # and old errors fade in seconds too.
        options["breaker"] = BreakerPolicy(
            cooldown_s=2.0, max_cooldown_s=20.0, error_half_life_s=2.0
        )
    return Router(
        deployments=deployments,
        strategy=strategy,
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.05, max_backoff_s=0.1),
        timeout=REQUEST_TIMEOUT_S,
        **options,
    )


def usage_of(p: Provider) -> dict[str, float]:
    """Every answer reports the same token counts, so costs differ by price alone.

    OpenRouter reports its own `usage.cost`; we make it what genai-prices says the model
    costs, so no provider looks cheaper than it is.
    """
    usage: dict[str, float] = {"input": INPUT_TOKENS, "output": OUTPUT_TOKENS}
    if p.provider == "openrouter":
        deployment = Deployment(provider=p.provider, model=p.model)
        cost = Pricer().estimate(
            deployment, INPUT_TOKENS, OUTPUT_TOKENS, prices_provider=p.provider
        )
        assert cost is not None, f"genai-prices has no price for {p.model}"
        usage["cost"] = float(cost)
    return usage


def reset_behaviors(fake: FakeProviderServer) -> None:
    fake.reset()
    for p in PROVIDERS:
        behavior = ModelBehavior(latency_s=p.latency_s, reply="A short answer.", usage=usage_of(p))
        fake.set_behavior(p.model, behavior)


async def run_strategy(
    fake: FakeProviderServer,
    strategy: str,
    schedule: list[dict[str, dict[str, Any]]],
    *,
    requests: int,
    concurrency: int,
    block: int,
) -> Result:
    reset_behaviors(fake)
    model_of = {p.label: p.model for p in PROVIDERS}
    result = Result(strategy)
    next_index = 0
    applied_block = -1

    async with make_router(fake, strategy) as router:

        async def worker() -> None:
            nonlocal next_index, applied_block
            while next_index < requests:
                index = next_index
                next_index += 1
                current = index // block
                if current != applied_block:
                    applied_block = current
                    for label, fields in schedule[current].items():
                        fake.update_behavior(model_of[label], **fields)
                started = time.perf_counter()
                try:
                    response = await router.achat(
                        [{"role": "user", "content": f"Question {index}: explain routing."}],
                        max_tokens=100,
                    )
                except Exception as error:  # a failed request is data here, not a crash
                    result.failures[type(error).__name__] += 1
                    continue
                result.latencies.append(time.perf_counter() - started)
                result.served[response.deployment] += 1
                phase = 0 if index < 0.35 * requests else 1 if index < 0.65 * requests else 2
                result.degrading_by_phase[phase][response.deployment] += 1
                result.cost_usd += response.cost or 0.0

        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall_s = time.perf_counter() - wall
    result.requests = requests
    return result


def print_table(results: list[Result]) -> None:
    labels = [p.label for p in PROVIDERS]
    header = (
        f"{'strategy':<12} {'success':>8} {'p50 ms':>7} {'p95 ms':>7} {'cost $':>9}  "
        + "  ".join(f"{label:>10}" for label in labels)
        + f"  {DEGRADING + ' pre/mid/post':>20}   failures"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        served = sum(r.served.values()) or 1
        shares = "  ".join(f"{100 * r.served[label] / served:>9.1f}%" for label in labels)
        failures = ", ".join(f"{name} {n}" for name, n in r.failures.most_common()) or "-"
        phases = "/".join(
            f"{100 * c[DEGRADING] / (sum(c.values()) or 1):.0f}" for c in r.degrading_by_phase
        )
        print(
            f"{r.strategy:<12} {100 * r.success_rate:>7.1f}% {r.percentile_ms(0.5):>7.0f} "
            f"{r.percentile_ms(0.95):>7.0f} {r.cost_usd:>9.4f}  {shares}  {phases + '%':>20}"
            f"   {failures}"
        )
    print(
        "(share = successful requests served by each deployment; latency of successes;\n"
        f" {DEGRADING} pre/mid/post = its share before, during and after its degraded phase)"
    )


def plot(results: list[Result], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.strategy for r in results]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.5))
    axes[0].bar(names, [100 * r.success_rate for r in results], color="tab:green")
    axes[0].set_title("success rate (%)")
    axes[0].set_ylim(min(100 * r.success_rate for r in results) - 5, 100)
    positions = list(range(len(results)))
    axes[1].bar(
        [x - 0.2 for x in positions], [r.percentile_ms(0.5) for r in results], 0.4, label="p50"
    )
    axes[1].bar(
        [x + 0.2 for x in positions], [r.percentile_ms(0.95) for r in results], 0.4, label="p95"
    )
    axes[1].set_xticks(positions, names)
    axes[1].set_title("latency of successes (ms)")
    axes[1].legend()
    axes[2].bar(names, [r.cost_usd for r in results], color="tab:orange")
    axes[2].set_title("total cost (USD)")
    bottom = [0.0] * len(results)
    for p in PROVIDERS:
        shares = [100 * r.served[p.label] / (sum(r.served.values()) or 1) for r in results]
        axes[3].bar(names, shares, bottom=bottom, label=p.label)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    axes[3].set_title("traffic share (%)")
    axes[3].legend(fontsize=8)
    for axis in axes:
        axis.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per strategy")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--block", type=int, default=25, help="requests per fault block")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--plot", metavar="PNG", help="also draw the results (matplotlib)")
    args = parser.parse_args()
    blocks = -(-args.requests // args.block)
    schedule = fault_schedule(blocks, args.seed)
    hung = sum(1 for b in schedule if b[FLAKY]["hang"])
    print(
        f"{args.requests} requests per strategy, concurrency {args.concurrency}, "
        f"{FLAKY} hangs in {hung}/{blocks} blocks of {args.block}, {DEGRADING} degraded "
        f"35%-65% of the run; attempt timeout {ATTEMPT_TIMEOUT_S} s, request timeout "
        f"{REQUEST_TIMEOUT_S} s, 2 attempts per deployment\n"
    )
    results = []
    with FakeProviderServer(valid_keys={API_KEY}) as fake:
        for strategy in args.strategies.split(","):
            result = await run_strategy(
                fake,
                strategy.strip(),
                schedule,
                requests=args.requests,
                concurrency=args.concurrency,
                block=args.block,
            )
            print(
                f"  {strategy:<12} done in {result.wall_s:5.1f} s, "
                f"success {100 * result.success_rate:.1f}%"
            )
            results.append(result)
    print()
    print_table(results)
    if args.plot:
        plot(results, args.plot)
    # A sanity line for the "done when": computed, not asserted.
    by_name = {r.strategy: r for r in results}
    if {"balanced", "priority", "quality"} <= set(by_name):
        b, p, q = by_name["balanced"], by_name["priority"], by_name["quality"]
        print(
            f"\nbalanced vs priority success: {100 * b.success_rate:.1f}% vs "
            f"{100 * p.success_rate:.1f}%; balanced vs quality cost: ${b.cost_usd:.4f} vs "
            f"${q.cost_usd:.4f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
