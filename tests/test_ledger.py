"""The cost ledger: totals and groupings, memory and SQLite stores, the recording layer."""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.costs.ledger import (
    CostLedger,
    LedgerEntry,
    LedgerFilter,
    MemoryLedgerStore,
    ledger_from_url,
)
from llmrouter_integrations.errors import (
    AllDeploymentsFailedError,
    ConfigurationError,
    RateLimitError,
    ResponseDecodeError,
)
from llmrouter_integrations.layers.ledger import LedgerBackend
from llmrouter_integrations.state.ledger_sqlite import SQLiteLedgerStore
from llmrouter_integrations.testing import ScriptedBackend, ScriptedStep
from llmrouter_integrations.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CostDetail,
    Message,
    Usage,
)

NOV_1 = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
DAY = 86_400.0


def entry(
    provider: str = "openai",
    cost: str | None = "0.01",
    *,
    time: float = NOV_1 + 3_600,
    model: str | None = None,
    user: str | None = None,
    tags: tuple[str, ...] = (),
    cached: bool = False,
    saved: str | None = None,
    error: str | None = None,
    tokens: tuple[int, int] = (100, 10),
) -> LedgerEntry:
    return LedgerEntry(
        time=time,
        deployment=f"{provider}-main",
        provider=provider,
        model=model or f"{provider}-model",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost=None if cost is None else Decimal(cost),
        latency_s=0.5,
        user=user,
        tags=tags,
        cached=cached,
        saved=None if saved is None else Decimal(saved),
        error_type=error,
    )


SAMPLE = [
    entry("openai", "0.30", user="alice", tags=("search",)),
    entry("openai", "0.20", user="bob", tags=("search", "beta"), time=NOV_1 + DAY + 10),
    entry("anthropic", "0.125", user="alice", time=NOV_1 + DAY + 20),
    entry("anthropic", "0", cached=True, saved="0.125", user="alice", tokens=(0, 0)),
    entry("groq", None, time=NOV_1 + 2 * DAY),  # no known price
    entry("groq", "0", error="RateLimitError", tokens=(0, 0)),
]


