"""The sync bridge: coroutines and async iterators run on one background loop."""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
from collections.abc import AsyncIterator

import pytest

from llmrouter_integrations.core import _sync
from llmrouter_integrations.core._sync import iterate_sync, run_sync
from llmrouter_integrations.errors import RateLimitError

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


class Boom(Exception):
    pass


async def answer(value: int) -> int:
    await asyncio.sleep(0)
    return value


def test_run_sync_from_plain_code_takes_a_coroutine_or_a_factory() -> None:
    assert run_sync(answer(1)) == 1
    assert run_sync(lambda: answer(2)) == 2


def test_run_sync_runs_on_one_background_thread() -> None:
    async def where() -> tuple[threading.Thread, asyncio.AbstractEventLoop]:
        return threading.current_thread(), asyncio.get_running_loop()

    first, second = run_sync(where()), run_sync(where())
    assert first == second
    assert first[0] is not threading.current_thread()
    assert first[1] is _sync.background_loop()


async def test_run_sync_works_inside_a_running_loop() -> None:
    # As in Jupyter: this thread's loop is busy running this test.
    assert run_sync(answer(3)) == 3


def test_exceptions_keep_their_type_and_identity() -> None:
    error = RateLimitError("slow down", status_code=429, retry_after=2.0)

    async def fail() -> None:
        raise error

    with pytest.raises(RateLimitError) as caught:
        run_sync(fail())
    assert caught.value is error
    assert caught.value.retry_after == 2.0


def test_context_variables_reach_the_coroutine() -> None:
    async def read() -> str:
        return request_id.get()

    token = request_id.set("req-42")
    try:
        assert run_sync(read()) == "req-42"
        assert run_sync(lambda: read()) == "req-42"
    finally:
        request_id.reset(token)


def test_run_sync_inside_the_background_loop_refuses_instead_of_deadlocking() -> None:
    async def nested() -> int:
        return run_sync(answer(1))

    with pytest.raises(RuntimeError, match="async method"):
        run_sync(nested())


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX pthread_kill")
def test_keyboard_interrupt_cancels_the_background_task() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("signals reach only the main thread; run this test there")
    cancelled = threading.Event()
    started = threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt_when_started() -> None:
        started.wait(5)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_sync(wait_forever())
    assert cancelled.wait(5)


# -- iterate_sync ----------------------------------------------------------------------------


def test_iterate_sync_yields_every_item_in_order() -> None:
    async def count() -> AsyncIterator[int]:
        for value in range(5):
            await asyncio.sleep(0)
            yield value

    assert list(iterate_sync(count)) == [0, 1, 2, 3, 4]


def test_breaking_early_closes_the_async_generator() -> None:
    closed = threading.Event()
    produced: list[int] = []

    async def endless() -> AsyncIterator[int]:
        try:
            value = 0
            while True:
                produced.append(value)
                yield value
                value += 1
        finally:
            await asyncio.sleep(0)  # cleanup that needs the loop
            closed.set()

    for value in iterate_sync(endless):
        if value == 2:
            break
    assert closed.is_set()  # already closed when the loop statement ends
    assert produced == [0, 1, 2]  # and nothing was pulled ahead of the consumer


def test_explicit_close_closes_the_async_generator() -> None:
    closed = threading.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                yield 1
        finally:
            closed.set()

    items = iterate_sync(endless)
    assert next(items) == 1
    items.close()
    assert closed.is_set()


def test_iterate_sync_exceptions_keep_their_type() -> None:
    async def breaks() -> AsyncIterator[str]:
        yield "first"
        raise Boom("mid-stream")

    received: list[str] = []
    with pytest.raises(Boom, match="mid-stream"):
        for item in iterate_sync(breaks):
            received.append(item)
    assert received == ["first"]


def test_iterate_sync_keeps_one_context_for_the_whole_iteration() -> None:
    async def steps() -> AsyncIterator[str]:
        yield request_id.get()
        request_id.set("changed-inside")
        await asyncio.sleep(0)
        yield request_id.get()

    token = request_id.set("from-caller")
    try:
        assert list(iterate_sync(steps)) == ["from-caller", "changed-inside"]
        assert request_id.get() == "from-caller"  # the caller's own context is untouched
    finally:
        request_id.reset(token)


async def test_iterate_sync_works_inside_a_running_loop() -> None:
    async def two() -> AsyncIterator[int]:
        yield 1
        yield 2

    assert list(iterate_sync(two)) == [1, 2]


def test_iterate_sync_from_many_threads_at_once() -> None:
    async def numbered(start: int) -> AsyncIterator[int]:
        for offset in range(20):
            await asyncio.sleep(0)
            yield start + offset

    results: dict[int, list[int]] = {}

    def consume(start: int) -> None:
        results[start] = list(iterate_sync(lambda: numbered(start)))

    threads = [threading.Thread(target=consume, args=(n * 100,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {n * 100: list(range(n * 100, n * 100 + 20)) for n in range(8)}
