"""One OS process of the multi-process state tests: a Router against the shared fake server.

    python tests/_state_worker.py '{"mode": "budget", "state": "...", "base_url": "...", ...}'

Prints one JSON line with what happened (counts, cost) and exits. Modes:
- budget: `calls` concurrent calls under one daily budget of `limit` USD.
- hold: one call to a model that hangs; prints "sent" once it is on its way (to be killed).
- rpm: `calls` concurrent calls to a deployment with `rpm`; counts sent and refused.
- breaker: `calls` sequential calls; reports the circuit state it ends with.
- cache: one call, all workers at once (each waits for a line on stdin).
- outage: `calls` calls, a line on stdin (the parent stops the store), `outage_calls` (or
  `calls`) more; with `after`: a line on stdin (the store is back), `after` more.
- rounds: prints "ready"; per line on stdin ("N" or "N SECONDS"), moves the clock on by
  SECONDS (with `wall`: a ManualClock at that wall time), then N sequential calls; prints
  the deployments that answered and the first deployment's circuit; "" ends it.
- open: prints "ready"; per line on stdin (a folder), opens an SQLite state, ledger and cache
  store on new files there (default timeouts) and uses each once; prints "ok" or the error (as JSON).
  No Router: many of these start together on one new file, as web server workers do.
- turns: one call per line on stdin (the parent takes the workers in turn); prints, after
  each, the deployment that answered and the first deployment's circuit; "" ends it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal
from typing import Any

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    BreakerPolicy,
    Budget,
    BudgetExceededError,
    CircuitOpenError,
    Deployment,
    ManualClock,
    RetryPolicy,
    Router,
    RoutingError,
)
from llmrouter_integrations.core.clock import SYSTEM_CLOCK
from llmrouter_integrations.state.shared_redis import RedisState
from llmrouter_integrations.state.shared_sqlite import SQLiteState

KEY = "sk-test-state-0123456789abcdef"
PROMPT = "Explain shared budgets in one line."


TRIPS = [0]  # SQLite transactions (each one round trip to the file) this process made


def store(spec: dict[str, Any]) -> Any:
    url, lease = spec["state"], float(spec.get("lease_s", 300.0))
    if url.startswith("sqlite:///"):
        timeout = float(spec.get("timeout_s", 2.0))
        state = SQLiteState(url[len("sqlite:///") :], lease_s=lease, timeout_s=timeout)
        run = state._run

        def counted(*args: Any, **kwargs: Any) -> Any:
            TRIPS[0] += 1
            return run(*args, **kwargs)

        state._run = counted  # type: ignore[method-assign]
        return state
    return RedisState(url, lease_s=lease, timeout_s=float(spec.get("timeout_s", 2.0)))


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    deployments = [
        Deployment(
            "openai",
            model,
            api_key=KEY,
            base_url=spec["base_url"],
            rpm=spec.get("rpm"),
            max_concurrency=spec.get("max_concurrency"),
        )
        for model in spec.get("models", ["gpt-4o-mini"])
    ]
    deployment = deployments[0]
    budgets = (
        [Budget(Decimal(spec["limit"]), period="day", name="daily")] if "limit" in spec else []
    )
    clock = ManualClock(wall_start=spec["wall"]) if "wall" in spec else SYSTEM_CLOCK
    router = Router(
        clock=clock,
        deployments=deployments,
        strategy="priority",
        budgets=budgets,
        retry=RetryPolicy(max_attempts=1),
        state=store(spec),
        state_failure=spec.get("state_failure", "closed"),
        rate_limit_wait=spec.get("rate_limit_wait", 0.0),
        max_queue_wait=spec.get("max_queue_wait", 0.5),
        cache=spec.get("cache"),
        breaker=BreakerPolicy(failure_threshold=spec.get("threshold", 5), cooldown_s=600),
    )
    if router.state_guard is not None and "retry_s" in spec:
        router.state_guard.retry_s = spec["retry_s"]  # 0: try the store on every call
    outcomes: dict[str, int] = {}
    async with router:
        if spec["mode"] == "hold":
            task = asyncio.ensure_future(router.achat(PROMPT, max_tokens=60))
            await asyncio.sleep(0.2)
            print("sent", flush=True)
            await task
            return {}

        async def call() -> None:
            try:
                await router.achat(PROMPT, max_tokens=60)
                kind = "ok"
            except BudgetExceededError:
                kind = "refused"
            except CircuitOpenError:
                kind = "circuit_open"
            except (AllDeploymentsFailedError, RoutingError) as error:
                kind = type(error).__name__
            outcomes[kind] = outcomes.get(kind, 0) + 1

        if spec["mode"] == "cache":  # everyone starts together, on the parent's word
            print("ready", flush=True)
            sys.stdin.readline()
            stream = spec.get("stream", False)
            if stream:
                chunks = [c async for c in router.astream(PROMPT, max_tokens=60)]
                final = chunks[-1]
                return {"text": "".join(c.text for c in chunks), "cached": final.cached}
            answer = await router.achat(PROMPT, max_tokens=60)
            return {"text": answer.text, "cached": answer.cached}
        if spec["mode"] == "outage":  # calls, then the parent stops the store, then calls
            for _ in range(spec["calls"]):
                await call()
            print(json.dumps(outcomes), flush=True)
            sys.stdin.readline()
            outcomes.clear()
            slowest = 0.0
            for _ in range(spec.get("outage_calls", spec["calls"])):
                started = time.monotonic()
                await call()
                slowest = max(slowest, time.monotonic() - started)
            if spec.get("after"):  # the parent brings the store back; calls that push the spend
                print(json.dumps({"outcomes": outcomes, "cost": str(router.costs.total)}), flush=True)
                sys.stdin.readline()
                outcomes.clear()
                for _ in range(spec["after"]):
                    await call()
            return {"outcomes": outcomes, "slowest_s": slowest, "cost": str(router.costs.total)}
        if spec["mode"] == "rounds":  # the parent starts every worker's round at once
            print("ready", flush=True)
            while line := sys.stdin.readline().strip():
                calls, _, advance = line.partition(" ")
                if advance:  # every worker's clock moves the same: the fleet's time passes
                    assert isinstance(clock, ManualClock)
                    clock.advance(float(advance))
                answered = []
                for _ in range(int(calls)):
                    answered.append((await router.achat(PROMPT, max_tokens=60)).deployment)
                circuit = router.health()[deployment.key].circuit
                print(json.dumps({"answered": answered, "circuit": circuit}), flush=True)
            return {}
        if spec["mode"] == "turns":
            while sys.stdin.readline().strip():
                answer = await router.achat(PROMPT, max_tokens=60)
                circuit = router.health()[deployment.key].circuit
                print(json.dumps({"deployment": answer.deployment, "circuit": circuit}), flush=True)
            return {}
        if spec["mode"] == "breaker":
            for _ in range(spec["calls"]):
                await call()
        else:
            await asyncio.gather(*(call() for _ in range(spec["calls"])))
        circuit = router.health()[deployment.key].circuit
    return {
        "outcomes": outcomes,
        "cost": str(router.costs.total),
        "circuit": circuit,
        "trips": TRIPS[0],
    }


async def use_cache(cache: Any) -> None:
    await cache.set("key", {"n": 1})
    await cache.aclose()


def open_new_files() -> None:
    from llmrouter_integrations.state import SQLiteCacheStore, SQLiteLedgerStore
    from llmrouter_integrations.state.shared import Account

    print("ready", flush=True)
    while folder := sys.stdin.readline().strip():
        try:
            state = SQLiteState(f"{folder}/state.db")
            state.read([Account("daily", limit=1)], time.time())
            state.close()
            SQLiteLedgerStore(f"{folder}/ledger.db").close()
            asyncio.run(use_cache(SQLiteCacheStore(f"{folder}/cache.db")))
            print(json.dumps("ok"), flush=True)
        except Exception as error:  # reported to the parent, which fails the test with it
            print(json.dumps(f"{type(error).__name__}: {error}"), flush=True)


if __name__ == "__main__":
    if json.loads(sys.argv[1])["mode"] == "open":
        open_new_files()
        sys.exit()
    result = asyncio.run(main(json.loads(sys.argv[1])))
    print(json.dumps(result), flush=True)
