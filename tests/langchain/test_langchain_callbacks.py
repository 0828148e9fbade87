"""Usage and cost through LangChain callbacks: our handler, LangChain's, and the caches."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache, InMemoryCache
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.load import dumps, loads
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_fakes import ANTHROPIC_MODEL, OPENAI_MODEL, make_model

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.errors import AllDeploymentsFailedError
from llmrouter_integrations.langchain import RouterCostCallbackHandler, get_router_callback
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

SCRIPTED = {"input": 20, "output": 7, "cached": 8}  # what the fake reports per call


@pytest.fixture
def llm_cache() -> Iterator[None]:
    previous = get_llm_cache()
    yield
    set_llm_cache(previous)


async def test_both_handlers_agree_with_the_fake_server(fake: FakeProviderServer) -> None:
    """invoke, ainvoke, stream, astream and batch: six calls, six times the scripted usage."""
    for model_name in (OPENAI_MODEL, ANTHROPIC_MODEL):
        fake.set_behavior(model_name, ModelBehavior(usage=SCRIPTED))
    model = make_model(fake)
    langchain_usage = UsageMetadataCallbackHandler()
    config: Any = {"callbacks": [langchain_usage]}
    replies: list[AIMessage] = []
    with get_router_callback() as cb:
        replies.append(model.invoke("one", config=config))
        replies.append(await model.ainvoke("two", config=config))
        merged = None
        for chunk in model.stream("three", config=config):
            merged = chunk if merged is None else merged + chunk
        replies.append(merged)  # type: ignore[arg-type]
        merged = None
        async for chunk in model.astream("four", config=config):
            merged = chunk if merged is None else merged + chunk
        replies.append(merged)  # type: ignore[arg-type]
        replies.extend(model.batch(["five", "six"], config=config))
    calls = fake.request_count()
    assert calls == 6
    assert [request.stream for request in fake.requests] == [False, False, True, True, False, False]
    assert langchain_usage.usage_metadata == {
        OPENAI_MODEL: {
            "input_tokens": 20 * calls,
            "output_tokens": 7 * calls,
            "total_tokens": 27 * calls,
            "input_token_details": {"cache_read": 8 * calls},
        }
    }
    assert (cb.input_tokens, cb.output_tokens, cb.total_tokens) == (120, 42, 162)
    assert cb.cached_input_tokens == 48
    assert cb.successful_requests == 6
    costs = [reply.response_metadata["cost_usd"] for reply in replies]
    assert all(cost > 0 for cost in costs)
    assert cb.total_cost == pytest.approx(sum(costs))
    assert cb.by_provider["openai"].requests == 6
    assert cb.by_provider["openai"].cost_usd == pytest.approx(cb.total_cost)


def test_stream_with_fallback_counts_the_serving_provider(fake: FakeProviderServer) -> None:
    fake.set_behavior(OPENAI_MODEL, ModelBehavior(permanent_error=503))
    fake.set_behavior(ANTHROPIC_MODEL, ModelBehavior(usage=SCRIPTED))
    handler = RouterCostCallbackHandler()
    chunks = list(make_model(fake).stream("hello", config={"callbacks": [handler]}))
    assert chunks[-1].response_metadata["deployment"] == "anthropic/claude-haiku-4-5"
    assert (handler.successful_requests, handler.fallbacks) == (1, 1)
    assert (handler.input_tokens, handler.output_tokens) == (20, 7)
    assert list(handler.by_provider) == ["anthropic"]
    assert handler.by_deployment["openai/gpt-4o-mini"].failed_attempts == 1
    assert [event["type"] for event in handler.events] == ["fallback"]


def test_retry_events_and_failed_requests(fake: FakeProviderServer) -> None:
    fake.set_behavior(OPENAI_MODEL, ModelBehavior(errors=[500]))
    # A manual clock: the retry's backoff passes instantly.
    model = make_model(fake, max_retries=1, router_kwargs={"clock": ManualClock()})
    with get_router_callback() as cb:
        reply = model.invoke("hi")
        assert reply.response_metadata["deployment"] == "openai/gpt-4o-mini"
        fake.set_behavior(OPENAI_MODEL, ModelBehavior(permanent_error=401))
        fake.set_behavior(ANTHROPIC_MODEL, ModelBehavior(permanent_error=403))
        with pytest.raises(AllDeploymentsFailedError):
            model.invoke("hi")
    assert (cb.successful_requests, cb.failed_requests, cb.retries, cb.fallbacks) == (1, 1, 1, 0)
    assert cb.by_deployment["anthropic/claude-haiku-4-5"].failed_attempts == 1
    assert "Failed Requests: 1" in repr(cb)


def test_langchain_cache_hit_is_not_counted_twice(
    fake: FakeProviderServer, llm_cache: None
) -> None:
    set_llm_cache(InMemoryCache())
    model = make_model(fake)
    langchain_usage = UsageMetadataCallbackHandler()
    with get_router_callback() as cb:
        first = model.invoke("same question", config={"callbacks": [langchain_usage]})
        second = model.invoke("same question", config={"callbacks": [langchain_usage]})
    assert fake.request_count() == 1
    assert second.content == first.content
    assert (cb.successful_requests, cb.langchain_cache_hits) == (1, 1)
    assert first.usage_metadata is not None
    assert cb.total_tokens == first.usage_metadata["total_tokens"]
    assert cb.total_cost == pytest.approx(first.response_metadata["cost_usd"])
    # LangChain's own handler counts the replayed tokens again (its documented behaviour).
    assert langchain_usage.usage_metadata[OPENAI_MODEL]["total_tokens"] == 2 * cb.total_tokens


class SQLiteCache(BaseCache):
    """What langchain_community's SQLiteCache does: rows of `dumps(generation)` in SQLite."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS cache (prompt, llm, idx, response)")

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        rows = self.db.execute(
            "SELECT response FROM cache WHERE prompt=? AND llm=? ORDER BY idx", (prompt, llm_string)
        ).fetchall()
        return [loads(row[0], allowed_objects="core") for row in rows] or None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        for index, generation in enumerate(return_val):
            self.db.execute(
                "INSERT INTO cache VALUES (?, ?, ?, ?)",
                (prompt, llm_string, index, dumps(generation)),
            )
        self.db.commit()

    def clear(self, **kwargs: Any) -> None:
        self.db.execute("DELETE FROM cache")


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
def test_sqlite_cache_round_trip_keeps_router_metadata(
    fake: FakeProviderServer, llm_cache: None, tmp_path: Any
) -> None:
    fake.set_behavior(OPENAI_MODEL, ModelBehavior(permanent_error=503))  # metadata with attempts
    set_llm_cache(SQLiteCache(str(tmp_path / "cache.db")))
    first = make_model(fake).invoke("cache me")
    # A new model with the same configuration (a new process, say) reads the stored answer.
    with get_router_callback() as cb:
        again = make_model(fake).invoke("cache me")
    assert fake.request_count() == 2  # the failed attempt and the answer, once
    assert again.content == first.content
    assert again.response_metadata == first.response_metadata
    assert again.response_metadata["attempts"][0]["status_code"] == 503
    assert (cb.successful_requests, cb.langchain_cache_hits, cb.total_cost) == (0, 1, 0.0)
    # Output-affecting parameters are part of the key: another temperature is a miss.
    make_model(fake, temperature=0.5).invoke("cache me")
    assert fake.request_count() == 4