@pytest.fixture(params=["memory", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> CostLedger:
    if request.param == "memory":
        return CostLedger(MemoryLedgerStore())
    return CostLedger(SQLiteLedgerStore(tmp_path / "costs.db", flush_interval=60))


def test_totals_and_groupings(ledger: CostLedger) -> None:
    ledger.record_many(SAMPLE)
    assert ledger.total == Decimal("0.625")
    assert ledger.total_usd == pytest.approx(0.625)
    assert ledger.requests == 6
    assert ledger.failed_requests == 1
    assert ledger.unknown_cost_requests == 1
    assert ledger.saved_usd == pytest.approx(0.125)

    by_provider = ledger.by_provider()
    assert list(by_provider) == ["openai", "anthropic", "groq"]  # biggest spend first
    assert by_provider["openai"].cost == Decimal("0.5")
    assert by_provider["openai"].input_tokens == 200
    assert by_provider["anthropic"].cache_hits == 1
    assert by_provider["groq"].unknown_cost_requests == 1

    assert ledger.by_user()["alice"].cost == Decimal("0.425")
    assert ledger.by_user()["(no user)"].requests == 2
    tags = ledger.by_tag()
    assert tags["search"].cost == Decimal("0.5")  # a row with two tags counts under both
    assert tags["beta"].cost == Decimal("0.2")
    assert tags["(untagged)"].requests == 4
    assert list(ledger.by_day()) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert ledger.by_day()["2026-11-02"].cost == Decimal("0.325")
    assert ledger.by_model()["openai-model"].requests == 2
    assert ledger.by_deployment()["anthropic-main"].cost == Decimal("0.125")
    ledger.close()


def test_views_filter_by_time_and_fields(ledger: CostLedger) -> None:
    ledger.record_many(SAMPLE)
    later = ledger.since(datetime(2026, 11, 2))  # naive: UTC
    assert later.requests == 3
    assert later.total == Decimal("0.325")
    assert ledger.until(NOV_1 + DAY).requests == 3
    alice = ledger.where(user="alice")
    assert alice.requests == 3 and alice.total == Decimal("0.425")
    assert alice.since(NOV_1 + DAY).total == Decimal("0.125")
    assert ledger.where(tag="beta").requests == 1
    assert ledger.where(user="alice").where(user="bob").requests == 0
    assert [e.cost for e in later.entries()] == [Decimal("0.2"), Decimal("0.125"), None]
    assert len(ledger.entries(limit=2)) == 2
    ledger.close()


def test_report_reads_like_a_spend_report(ledger: CostLedger) -> None:
    ledger.record_many(SAMPLE)
    report = ledger.report(by="provider")
    lines = report.splitlines()
    assert lines[0] == "LLM spend by provider, all time"
    assert "Total spend     $0.6250 over 6 requests" in report
    assert "Cache hits      1 request, saved $0.1250" in report
    assert "Unknown cost    1 request with no known price, not in the totals" in report
    assert "Requests from   2026-11-01 01:00 to 2026-11-03 00:00 UTC" in report
    openai_row = next(line for line in lines if line.startswith("openai"))
    assert openai_row.split() == [
        "openai",
        "2",
        "0",
        "0",
        "200",
        "20",
        "$0.5000",
        "80.0%",
        "$0.0000",
        "0",  # "no price": rows with an unknown cost
    ]
    groq_row = next(line for line in lines if line.startswith("groq"))
    assert groq_row.split()[-1] == "1"
    total_row = lines[-1].split()
    assert total_row[:2] == ["total", "6"] and "$0.6250" in total_row
    by_user = ledger.since(datetime(2026, 11, 2)).report(by="user")
    assert by_user.splitlines()[0] == "LLM spend by user, since 2026-11-02 00:00 UTC"
    with pytest.raises(ValueError, match="cannot group"):
        ledger.report(by="colour")
    ledger.close()


def test_memory_store_stays_bounded_and_keeps_exact_totals() -> None:
    store = MemoryLedgerStore(max_entries=3)
    ledger = CostLedger(store)
    for day in range(4):
        for _ in range(5):
            ledger.record(entry("openai", "0.001", time=NOV_1 + day * DAY + 60, user=f"u{day}"))
    assert len(ledger.entries()) == 3  # only the newest rows are kept whole
    assert ledger.requests == 20 and ledger.total == Decimal("0.020")
    assert {day: s.requests for day, s in ledger.by_day().items()} == {
        "2026-11-01": 5,
        "2026-11-02": 5,
        "2026-11-03": 5,
        "2026-11-04": 5,
    }
    assert ledger.by_user()["u0"].cost == Decimal("0.005")
    assert ledger.since(NOV_1 + 2 * DAY).requests == 10  # day-granular for folded rows


def test_sqlite_ledger_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "costs.db"
    first = ledger_from_url(f"sqlite:///{path}")  # absolute path: four slashes in all
    first.record_many(SAMPLE)
    first.record(entry("openai", "0.000000000001"))  # one pico-dollar survives exactly
    first.close()
    again = CostLedger(SQLiteLedgerStore(path))
    assert again.total == Decimal("0.625000000001")
    assert again.requests == 7
    assert again.by_provider()["anthropic"].saved == Decimal("0.125")
    rows = again.entries()
    [bob] = [row for row in rows if row.user == "bob"]
    assert bob.tags == ("search", "beta") and bob.time == NOV_1 + DAY + 10
    assert [row.cost for row in rows if row.provider == "groq"] == [Decimal(0), None]
    assert [row.error_type for row in rows if row.provider == "groq"] == ["RateLimitError", None]
    again.close()


def test_sqlite_reads_include_rows_not_yet_written(tmp_path: Path) -> None:
    path = tmp_path / "costs.db"
    writer = CostLedger(SQLiteLedgerStore(path, flush_interval=3_600, batch_size=10_000))
    writer.record(entry("openai", "0.5"))
    assert writer.total == Decimal("0.5")  # read flushes the buffer first
    reader = CostLedger(SQLiteLedgerStore(path))
    assert reader.total == Decimal("0.5")
    writer.record(entry("openai", "0.25"))
    writer.flush()
    assert reader.total == Decimal("0.75")
    writer.close()
    reader.close()


def test_a_closed_sqlite_ledger_can_still_be_read_and_written(tmp_path: Path) -> None:
    ledger = CostLedger(SQLiteLedgerStore(tmp_path / "costs.db"))
    ledger.record(entry("openai", "0.5"))
    ledger.close()  # as Router.close() does; `router.costs` must still answer afterwards
    assert ledger.total == Decimal("0.5")
    ledger.record(entry("openai", "0.25"))
    ledger.close()
    assert CostLedger(SQLiteLedgerStore(tmp_path / "costs.db")).total == Decimal("0.75")


def _write_rows(path: str, writer: int, count: int) -> None:
    store = SQLiteLedgerStore(path, flush_interval=0.005, batch_size=7)
    for n in range(count):
        store.append([entry("openai", "0.001", user=f"writer-{writer}", time=NOV_1 + n)])
    store.close()


def test_two_processes_writing_at_once_lose_no_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteLedgerStore(path).close()  # create the schema once, as a router would
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_rows, args=(path, n, 1_500)) for n in range(2)]
    for worker in workers:
        worker.start()
    _write_rows(path, 2, 1_500)  # and this process too, at the same time
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    ledger = CostLedger(SQLiteLedgerStore(path))
    assert ledger.requests == 4_500
    assert ledger.total == Decimal("4.5")
    assert {user: s.requests for user, s in ledger.by_user().items()} == {
        "writer-0": 1_500,
        "writer-1": 1_500,
        "writer-2": 1_500,
    }
    ledger.close()


