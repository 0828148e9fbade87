"""Response cache: hits, stream replay, single-flight, key contents, stores, never-cached cases."""

from __future__ import annotations

import asyncio
import glob
import json
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.core.events import EventHub, RouterEvent
from llmrouter_integrations.errors import ConfigurationError, ResponseDecodeError, ServerError
from llmrouter_integrations.layers.cache import CacheBackend
from llmrouter_integrations.state import (
    MemoryCacheStore,
    SQLiteCacheStore,
    cache_store_from_spec,
)
from llmrouter_integrations.state.cache_codec import cache_key, response_from_dict, response_to_dict
from llmrouter_integrations.types import (
    Attempt,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CostDetail,
    Deployment,
    Message,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)

SECRET = "sk-live-SECRET-abcdefghijklmnop0123"
DEPLOYMENTS = [
    Deployment(provider="openai", model="gpt-4o-mini", api_key=SecretStr(SECRET)),
    Deployment(provider="anthropic", model="claude-haiku-4-5", api_key=SecretStr(SECRET + "x")),
]
NAMES = [d.key for d in DEPLOYMENTS]
WEATHER = ToolSpec(
    name="get_weather",
    description="Weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def ask(text: str = "What is the capital of France?", **options: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **options)


class Upstream:
    """A provider stand-in: text plus a tool call, a price, streams in fixed pieces.

    `gate` holds every call until set; `fail` raises before answering; `break_after`
    breaks a stream after that many content chunks.
    """

    def __init__(
        self,
        *,
        gate: asyncio.Event | threading.Event | None = None,
        fail: BaseException | None = None,
        break_after: int | None = None,
    ) -> None:
        self.calls = 0
        self.gate = gate
        self.fail = fail
        self.break_after = break_after

    async def _hold(self) -> None:
        self.calls += 1
        if isinstance(self.gate, asyncio.Event):
            await self.gate.wait()
        elif self.gate is not None:
            while not self.gate.is_set():
                await asyncio.sleep(0.001)
        if self.fail is not None:
            raise self.fail

    @staticmethod
    def final_fields() -> dict[str, Any]:
        return {
            "finish_reason": "tool_calls",
            "usage": Usage(120, 30, 150, cached_input_tokens=100, reasoning_tokens=5),
            "cost": 0.0012,
            "cost_detail": CostDetail(Decimal("0.0009"), Decimal("0.0003"), source="genai-prices"),
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "deployment": "openai/gpt-4o-mini",
            "id": "chatcmpl-123",
        }

    async def chat(self, request: ChatRequest) -> ChatResponse:
        await self._hold()
        call = ToolCall("call_1", "get_weather", {"city": "Paris", "units": {"temp": "C"}})
        message = Message(role="assistant", content="Paris, let me check.", tool_calls=[call])
        return ChatResponse(
            message=message, latency_s=1.5, raw={"id": "chatcmpl-123"}, **self.final_fields()
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        await self._hold()
        pieces = [
            ChatChunk(text="Paris", deployment="openai/gpt-4o-mini"),
            ChatChunk(text=", let me", deployment="openai/gpt-4o-mini"),
            ChatChunk(text=" check.", deployment="openai/gpt-4o-mini"),
            ChatChunk(tool_call_deltas=[ToolCallDelta(0, "call_1", "get_weather", '{"city": ')]),
            ChatChunk(tool_call_deltas=[ToolCallDelta(0, arguments='"Paris"}')]),
        ]
        for n, piece in enumerate(pieces):
            if self.break_after is not None and n >= self.break_after:
                raise ResponseDecodeError("connection lost mid-stream", retryable=True)
            yield piece
            await asyncio.sleep(0)
        yield ChatChunk(is_final=True, latency_s=2.0, ttft_s=0.3, **self.final_fields())

    async def aclose(self) -> None:
        pass


def layer(
    upstream: Upstream, store: Any = None, events: EventHub | None = None, **options: Any
) -> CacheBackend:
    return CacheBackend(
        upstream,
        store if store is not None else MemoryCacheStore(),
        deployments=DEPLOYMENTS,
        clock=ManualClock(),
        events=events,
        **options,
    )


async def collect(stream: AsyncIterator[ChatChunk]) -> list[ChatChunk]:
    return [chunk async for chunk in stream]


# -- hits ------------------------------------------------------------------------------------


async def test_a_hit_returns_the_same_answer_at_no_cost() -> None:
    seen: list[RouterEvent] = []
    upstream = Upstream()
    cache = layer(upstream, events=EventHub([seen.append]))
    first = await cache.chat(ask())
    second = await cache.chat(ask())

    assert upstream.calls == 1
    assert not first.cached and first.cost == 0.0012
    assert second.cached and second.cost == 0.0 and second.original_cost == 0.0012
    assert second.text == first.text == "Paris, let me check."
    assert second.tool_calls == first.tool_calls
    assert second.tool_calls[0].arguments == {"city": "Paris", "units": {"temp": "C"}}
    assert (second.usage, second.finish_reason) == (first.usage, first.finish_reason)
    assert (second.provider, second.model, second.deployment, second.id) == (
        "openai",
        "gpt-4o-mini-2024-07-18",
        "openai/gpt-4o-mini",
        "chatcmpl-123",
    )
    assert second.latency_s == 0.0  # the hit's own time (ManualClock), not the original 1.5 s
    assert second.raw == {"id": "chatcmpl-123"}
    hits = [e for e in seen if e.type == "cache_hit"]
    assert len(hits) == 1 and hits[0].data["saved_usd"] == 0.0012
    assert hits[0].deployment == "openai/gpt-4o-mini"
    assert cache.stats.hits == 1 and cache.stats.misses == 1
    assert cache.stats.saved_usd == pytest.approx(0.0012)


async def test_editing_a_hit_does_not_change_the_cache() -> None:
    cache = layer(Upstream())
    await cache.chat(ask())
    hit = await cache.chat(ask())
    hit.tool_calls[0].arguments["city"] = "Lyon"
    hit.message.content = "changed"
    again = await cache.chat(ask())
    assert again.text == "Paris, let me check."
    assert again.tool_calls[0].arguments["city"] == "Paris"


async def test_streams_are_replayed_in_their_original_chunks() -> None:
    upstream = Upstream()
    cache = layer(upstream)
    live = await collect(cache.stream(ask()))
    replay = await collect(cache.stream(ask()))

    assert upstream.calls == 1
    assert [c.text for c in replay] == [c.text for c in live]
    assert [c.tool_call_deltas for c in replay[:-1]] == [c.tool_call_deltas for c in live[:-1]]
    final = replay[-1]
    assert final.is_final and final.cached and not live[-1].cached
    assert final.cost == 0.0 and final.original_cost == 0.0012
    assert (final.usage, final.finish_reason, final.provider, final.model, final.deployment) == (
        live[-1].usage,
        "tool_calls",
        "openai",
        "gpt-4o-mini-2024-07-18",
        "openai/gpt-4o-mini",
    )


async def test_a_streamed_answer_serves_chat_and_a_chat_answer_serves_streams() -> None:
    upstream = Upstream()
    cache = layer(upstream)
    await collect(cache.stream(ask("one")))
    from_stream = await cache.chat(ask("one"))
    assert from_stream.cached and from_stream.text == "Paris, let me check."
    assert from_stream.tool_calls == [ToolCall("call_1", "get_weather", {"city": "Paris"})]

    await cache.chat(ask("two"))
    replay = await collect(cache.stream(ask("two")))
    assert upstream.calls == 2
    assert "".join(c.text for c in replay) == "Paris, let me check."
    deltas = [d for c in replay for d in c.tool_call_deltas]
    assert [(d.id, d.name, json.loads(d.arguments)) for d in deltas] == [
        ("call_1", "get_weather", {"city": "Paris", "units": {"temp": "C"}})
    ]
    assert replay[-1].is_final and replay[-1].cached


# -- single flight ----------------------------------------------------------------------------


async def test_fifty_identical_concurrent_requests_make_one_upstream_call() -> None:
    gate = asyncio.Event()
    upstream = Upstream(gate=gate)
    cache = layer(upstream)
    tasks = [asyncio.create_task(cache.chat(ask())) for _ in range(50)]
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    answers = await asyncio.gather(*tasks)
    assert upstream.calls == 1
    assert {a.text for a in answers} == {"Paris, let me check."}
    assert sum(a.cached for a in answers) == 49
    assert cache.stats.shared == 49


async def test_identical_concurrent_streams_share_one_upstream_stream() -> None:
    gate = asyncio.Event()
    upstream = Upstream(gate=gate)
    cache = layer(upstream)
    tasks = [asyncio.create_task(collect(cache.stream(ask()))) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert upstream.calls == 1
    texts = {tuple(c.text for c in chunks) for chunks in results}
    assert texts == {("Paris", ", let me", " check.", "", "", "")}


async def test_waiters_share_the_first_calls_error_and_nothing_is_cached() -> None:
    gate = asyncio.Event()
    upstream = Upstream(gate=gate, fail=ServerError("boom", status_code=500))
    cache = layer(upstream)
    tasks = [asyncio.create_task(cache.chat(ask())) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert upstream.calls == 1
    assert all(isinstance(r, ServerError) for r in results)

    upstream.fail = None
    answer = await cache.chat(ask())
    assert not answer.cached and upstream.calls == 2


async def test_if_the_first_call_is_cancelled_a_waiter_calls_itself() -> None:
    gate = asyncio.Event()
    upstream = Upstream(gate=gate)
    cache = layer(upstream)
    first = asyncio.create_task(cache.chat(ask()))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.chat(ask()))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    answer = await second
    assert answer.text == "Paris, let me check." and not answer.cached
    assert upstream.calls == 2


async def test_single_flight_works_across_event_loops_in_two_threads() -> None:
    gate = threading.Event()
    upstream = Upstream(gate=gate)
    cache = layer(upstream)
    results: list[ChatResponse] = []

    def run_in_own_loop() -> None:
        results.append(asyncio.run(cache.chat(ask())))

    leader = threading.Thread(target=run_in_own_loop)
    leader.start()
    while upstream.calls == 0:
        await asyncio.sleep(0.001)
    follower = asyncio.create_task(cache.chat(ask()))
    await asyncio.sleep(0.01)
    gate.set()
    shared = await follower
    await asyncio.to_thread(leader.join)
    assert upstream.calls == 1
    assert shared.cached and results[0].text == shared.text


# -- what the key contains --------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.7},
        {"temperature": 0.0},  # an omitted temperature is the provider default, not 0
        {"tools": [WEATHER]},
        {"tool_choice": "required"},
        {"parallel_tool_calls": False},
        {"response_format": {"type": "json_object"}},
        {"max_tokens": 10},
        {"top_p": 0.5},
        {"stop": ["\n"]},
        {"seed": 7},
        {"model": "gpt-4o"},
        {"extra_body": {"reasoning_effort": "high"}},
        {"deployments": ("openai/gpt-4o-mini",)},
    ],
)
async def test_output_affecting_options_miss(change: dict[str, Any]) -> None:
    upstream = Upstream()
    cache = layer(upstream)
    await cache.chat(ask())
    answer = await cache.chat(ask(**change))
    assert not answer.cached and upstream.calls == 2


async def test_options_that_only_describe_the_call_still_hit() -> None:
    upstream = Upstream()
    cache = layer(upstream)
    await cache.chat(ask(temperature=1))
    answer = await cache.chat(
        ask(
            temperature=1.0,
            user="u-42",
            metadata={"run": "x"},
            tags=("batch",),
            timeout=5.0,
            priority=3,
            max_cost_usd=1.0,
        )
    )
    assert answer.cached and upstream.calls == 1


def test_the_key_never_depends_on_api_keys() -> None:
    other_keys = [
        Deployment(
            provider="openai", model="gpt-4o-mini", api_key=SecretStr("sk-other-key-000000000000")
        ),
        Deployment(provider="anthropic", model="claude-haiku-4-5"),
    ]
    assert cache_key(ask(), DEPLOYMENTS) == cache_key(ask(), other_keys)
    moved = [Deployment(provider="openai", model="gpt-4o", name="openai/gpt-4o-mini")]
    assert cache_key(ask(), DEPLOYMENTS[:1]) != cache_key(ask(), moved)  # same name, other model


async def test_cache_false_bypasses_and_cache_true_opts_in() -> None:
    upstream = Upstream()
    cache = layer(upstream)
    await cache.chat(ask())
    assert not (await cache.chat(ask(cache=False))).cached
    assert upstream.calls == 2

    off = layer(Upstream(), enabled_by_default=False)
    await off.chat(ask())
    await off.chat(ask(cache=True))
    assert not (await off.chat(ask())).cached
    assert (await off.chat(ask(cache=True))).cached


# -- never cached ------------------------------------------------------------------------------


async def test_a_stream_that_breaks_is_not_cached() -> None:
    upstream = Upstream(break_after=2)
    cache = layer(upstream)
    with pytest.raises(ResponseDecodeError):
        await collect(cache.stream(ask()))
    upstream.break_after = None
    chunks = await collect(cache.stream(ask()))
    assert not chunks[-1].cached and upstream.calls == 2


async def test_a_stream_the_reader_abandons_is_not_cached() -> None:
    upstream = Upstream()
    cache = layer(upstream)
    stream = cache.stream(ask())
    async for _chunk in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    answer = await cache.chat(ask())
    assert not answer.cached and upstream.calls == 2


async def test_a_failing_store_degrades_to_no_cache() -> None:
    class Broken(MemoryCacheStore):
        async def get(self, key: str) -> Any:
            raise OSError("disk gone")

    upstream = Upstream()
    cache = layer(upstream, store=Broken())
    assert (await cache.chat(ask())).text == "Paris, let me check."
    assert cache.stats.store_errors >= 1


# -- serialisation -----------------------------------------------------------------------------


def test_responses_round_trip_through_json() -> None:
    response = ChatResponse(
        message=Message(
            role="assistant",
            content=None,
            tool_calls=[ToolCall("c1", "lookup", {"q": ["a", 1, {"deep": None}]})],
        ),
        finish_reason="tool_calls",
        usage=Usage(10, 5, 15, 2, 1, 3),
        cost=0.5,
        cost_detail=CostDetail(Decimal("0.1"), Decimal("0.3"), Decimal("0.05"), Decimal("0.05")),
        provider="anthropic",
        model="claude-haiku-4-5",
        deployment="anthropic/claude-haiku-4-5",
        latency_s=1.25,
        ttft_s=0.5,
        attempts=[Attempt("openai/gpt-4o-mini", ServerError("x", status_code=500), 0.1)],
        raw={"id": "msg_1", "usage": {"input_tokens": 10}},
        id="msg_1",
    )
    stored = json.loads(json.dumps(response_to_dict(response)))
    back = response_from_dict(stored)
    assert back.message == response.message and back.usage == response.usage
    assert back.cost_detail == response.cost_detail
    assert isinstance(back.cost_detail and back.cost_detail.input, Decimal)
    for name in ("finish_reason", "cost", "provider", "model", "deployment", "latency_s"):
        assert getattr(back, name) == getattr(response, name)
    assert (back.ttft_s, back.raw, back.id) == (0.5, response.raw, "msg_1")
    assert back.attempts == [] and "ServerError" not in json.dumps(stored)


# -- stores ------------------------------------------------------------------------------------


async def test_memory_store_evicts_least_recently_used_and_expires() -> None:
    clock = ManualClock()
    store = MemoryCacheStore(max_entries=2, ttl_s=10, clock=clock)
    await store.set("a", {"n": 1})
    await store.set("b", {"n": 2})
    await store.get("a")
    await store.set("c", {"n": 3})
    assert await store.get("b") is None  # least recently used
    assert await store.get("a") == {"n": 1}
    clock.advance(10)
    assert await store.get("a") is None and len(store) == 1


async def test_sqlite_cache_survives_a_restart_and_holds_no_api_key(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    upstream = Upstream()
    store = SQLiteCacheStore(path)
    await layer(upstream, store=store).chat(ask())
    await collect(layer(upstream, store=store).stream(ask("streamed")))
    await store.aclose()

    reopened = SQLiteCacheStore(path)
    cache = layer(upstream, store=reopened)
    hit = await cache.chat(ask())
    replay = await collect(cache.stream(ask("streamed")))
    assert upstream.calls == 2
    assert hit.cached and hit.tool_calls[0].arguments["city"] == "Paris"
    assert replay[-1].cached and [c.text for c in replay][:3] == ["Paris", ", let me", " check."]
    await reopened.aclose()

    files = glob.glob(str(path) + "*")
    data = b"".join(Path(f).read_bytes() for f in files)
    assert b"Paris, let me check." in data  # the rows are there...
    assert SECRET.encode() not in data and b"sk-live" not in data  # ...and no key


async def test_sqlite_entries_expire_by_wall_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SQLiteCacheStore(tmp_path / "c.db", ttl_s=60, clock=clock)
    await store.set("k", {"v": 1})
    assert await store.get("k") == {"v": 1}
    clock.advance(61)
    assert await store.get("k") is None
    await store.clear()
    await store.aclose()


async def test_two_sqlite_stores_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    a, b = SQLiteCacheStore(path), SQLiteCacheStore(path)
    await asyncio.gather(*(a.set(f"a{i}", {"i": i}) for i in range(20)))
    await asyncio.gather(*(b.set(f"b{i}", {"i": i}) for i in range(20)))
    assert await a.get("b19") == {"i": 19} and await b.get("a7") == {"i": 7}
    await b.delete("a7")
    assert await a.get("a7") is None
    await a.aclose()
    await b.aclose()


def test_store_specs() -> None:
    assert isinstance(cache_store_from_spec("memory"), MemoryCacheStore)
    sqlite = cache_store_from_spec("sqlite:////tmp/x.db")
    assert isinstance(sqlite, SQLiteCacheStore) and sqlite.path == "/tmp/x.db"
    relative = cache_store_from_spec("sqlite:///x.db")
    assert isinstance(relative, SQLiteCacheStore) and relative.path == "x.db"
    with pytest.raises(ConfigurationError):
        cache_store_from_spec("mongodb://nope")
