"""Ids a process puts in the shared store (`state/ids.py`): never the same twice, in one
process (any thread), in a forked child (which starts with its parent's memory), or in
another process; and what the hold, permit and lock paths send really is such an id.

A child forked from a process that already made ids must not make its parent's next ones
again: two holds with one id would settle as one (the second settle is taken for a retry).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from llmrouter_integrations.state.ids import new_id


def _prefix(value: str) -> str:
    return value[:20]


def test_ids_in_one_process_are_all_different_from_every_thread() -> None:
    made: list[list[str]] = [[] for _ in range(8)]

    def make(into: list[str]) -> None:
        into.extend(new_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for into in made for value in into]
    assert len(set(every)) == len(every) == 40_000
    assert len({_prefix(value) for value in every}) == 1


def test_a_forked_child_makes_none_of_its_parent_s_ids() -> None:
    before = new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids, one a line, then exit without pytest's teardown
        try:
            os.write(write, "\n".join(new_id() for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    child = b"".join(chunks).decode().split("\n")
    parent = [new_id() for _ in range(100)]
    assert len(child) == 100
    assert not set(child) & set(parent)
    assert {_prefix(value) for value in child} != {_prefix(before)}
    assert _prefix(parent[0]) == _prefix(before)  # the parent's own numbering goes on


def test_other_processes_draw_other_prefixes_of_at_least_64_random_bits() -> None:
    code = "from llmrouter_integrations.state.ids import new_id; print(new_id())"
    made = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(3)
    ]
    prefixes = {_prefix(value) for value in made} | {_prefix(new_id())}
    assert len(prefixes) == 4
    assert all(len(prefix) == 20 and int(prefix, 16) >= 0 for prefix in prefixes)


def test_holds_and_permits_of_routed_calls_are_this_process_s_ids() -> None:
    from llmrouter_integrations import Budget, Deployment, Router
    from llmrouter_integrations.state.shared import CallPlan, CallVerdict
    from llmrouter_integrations.state.shared_memory import MemoryState
    from llmrouter_integrations.testing import FakeProviderServer

    seen: list[str] = []

    class Recording(MemoryState):
        def admit_call(self, plan: CallPlan, now: float) -> CallVerdict:
            seen.extend([] if plan.rate is None else [plan.rate.permit_id])
            seen.extend([] if plan.hold is None else [plan.hold.hold_id])
            return super().admit_call(plan, now)

    with FakeProviderServer() as server:
        deployment: Any = Deployment(
            provider="openai",
            model="gpt-4o-mini",
            api_key="sk-test",
            base_url=server.openai_base_url,
            rpm=1_000,
        )
        router = Router(
            deployments=[deployment], budgets=[Budget(10, period="day")], state=Recording()
        )
        for _ in range(3):
            router.complete("hi", max_tokens=5)
        router.close()
    assert len(seen) == 6 and len(set(seen)) == 6  # a permit and a hold per call
    assert {_prefix(value) for value in seen} == {_prefix(new_id())}
