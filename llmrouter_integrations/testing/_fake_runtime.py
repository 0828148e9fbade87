"""Run an aiohttp app on 127.0.0.1 from its own thread and event loop, startable from any code.

>>> class Hello(LoopbackServer):
...     async def _handle(self, request): return web.Response(text="hi")
>>> with Hello() as server:
...     httpx.get(server.url).text
'hi'
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import TypeVar

from aiohttp import web

__all__ = ["LoopbackServer"]

_Server = TypeVar("_Server", bound="LoopbackServer")


class LoopbackServer:
    """Owns the thread, loop and aiohttp runner; subclasses implement `_handle(request)`.

    Its own loop means a sync caller, an async test and the server never share a loop,
    so the server's timing is its own. `stop()` sets `_closing`, which long waits watch
    (see `sleep`), so hanging or slow responses never hold up shutdown.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._state_lock = threading.Lock()
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def start(self: _Server) -> _Server:
        """Bind and serve on a background thread; returns once the port is open."""
        with self._state_lock:
            if self._thread is not None:
                return self
            ready = threading.Event()
            self._startup_error = None
            thread = threading.Thread(
                target=self._run, args=(ready,), name=type(self).__name__, daemon=True
            )
            self._thread = thread
            thread.start()
        ready.wait(30)
        if self._startup_error is not None:
            thread.join(5)
            self._thread = None
            raise self._startup_error
        return self

    def stop(self) -> None:
        """Close every connection and end the thread; safe to call more than once."""
        with self._state_lock:
            thread, loop = self._thread, self._loop
            self._thread = None
        if thread is None or loop is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                future.result(timeout=10)
            finally:
                loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # handed to start()'s caller
            self._startup_error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _startup(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short grace period is enough: slow responses watch `_closing` and end early.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def sleep(self, seconds: float) -> None:
        """Sleep for real, but wake at once when the server is shutting down."""
        if seconds <= 0 or self._closing is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    @property
    def closing(self) -> bool:
        return self._closing is not None and self._closing.is_set()

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self: _Server) -> _Server:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