def test_ledger_from_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(ledger_from_url("memory").store, MemoryLedgerStore)
    assert isinstance(ledger_from_url(None).store, MemoryLedgerStore)
    monkeypatch.chdir(tmp_path)
    relative = ledger_from_url("sqlite:///relative.db")
    relative.record(entry())
    relative.close()
    assert (tmp_path / "relative.db").exists()
    store = MemoryLedgerStore()
    assert ledger_from_url(store).store is store
    ledger = CostLedger()
    assert ledger_from_url(ledger) is ledger
    for bad in ("redis://localhost", "postgres://x", "sqlite://"):
        with pytest.raises(ConfigurationError):
            ledger_from_url(bad)


def test_filter_narrowing_keeps_the_tighter_window() -> None:
    a = LedgerFilter(since=10, until=100, user="alice")
    assert a.narrow(LedgerFilter(since=20, until=200)) == LedgerFilter(
        since=20, until=100, user="alice"
    )


# -- the recording layer --------------------------------------------------------------------


def chat_request(**options: object) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hello there")], **options)  # type: ignore[arg-type]


class Replaying:
    """A backend that answers with a given response or chunks (for cache hits and costs)."""

    def __init__(self, response: ChatResponse | None = None, chunks: list[ChatChunk] | None = None):
        self.response = response
        self.chunks = chunks or []

    async def chat(self, request: ChatRequest) -> ChatResponse:
        assert self.response is not None
        return self.response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        pass


def priced_response(**fields: object) -> ChatResponse:
    detail = CostDetail(input=Decimal("0.002"), output=Decimal("0.001"))
    values: dict[str, object] = {
        "message": Message(role="assistant", content="hi"),
        "usage": Usage(1_000, 50, 1_050, cached_input_tokens=200),
        "cost": float(detail.total),
        "cost_detail": detail,
        "provider": "openai",
        "model": "gpt-4o-mini-2024-07-18",
        "deployment": "openai/gpt-4o-mini",
        "id": "chatcmpl-1",
    }
    values.update(fields)
    return ChatResponse(**values)  # type: ignore[arg-type]


