"""Real OS processes for the multi-process tests: tests/_state_worker.py runs, and what they share.

Each worker is its own Python process with its own Router (or store), given a JSON spec on
its command line. It talks in lines: the parent's words on its stdin, its reports on
stdout, and its last stdout line is the JSON of what happened. The `workers` fixture
(tests/conftest.py) hands a test a `Workers`, which kills whatever the test left running:

    def test_x(workers: Workers, fake: FakeProviderServer) -> None:
        spec = {"mode": "cache", "state": url, "base_url": fake.openai_base_url}
        fleet = workers.spawn(spec, count=4)
        together(fleet)                   # all four say "ready", then each is told "go"
        done = results(fleet)             # each exited 0: its last JSON line
        replies = ask_all(fleet, "call")  # the word to every worker, then one JSON line each
        (holder,) = workers.spawn(spec); holder.expect("sent"); holder.kill()

A worker that dies, or says something else than expected, fails the test with the tail
of its stderr. For a child that must inherit this process's objects (locks, threads,
connections, as gunicorn --preload's workers do), `fork`:

        pid = fork(lambda: settler.drain(10))   # the child exits 0 if it returned True
        assert exit_code(pid) == 0              # a child still running after 30 s fails the test
 Also here: the key and prompt the workers use, the worst case a budget
holds for one of their calls, and a store opened the way the workers open it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _state_worker import KEY, PROMPT

from llmrouter_integrations import Deployment
from llmrouter_integrations.costs.pricing import Pricer
from llmrouter_integrations.costs.tokens import estimate_input_tokens
from llmrouter_integrations.state.shared_redis import RedisState
from llmrouter_integrations.state.shared_sqlite import SQLiteState
from llmrouter_integrations.types import ChatRequest, Message

__all__ = ["KEY", "PROMPT", "Worker", "Workers", "ask_all", "exit_code", "fork", "open_store",
           "results", "spawn", "together", "worst_case"]  # fmt: skip

WORKER = Path(__file__).with_name("_state_worker.py")


class Worker:
    """One tests/_state_worker.py process: a JSON spec in, lines out."""

    def __init__(self, spec: dict[str, Any]) -> None:
        env = dict(os.environ, PYTHONPATH=str(WORKER.parent))
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def line(self) -> str:
        """The worker's next line (stripped); if it exited instead, the test fails."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            pytest.fail(f"the worker ended without a word; its stderr:\n{self.kill()}")
        return line.strip()

    def json(self) -> Any:
        """The worker's next line, read as JSON."""
        return json.loads(self.line())

    def expect(self, word: str) -> None:
        """The worker's next line is `word` (e.g. "ready"), or the test fails."""
        line = self.line()
        if line != word:
            pytest.fail(f"the worker said {line!r}, not {word!r}; its stderr:\n{self.kill()}")

    def say(self, line: str = "go") -> None:
        """One line to the worker's stdin ("" ends the workers that read lines until then)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def result(self, last_word: str | None = None, timeout: float = 60) -> Any:
        """Waits for the worker to exit 0 (after `last_word`, if given): its last JSON line."""
        stdout, stderr = self.process.communicate(
            None if last_word is None else last_word + "\n", timeout=timeout
        )
        assert self.process.returncode == 0, stderr[-2000:]
        lines = stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    def kill(self) -> str:
        """SIGKILL, as a crash or the OOM killer would; returns the tail of its stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        return self.process.communicate(timeout=10)[1][-2000:]


class Workers:
    """Starts workers for one test, and kills those still running when it ends."""

    def __init__(self) -> None:
        self.started: list[Worker] = []

    def spawn(self, spec: dict[str, Any], count: int = 1) -> list[Worker]:
        """`count` workers with the same spec, all started before this returns."""
        new = [Worker(spec) for _ in range(count)]
        self.started.extend(new)
        return new

    def stop(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.kill()


def spawn(spec: dict[str, Any]) -> Worker:
    """One worker outside any `Workers`: the caller waits for it (`results`) or kills it."""
    return Worker(spec)


def together(workers: list[Worker], word: str = "go") -> None:
    """A barrier: every worker says "ready" (its Router is built), then each is told `word`."""
    for worker in workers:
        worker.expect("ready")
    for worker in workers:
        worker.say(word)


def ask_all(workers: list[Worker], line: str) -> list[Any]:
    """`line` to every worker before any answer is read (they start at once), then each
    worker's JSON answer, in order."""
    for worker in workers:
        worker.say(line)
    return [worker.json() for worker in workers]


def results(workers: list[Worker]) -> list[Any]:
    """Each worker's last JSON line, once it has exited 0."""
    return [worker.result() for worker in workers]


def fork(child: Callable[[], bool]) -> int:
    """Forks this process; the child runs `child` and exits 0 if it returned True, 1 if it
    returned False, 2 if it raised. Returns the child's pid (for `exit_code`)."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            code = 0 if child() else 1
        finally:
            os._exit(code)  # never back into pytest in the child
    return pid


def exit_code(pid: int, timeout_s: float = 30.0) -> int:
    """The forked child's exit code; one still running after `timeout_s` is killed and the
    test fails (a hang, such as a lock inherited held)."""
    deadline = time.monotonic() + timeout_s
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a child's exit, not waiting out a backoff
    if done == (0, 0):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"the forked child was still running after {timeout_s} s")
    return os.waitstatus_to_exitcode(done[1])


def worst_case(max_tokens: int = 60) -> Decimal:
    """What a budget holds for one of the workers' calls before it is sent."""
    request = ChatRequest(messages=[Message(role="user", content=PROMPT)], max_tokens=max_tokens)
    cost = Pricer().estimate(
        Deployment("openai", "gpt-4o-mini"),
        estimate_input_tokens(request),
        max_tokens,
        prices_provider="openai",
    )
    assert cost is not None
    return cost


def open_store(url: str, **kw: Any) -> Any:
    """The store at `url`, opened in this process with the workers' 2 s timeout.

    These tests are about leases and counts; on a loaded machine the default 0.25 s can
    fake an outage.
    """
    kw.setdefault("timeout_s", 2.0)
    if url.startswith("sqlite:///"):
        return SQLiteState(url[len("sqlite:///") :], **kw)
    return RedisState(url, **kw)
