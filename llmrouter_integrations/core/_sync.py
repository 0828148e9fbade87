"""The only sync bridge: run coroutines and async iterators on one background event loop.

Sync entry points (`router.complete`, `router.stream`) call into the async core here. The
loop lives in one daemon thread per process, made on first use, so sync calls work the
same from plain scripts, from threads, and from code already inside a running loop
(Jupyter), and they share one pooled HTTP session.

    >>> run_sync(router.acomplete("hi")).text
    >>> for chunk in iterate_sync(lambda: router.astream("hi")):
    ...     print(chunk.text, end="")
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, TypeVar, cast

from ..errors import SyncCallInEventLoopError

__all__ = [
    "background_loop",
    "blocked_caller_loop",
    "is_bridge_loop",
    "iterate_sync",
    "run_sync",
    "shutdown",
]

T = TypeVar("T")

_SHUTDOWN_WAIT_S = 5.0
# In work started by a sync call: the event loop of the calling thread, if it runs one.
# That loop is blocked until the call returns, so the work must never wait on it.
_CALLER_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "llmrouter_sync_caller_loop", default=None
)


def blocked_caller_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop a sync call is blocking while this work runs for it, or None.

    Jupyter runs every cell inside a running loop, so sync calls from such a thread are
    allowed; only waiting on something that loop must finish would hang, and layers that
    wait across loops (cache single-flight) check this first.
    """
    return _CALLER_LOOP.get()


def _copy_caller_context() -> contextvars.Context:
    context = contextvars.copy_context()
    try:
        caller_loop = asyncio.get_running_loop()
    except RuntimeError:
        return context
    context.run(_CALLER_LOOP.set, caller_loop)
    return context


class _BackgroundLoop:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="llmrouter-sync-loop", daemon=True
        )
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def stop(self) -> None:
        """Cancel what still runs, close parked async generators (and so HTTP sessions)."""
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            done = asyncio.run_coroutine_threadsafe(_wind_down(), self.loop)
            # Give up waiting at exit rather than hang the interpreter.
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                done.result(_SHUTDOWN_WAIT_S)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(_SHUTDOWN_WAIT_S)
        if not self.thread.is_alive():
            self.loop.close()


async def _wind_down() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=_SHUTDOWN_WAIT_S)
    await asyncio.get_running_loop().shutdown_asyncgens()


_lock = threading.Lock()
_background: _BackgroundLoop | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The bridge's event loop, started on first use (thread-safe)."""
    global _background
    background = _background
    if background is None:
        with _lock:
            background = _background
            if background is None:
                background = _BackgroundLoop()
                _background = background
    return background.loop


def is_bridge_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """True if `loop` is the bridge's own loop (without starting one to find out)."""
    background = _background
    return background is not None and background.loop is loop


def shutdown() -> None:
    """Stop the background loop (runs at interpreter exit; the next sync call restarts it)."""
    global _background
    with _lock:
        background, _background = _background, None
    if background is not None:
        background.stop()


def _forget_after_fork() -> None:
    # The child process has no background thread; start a fresh one when needed.
    global _background, _lock
    _background = None
    _lock = threading.Lock()