def test_router_cache_hits_cost_nothing_and_are_counted_apart(fake: FakeProviderServer) -> None:
    model = make_model(fake, cache="memory")  # the router's own cache (streams replay too)
    with get_router_callback() as cb:
        first = model.invoke("same question")
        again = model.invoke("same question")
        replayed = list(model.stream("same question"))
    assert fake.request_count() == 1
    assert again.content == first.content
    assert again.id != first.id  # a replay must not replace the first message in LangGraph
    for metadata in (again.response_metadata, replayed[-1].response_metadata):
        assert (metadata["cached"], metadata["cost_usd"]) == (True, 0.0)
        assert metadata["original_cost_usd"] == pytest.approx(first.response_metadata["cost_usd"])
    assert (cb.successful_requests, cb.router_cache_hits) == (1, 2)
    assert first.usage_metadata is not None
    assert cb.total_tokens == first.usage_metadata["total_tokens"]
    assert cb.saved_cost == pytest.approx(2 * first.response_metadata["cost_usd"])
    assert [event["type"] for event in cb.events] == ["cache_hit", "cache_hit"]


def test_answers_of_other_models_are_ignored() -> None:
    handler = RouterCostCallbackHandler()
    foreign = AIMessage("from another chat model", response_metadata={"model_name": "x"})
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=foreign)]]))
    assert handler.summary()["successful_requests"] == 0


def test_get_router_callback_is_scoped(fake: FakeProviderServer) -> None:
    model = make_model(fake)
    with get_router_callback() as outer:
        model.invoke("a")
        with get_router_callback() as inner:
            model.invoke("b")
    model.invoke("c")
    assert (outer.successful_requests, inner.successful_requests) == (1, 1)


def test_budget_alerts_and_refusals_reach_the_callbacks(fake: FakeProviderServer) -> None:
    from llmrouter_integrations import Budget
    from llmrouter_integrations.errors import BudgetExceededError

    # About two calls' worth (max_tokens bounds what a call may cost); alert at 30 %.
    model = make_model(fake, budgets=[Budget(0.00001, alert_thresholds=(0.3,))], max_tokens=10)
    config: Any = {"metadata": {"user": "alice"}, "tags": ["beta"]}
    with get_router_callback() as cb:
        model.invoke("hello there", config=config)
        with pytest.raises(BudgetExceededError):
            model.invoke("hello there", config=config)
    alerts = [event for event in cb.events if event["type"] == "budget_alert"]
    assert len(alerts) == 1
    assert (alerts[0]["threshold"], alerts[0]["limit_usd"]) == (0.3, pytest.approx(0.00001))
    assert (cb.successful_requests, cb.failed_requests) == (1, 1)
    assert fake.request_count() == 1  # the refused call sent nothing
    # The router's ledger attributes both calls to the config's user and tag.
    by_user = model.llm_router.costs.by_user()["alice"]
    assert (by_user.requests, by_user.failed_requests) == (2, 1)
    assert model.llm_router.costs.by_tag()["beta"].requests == 2
