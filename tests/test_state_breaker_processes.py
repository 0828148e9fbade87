"""Circuit breakers across real OS processes racing on one store (SQLite and Redis).

4 worker processes (tests/_state_worker.py, mode "rounds") wait on their stdin, so the parent
starts them at the same instant; the FakeProviderServer in this process counts what reached
the always-failing deployment.

The bound: the fleet counts failures in the store and opens at `failure_threshold`. With
each process making one call at a time, when the count reaches the threshold each of the
other processes has at most one call already admitted (in flight, or admitted just before
the opening reaches the store); each such call fails, and its process then opens the
circuit too. So at most `threshold + processes - 1` requests reach the deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _processes import KEY, Worker, Workers, ask_all, open_store

from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

FAILING = "openai/gpt-4o-mini"
PROCESSES = 4
THRESHOLD = 5
COOLDOWN_S = 600  # the workers' BreakerPolicy(cooldown_s=600), also the longest cooldown
WALL = 1_800_000_000.0  # the workers' manual wall clock starts here


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    fake.set_behavior("gpt-4o", ModelBehavior())


class Fleet:
    """`PROCESSES` workers, each a Router with the failing deployment first, then a healthy one."""

    def __init__(self, workers: Workers, fake: FakeProviderServer, state_url: str) -> None:
        # Every worker's clock is a ManualClock starting at one wall time: `round(advance=)`
        # moves them all on together, so the 600 s cooldown passes without a wait.
        spec = {"mode": "rounds", "state": state_url, "base_url": fake.openai_base_url,
                "models": ["gpt-4o-mini", "gpt-4o"], "threshold": THRESHOLD, "wall": WALL}
        self.workers: list[Worker] = workers.spawn(spec, count=PROCESSES)
        for worker in self.workers:  # every process is up (router built) before any call
            worker.expect("ready")

    def round(self, calls: int, advance: float = 0.0) -> list[dict[str, Any]]:
        """Every worker moves its clock on by `advance` seconds, then makes `calls` sequential
        calls, all starting at once: the words go out before any answer is read."""
        return ask_all(self.workers, f"{calls} {advance}" if advance else f"{calls}")

    def close(self) -> None:
        for worker in self.workers:
            worker.result(last_word="")


@pytest.fixture
def fleet(workers: Workers, fake: FakeProviderServer, state_url: str) -> Iterator[Fleet]:
    started = Fleet(workers, fake, state_url)
    yield started
    started.close()


def test_four_processes_failing_at_once_send_at_most_threshold_plus_three(
    fake: FakeProviderServer, fleet: Fleet
) -> None:
    done = fleet.round(10)
    sent = fake.request_count("gpt-4o-mini")
    # Between the fleet's fifth failure and the circuit opening in the store, each of the
    # other three processes can have one call admitted: never more than 5 + 3.
    assert THRESHOLD <= sent <= THRESHOLD + PROCESSES - 1, sent
    # Every call was answered (by the fallback), and every process ends with it open.
    assert [len(r["answered"]) for r in done] == [10] * PROCESSES
    assert fake.request_count("gpt-4o") == 10 * PROCESSES
    assert [r["circuit"] for r in done] == ["open"] * PROCESSES
    # Open means open: another round sends the failing deployment nothing.
    fleet.round(5)
    assert fake.request_count("gpt-4o-mini") == sent


def test_when_the_rest_ends_one_probe_goes_for_the_whole_fleet(
    fake: FakeProviderServer, fleet: Fleet
) -> None:
    fleet.round(3)  # the fleet opens the circuit; every process has seen it open
    assert [r["circuit"] for r in fleet.round(1)] == ["open"] * PROCESSES
    sent = fake.request_count("gpt-4o-mini")
    # Still failing, and slow: the probe is in flight while the other three processes call.
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500, latency_s=1.0))
    done = fleet.round(1, advance=COOLDOWN_S + 1)  # the rest is over, in every process
    # Exactly one call in the fleet probed it; it failed, and every call fell back.
    assert fake.request_count("gpt-4o-mini") == sent + 1
    assert sorted(r["answered"][0] for r in done) == ["openai/gpt-4o"] * PROCESSES
    # The failed probe opened it again (for longer), in every process.
    assert [r["circuit"] for r in fleet.round(1)] == ["open"] * PROCESSES
    assert fake.request_count("gpt-4o-mini") == sent + 1
    # The deployment recovers; the next rest ends (600 s: the longest cooldown). The probe
    # takes 2 s: a worker the machine's load made late must still find it in flight.
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=2.0))
    done = fleet.round(1, advance=COOLDOWN_S + 1)
    assert fake.request_count("gpt-4o-mini") == sent + 2  # again one probe
    answered = sorted(r["answered"][0] for r in done)
    assert answered == ["openai/gpt-4o"] * 3 + [FAILING]
    # The probe's success closed it everywhere: the next round all goes to it.
    after = fleet.round(1)
    assert [r["answered"] for r in after] == [[FAILING]] * PROCESSES
    assert fake.request_count("gpt-4o-mini") == sent + 2 + PROCESSES


def test_processes_that_never_saw_it_open_still_probe_once_and_close_it(
    fake: FakeProviderServer, state_url: str, workers: Workers
) -> None:
    # Another process opened the circuit and its rest is over; then 4 fresh processes start.
    store = open_store(state_url)
    store.open_circuit(FAILING, WALL - 1.0)
    store.close()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=2.0))  # the probe is slow
    fleet = Fleet(workers, fake, state_url)
    done = fleet.round(1)
    assert fake.request_count("gpt-4o-mini") == 1  # one probe for the fleet
    assert sorted(r["answered"][0] for r in done).count(FAILING) == 1
    # Its success closed the circuit for every process.
    after = fleet.round(1)
    assert [r["answered"] for r in after] == [[FAILING]] * PROCESSES
    fleet.close()