async def test_records_an_answer_with_user_tags_and_latency() -> None:
    clock = ManualClock(wall_start=NOV_1)
    ledger = CostLedger()

    class Slow(Replaying):
        async def chat(self, request: ChatRequest) -> ChatResponse:
            await clock.sleep(1.5)
            return await super().chat(request)

    backend = LedgerBackend(Slow(priced_response()), ledger, clock=clock)
    request = chat_request(user="alice", tags=("search",), metadata={"tags": ["beta", "search"]})
    await backend.chat(request)
    [row] = ledger.entries()
    assert row.cost == Decimal("0.003") and row.cached is False and row.error_type is None
    assert (row.input_tokens, row.output_tokens, row.cached_input_tokens) == (1_000, 50, 200)
    assert (row.provider, row.model, row.deployment) == (
        "openai",
        "gpt-4o-mini-2024-07-18",
        "openai/gpt-4o-mini",
    )
    assert row.user == "alice" and row.tags == ("search", "beta")
    assert row.latency_s == 1.5 and row.time == NOV_1 + 1.5
    assert row.request_id == "chatcmpl-1"


async def test_cache_hits_are_free_and_record_the_saving() -> None:
    ledger = CostLedger()
    hit = priced_response(cost=0.0, cost_detail=None, cached=True, original_cost=0.003)
    await LedgerBackend(Replaying(hit), ledger).chat(chat_request(metadata={"user": "bob"}))
    [row] = ledger.entries()
    assert row.cached and row.cost == 0 and row.saved == Decimal("0.003")
    assert row.input_tokens == 0 and row.user == "bob"
    assert ledger.saved_usd == pytest.approx(0.003)
    assert ledger.summary().cache_hits == 1


async def test_failures_are_recorded_with_their_error_type() -> None:
    ledger = CostLedger()
    error = RateLimitError(
        "slow down", status_code=429, provider="groq", model="m", deployment="groq/m"
    )
    backend = LedgerBackend(ScriptedBackend("groq/m", [error]), ledger)
    with pytest.raises(RateLimitError):
        await backend.chat(chat_request())
    group = AllDeploymentsFailedError(
        "all failed", [error, ResponseDecodeError("bad", deployment="b")]
    )
    backend = LedgerBackend(ScriptedBackend("x", [group]), ledger)
    with pytest.raises(AllDeploymentsFailedError):
        await backend.chat(chat_request())
    first, second = ledger.entries()
    assert (first.error_type, first.deployment, first.provider, first.cost) == (
        "RateLimitError",
        "groq/m",
        "groq",
        0,
    )
    assert (second.error_type, second.deployment) == ("AllDeploymentsFailedError", "b")
    assert ledger.failed_requests == 2 and ledger.total == 0


async def test_a_failure_that_reports_billed_usage_is_charged() -> None:
    ledger = CostLedger()
    error = ResponseDecodeError("stream broke", deployment="a")
    error.usage = Usage(500, 20, 520)  # type: ignore[attr-defined]
    error.cost_detail = CostDetail(input=Decimal("0.0007"))  # type: ignore[attr-defined]
    with pytest.raises(ResponseDecodeError):
        await LedgerBackend(ScriptedBackend("a", [error]), ledger).chat(chat_request())
    [row] = ledger.entries()
    assert row.cost == Decimal("0.0007") and row.input_tokens == 500


