"""The `llmrouter` command: demo (offline), chat, models, costs, fake-server."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]


def _print(text: str = "") -> None:
    print(text, flush=True)


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def _describe(response: Any) -> str:
    usage = response.usage
    return (
        f"served by {response.deployment} (provider {response.provider}, model {response.model}) "
        f"in {response.latency_s * 1000:.1f} ms · {usage.input_tokens} in / "
        f"{usage.output_tokens} out tokens · cost {_usd(response.cost)}"
    )


def _event_line(event: Any) -> str:
    """One readable line per router event, e.g. `event: fallback a -> b (OverloadedError: ...)`."""
    data = dict(event.data)
    error = data.pop("error", None)
    if event.type == "fallback":
        head = f"{event.deployment} -> {data.pop('to', '?')}"
    elif event.type == "retry":
        head = f"{event.deployment}, attempt {data.pop('attempt', '?')} in {data.pop('wait_s', 0):.2f} s"
    else:
        head = str(event.deployment)
    extra = "".join(f", {key}={value}" for key, value in data.items())
    return f"     event: {event.type} {head}{extra}" + (f" ({error})" if error else "")


async def _core_demo(fake: Any, out: Callable[[str], None]) -> Any:
    from .. import RetryPolicy, Router
    from ..testing import ModelBehavior

    router = Router(
        deployments=[
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "api_key": "sk-demo-openai",
                "base_url": fake.openai_base_url,
            },
            {
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "api_key": "sk-ant-demo",
                "base_url": fake.anthropic_base_url,
            },
        ],
        # The demo shows a fallback, so it pins the order: openai first, anthropic as backup
        # (the default "balanced" strategy would rank the cheaper, healthy one first).
        strategy="priority",
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.05, jitter=0),
        on_event=lambda event: out(_event_line(event)),
    )
    async with router:
        out(
            '   Router(strategy="priority"): openai/gpt-4o-mini first, anthropic/claude-haiku-4-5 as backup'
        )
        out("")
        out("1. A plain answer")
        out('   >>> await router.acomplete("Explain quantum computing in one sentence")')
        response = await router.acomplete(
            "Explain quantum computing in one sentence", max_tokens=60
        )
        out(f"   {response.text}")
        out(f"   {_describe(response)}")
        out("")

        out("2. The first provider breaks; the router retries, then falls back")
        fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=503))
        out("   (the fake OpenAI now answers every request with HTTP 503 Service Unavailable)")
        response = await router.acomplete("What is a qubit?", max_tokens=60)
        out(f"   {response.text}")
        out(f"   {_describe(response)}")
        for attempt in response.attempts:
            out(
                f"   failed first: {attempt.deployment}: {type(attempt.error).__name__}: "
                f"{attempt.error}"
            )
        out("")

        out("3. A streamed answer (the first provider is still down)")
        parts: list[str] = []
        final: Any = None
        async for chunk in router.astream("Stream me a short haiku about routers", max_tokens=60):
            parts.append(chunk.text)
            if chunk.is_final:
                final = chunk
        out(f"   {len(parts)} chunks: {''.join(parts)}")
        if final is not None:
            out(
                f"   final chunk: finish_reason={final.finish_reason}, deployment={final.deployment}, "
                f"tokens={final.usage.total_tokens if final.usage else '?'}, cost={_usd(final.cost)}"
            )
        fake.set_behavior("gpt-4o-mini", ModelBehavior())
        out("")
        return router


def _cost_table(router: Any, out: Callable[[str], None]) -> None:
    costs = getattr(router, "costs", None)
    if costs is not None and hasattr(costs, "report"):
        out(costs.report())


def _demo(args: argparse.Namespace) -> int:
    from ..testing import FakeProviderServer

    with FakeProviderServer() as fake:
        _print(f"llmrouter demo: offline, fake OpenAI and Anthropic servers at {fake.url}")
        _print()
        router = asyncio.run(_core_demo(fake, _print))
        _print("4. What it cost")
        _cost_table(router, _print)
        _print()
        for title, loader in (
            (
                "5. LangChain: ChatLLMRouter",
                "llmrouter_integrations.langchain.demo:run_langchain_demo",
            ),
            (
                "6. LlamaIndex: LLMRouter",
                "llmrouter_integrations.llama_index.demo:run_llamaindex_demo",
            ),
        ):
            module_name, _, func_name = loader.partition(":")
            try:
                module = __import__(module_name, fromlist=[func_name])
            except ModuleNotFoundError as error:
                _print(f"{title}: skipped ({error})")
                continue
            _print(title)
            result = getattr(module, func_name)(fake, _print)
            if asyncio.iscoroutine(result):
                asyncio.run(result)
            _print()
    return 0


def _chat(args: argparse.Namespace) -> int:
    from .. import Router
    from ..errors import RouterError

    try:
        router = Router.from_env(strategy=args.strategy)
    except RouterError as error:
        _print(f"error: {error}")
        return 2
    with router:
        try:
            if args.stream:
                final = None
                for chunk in router.stream(args.prompt, max_tokens=args.max_tokens):
                    sys.stdout.write(chunk.text)
                    sys.stdout.flush()
                    final = chunk
                _print()
                if final is not None:
                    _print(f"[{final.deployment} · cost {_usd(final.cost)}]")
                    if args.explain and final.route is not None:
                        _print(str(final.route))
            else:
                response = router.complete(args.prompt, max_tokens=args.max_tokens)
                _print(response.text)
                _print(f"[{_describe(response)}]")
                if args.explain and response.route is not None:
                    _print(str(response.route))
        except RouterError as error:
            _print(f"error: {error}")
            return 1
    return 0


def _models(args: argparse.Namespace) -> int:
    from ..costs.pricing import Pricer
    from ..providers.endpoints import ENDPOINTS
    from ..types import Deployment

    pricer = Pricer()
    rows = [("provider", "default model", "input $/M", "output $/M", "base URL")]
    for name, endpoint in ENDPOINTS.items():
        model = endpoint.default_model or "-"
        price_in = price_out = "-"
        if endpoint.default_model:
            deployment = Deployment(provider=name, model=endpoint.default_model)
            per_in = pricer.estimate(
                deployment,
                1_000_000,
                0,
                prices_provider=endpoint.prices_provider,
                local=endpoint.local,
            )
            per_out = pricer.estimate(
                deployment,
                0,
                1_000_000,
                prices_provider=endpoint.prices_provider,
                local=endpoint.local,
            )
            price_in = "?" if per_in is None else f"{per_in:.3f}"
            price_out = "?" if per_out is None else f"{per_out:.3f}"
        rows.append((name, model, price_in, price_out, endpoint.base_url or "(set base_url)"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        _print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def _fake_server(args: argparse.Namespace) -> int:
    from ..testing.fake_server import serve_forever

    serve_forever(args.config, args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmrouter` command."""
    parser = argparse.ArgumentParser(prog="llmrouter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="offline tour: fallback, streaming, cost")
    demo.set_defaults(run=_demo)

    chat = commands.add_parser("chat", help="ask real providers (keys from the environment)")
    chat.add_argument("prompt")
    chat.add_argument("--strategy", default=os.environ.get("LLMROUTER_STRATEGY", "balanced"))
    chat.add_argument("--stream", action="store_true")
    chat.add_argument("--explain", action="store_true", help="print why each deployment was picked")
    chat.add_argument("--max-tokens", type=int, default=512)
    chat.set_defaults(run=_chat)

    models = commands.add_parser("models", help="known providers, default models and prices")
    models.set_defaults(run=_models)

    fake = commands.add_parser("fake-server", help="run the loopback fake providers")
    fake.add_argument("--port", type=int, default=8765)
    fake.add_argument("--config", default=None, help="JSON file of model behaviours")
    fake.set_defaults(run=_fake_server)

    try:
        from .costs import add_costs_parser
    except ImportError:
        pass
    else:
        add_costs_parser(commands)

    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except BrokenPipeError:  # `llmrouter models | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