atexit.register(shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _loop_for_caller() -> asyncio.AbstractEventLoop:
    loop = background_loop()
    if _background is not None and threading.current_thread() is _background.thread:
        raise SyncCallInEventLoopError(
            "a sync router method was called from inside the router's own event loop; "
            "use the async method (acomplete/achat/astream) there"
        )
    return loop


def _cancel_and_wait(
    loop: asyncio.AbstractEventLoop,
    cancel: Callable[[], object],
    done: concurrent.futures.Future[Any],
) -> None:
    """The caller gave up (Ctrl-C): cancel the work on its loop and let its cleanup run."""
    try:
        loop.call_soon_threadsafe(cancel)
        concurrent.futures.wait([done], timeout=_SHUTDOWN_WAIT_S)
    except RuntimeError:
        pass  # the loop is already closed


def run_sync(work: Awaitable[T] | Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine (or a function making one) on the background loop; return its result.

    The caller's context variables are visible inside, exceptions come back unchanged,
    and Ctrl-C in the caller cancels the work.

    >>> run_sync(asyncio.sleep(0, result=42))
    42
    """
    try:
        loop = _loop_for_caller()
    except RuntimeError:
        if asyncio.iscoroutine(work):
            work.close()  # never to run: say so quietly, not with "never awaited"
        raise
    context = _copy_caller_context()
    result: concurrent.futures.Future[T] = concurrent.futures.Future()
    started: list[asyncio.Future[T]] = []

    def start() -> None:
        # Runs on the loop inside the caller's copied context, so the task inherits it.
        if not result.set_running_or_notify_cancel():
            return
        try:
            awaitable = work() if callable(work) else work
            task = asyncio.ensure_future(awaitable)
        except BaseException as exc:
            result.set_exception(exc)
            return
        started.append(task)
        task.add_done_callback(lambda finished: _copy_outcome(finished, result))

    try:
        try:
            loop.call_soon_threadsafe(start, context=context)
        except RuntimeError:  # the loop closed (interpreter exit)
            if asyncio.iscoroutine(work):
                work.close()
            raise
        return result.result()
    except KeyboardInterrupt:
        # Scheduled after `start`, so on the loop it always sees the task `start` made.
        _cancel_and_wait(loop, lambda: [task.cancel() for task in started], result)
        raise


def _copy_outcome(task: asyncio.Future[T], result: concurrent.futures.Future[T]) -> None:
    if task.cancelled():
        result.set_exception(concurrent.futures.CancelledError())
    elif (error := task.exception()) is not None:
        result.set_exception(error)
    else:
        result.set_result(task.result())


_NEXT = "next"
_CLOSE = "close"


class _Pump:
    """Drives one async iterator on the background loop, one item per request.

    One task owns the iterator for its whole life, so every step runs in the same
    (copied) context and the iterator is closed on the loop it ran on.
    """

    def __init__(self, make_iterator: Callable[[], AsyncIterator[T]]) -> None:
        self.loop = _loop_for_caller()
        self.finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.task: asyncio.Future[None] | None = None
        self.inbox: asyncio.Queue[tuple[str, concurrent.futures.Future[Any]]] | None = None
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def start() -> None:
            self.inbox = asyncio.Queue()
            self.task = asyncio.ensure_future(self._run(make_iterator))
            self.task.add_done_callback(lambda finished: _copy_outcome(finished, self.finished))
            ready.set_result(None)

        self.loop.call_soon_threadsafe(start, context=_copy_caller_context())
        ready.result()

    async def _run(self, make_iterator: Callable[[], AsyncIterator[Any]]) -> None:
        assert self.inbox is not None
        iterator: AsyncIterator[Any] | None = None
        try:
            while True:
                action, reply = await self.inbox.get()
                if action == _CLOSE:
                    reply.set_result(None)
                    return
                try:
                    if iterator is None:
                        iterator = make_iterator()
                    item = await iterator.__anext__()
                except StopAsyncIteration:
                    reply.set_exception(StopIteration())
                    return
                except BaseException as exc:
                    reply.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                        raise
                    return
                reply.set_result(item)
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()

    def ask(self, action: str) -> Any:
        reply: concurrent.futures.Future[Any] = concurrent.futures.Future()
        assert self.inbox is not None
        try:
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, (action, reply))
        except RuntimeError:  # the loop closed under us (interpreter exit)
            raise StopIteration from None
        waiting = {reply, self.finished}
        done, _ = concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
        if reply in done:
            return reply.result()
        self.finished.result()  # the task ended without answering: raise why
        raise StopIteration

    def close(self) -> None:
        """Stop early: close the iterator on the loop and wait until it has."""
        if not self.finished.done():
            with contextlib.suppress(StopIteration):
                self.ask(_CLOSE)
            concurrent.futures.wait([self.finished], timeout=_SHUTDOWN_WAIT_S)

    def cancel(self) -> None:
        if self.task is not None:
            _cancel_and_wait(self.loop, self.task.cancel, self.finished)


def iterate_sync(make_iterator: Callable[[], AsyncIterator[T]]) -> Generator[T, None, None]:
    """A sync iterator over an async one, pulled item by item from the background loop.

    Leaving early (`break`, or closing the generator) closes the async iterator on its
    loop before returning; exceptions come back with their original type.

    >>> for chunk in iterate_sync(lambda: router.astream("hi")):
    ...     print(chunk.text, end="")
    """
    pump = _Pump(make_iterator)
    try:
        while True:
            try:
                item = pump.ask(_NEXT)
            except StopIteration:
                return
            yield cast(T, item)
    except KeyboardInterrupt:
        pump.cancel()
        raise
    finally:
        pump.close()