async def test_streams_are_recorded_once_at_the_final_chunk() -> None:
    ledger = CostLedger()
    final = ChatChunk(
        is_final=True,
        usage=Usage(10, 5, 15),
        cost=0.5,
        provider="anthropic",
        model="claude-haiku-4-5",
        deployment="claude",
    )
    backend = LedgerBackend(
        Replaying(chunks=[ChatChunk(text="a"), ChatChunk(text="b"), final]), ledger
    )
    seen = [chunk async for chunk in backend.stream(chat_request(user="carol"))]
    assert len(seen) == 3
    [row] = ledger.entries()
    assert row.cost == Decimal("0.5") and row.output_tokens == 5 and row.user == "carol"


async def test_broken_and_abandoned_streams_are_recorded_as_failures() -> None:
    ledger = CostLedger()
    broken = ScriptedStep(
        text="one two three four", error=ResponseDecodeError("cut"), fail_after_chunks=1
    )
    with pytest.raises(ResponseDecodeError):
        async for _ in LedgerBackend(ScriptedBackend("a", [broken]), ledger).stream(chat_request()):
            pass
    stream = LedgerBackend(ScriptedBackend("a", ["one two three four five six"]), ledger).stream(
        chat_request()
    )
    async for _ in stream:
        break  # the caller stops reading
    await stream.aclose()  # type: ignore[attr-defined]
    assert [row.error_type for row in ledger.entries()] == ["ResponseDecodeError", "Cancelled"]


def test_the_default_memory_ledger_stays_flat_over_100k_requests_with_every_view_exact() -> None:
    # A long-running process: 100k rows in one (UTC) day across deployments, users and
    # tags. Rows past the newest 10k are folded into per-day totals, so the traced memory
    # after 100k rows is what it was after 20k, and every view still adds up exactly.
    import tracemalloc
    from collections import Counter, defaultdict

    ledger = CostLedger()  # the Router's default: MemoryLedgerStore()
    expected: dict[str, defaultdict[str, Decimal]] = {
        by: defaultdict(Decimal) for by in ("provider", "model", "deployment", "user", "tag")
    }
    counts: dict[str, Counter[str]] = {by: Counter() for by in expected}
    tokens = 0
    tracemalloc.start()
    try:
        for i in range(100_000):
            provider = ("openai", "anthropic", "groq")[i % 3]
            fields = {
                "provider": provider,
                "model": f"{provider}-m{i % 2}",
                "deployment": f"{provider}/m{i % 2}",
                "user": f"user-{i % 7}",
                "tag": f"tag-{i % 4}",
            }
            cost = Decimal(i % 97 + 1) / 1_000_000
            ledger.record(
                LedgerEntry(
                    time=NOV_1 + i * 0.5, deployment=fields["deployment"], provider=provider,
                    model=fields["model"], user=fields["user"], tags=(fields["tag"],),
                    cost=cost, input_tokens=i % 50, output_tokens=3,
                )
            )  # fmt: skip
            for by, key in fields.items():
                expected[by][key] += cost
                counts[by][key] += 1
            tokens += i % 50
            if i == 19_999:
                assert ledger.requests == 20_000  # reads fold pending rows too
                settled, _ = tracemalloc.get_traced_memory()
        grown = tracemalloc.get_traced_memory()[0] - settled
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"memory grew {grown} bytes over 80k rows"
    assert ledger.requests == 100_000
    assert ledger.total == sum(expected["provider"].values())
    assert ledger.summary().input_tokens == tokens
    views = {
        "provider": ledger.by_provider(),
        "model": ledger.by_model(),
        "deployment": ledger.by_deployment(),
        "user": ledger.by_user(),
        "tag": ledger.by_tag(),
    }
    for by, view in views.items():
        assert {k: s.cost for k, s in view.items()} == dict(expected[by]), by
        assert {k: s.requests for k, s in view.items()} == dict(counts[by]), by
    assert {d: s.requests for d, s in ledger.by_day().items()} == {"2026-11-01": 100_000}
    assert ledger.where(user="user-3").requests == counts["user"]["user-3"]
    assert len(ledger.entries()) == 10_000  # the newest rows are kept whole
