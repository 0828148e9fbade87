"""Property-based fuzzing of the SSE decoder: any split of a valid stream gives the events of
one feed; any bytes at all give events or nothing, never an exception; time stays linear."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrouter_integrations.transport.sse import SSEDecoder, SSEEvent

# CI runs a fixed set of cases; FUZZ_EXPLORE=1 FUZZ_EXAMPLES=5000 explores new ones locally.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize=not os.environ.get("FUZZ_EXPLORE"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=40,
)
_event = st.fixed_dictionaries(
    {
        "event": st.one_of(st.none(), st.sampled_from(["message", "error", "ping", "x"])),
        "id": st.one_of(st.none(), _field_text),
        "data": st.lists(_field_text, min_size=1, max_size=4),
        "comment": st.booleans(),
    }
)


def serialize(events: list[dict[str, object]], ending: str, bom: bool) -> bytes:
    lines: list[str] = []
    for event in events:
        if event["comment"]:
            lines.append(": keep-alive")
        if event["event"] is not None:
            lines.append(f"event: {event['event']}")
        if event["id"] is not None:
            lines.append(f"id: {event['id']}")
        lines += [f"data: {line}" for line in event["data"]]  # type: ignore[attr-defined]
        lines.append("")
    # One line ending per stream: mixing them is ambiguous ("x\r" then an empty "\n" line
    # is one CRLF), so a mixed stream cannot say which events it meant.
    text = "".join(line + ending for line in lines)
    return ("\ufeff" if bom else "").encode() + text.encode()


def decode(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.flush()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    return [*pieces, data[start:]]


@FUZZ
@given(
    events=st.lists(_event, min_size=1, max_size=8),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_of_a_valid_stream_gives_the_events_of_one_feed(
    events: list[dict[str, object]], ending: str, bom: bool, cuts: list[int]
) -> None:
    data = serialize(events, ending, bom)
    whole = decode([data])
    assert [event.data for event in whole] == ["\n".join(e["data"]) for e in events]  # type: ignore[arg-type]
    assert decode(split(data, cuts)) == whole
    assert decode([data[i : i + 1] for i in range(len(data))]) == whole


@FUZZ
@given(
    data=st.binary(max_size=2_000)
    | st.text(alphabet="data:event:id:retry: \r\n\ufeff\x00é{}[]", max_size=400).map(str.encode),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_any_bytes_give_events_never_an_exception(data: bytes, cuts: list[int]) -> None:
    events = decode(split(data, cuts))
    assert all(isinstance(event, SSEEvent) and isinstance(event.data, str) for event in events)
    assert events == decode([data])


def _cpu_time(function: Callable[[], object]) -> float:
    """Best of 3 in CPU seconds of this process, garbage collector off: other processes on
    a busy CI machine and GC pauses do not count, the decoder's own work does."""
    best = float("inf")
    for _ in range(3):
        gc.collect()
        gc.disable()
        try:
            started = time.process_time()
            function()
            best = min(best, time.process_time() - started)
        finally:
            gc.enable()
    return best


def test_adversarial_shapes_take_linear_time() -> None:
    # 8x the input should cost about 8x; the bound (32x) leaves room for cache effects but
    # not for anything quadratic (64x). Each shape once hit a slow path of some decoder.
    shapes = {
        "lf frames": b"data: x\n\n",
        "cr only": b"data: x\r\r",
        "crlf": b"data: x\r\n\r\n",
        "blank lines": b"\n",
        "lone crs": b"\r",
        "no line end": b"data: xxxxxxxx",
        "comments": b": ping\n",
        "many fields": b"data: a\nid: 1\nevent: e\n",
    }
    for name, unit in shapes.items():
        small_data, large_data = unit * 4_000, unit * 32_000
        for read in (4096, len(large_data)):
            small = _cpu_time(lambda d=small_data, r=read: _feed_reads(d, r))  # type: ignore[misc]
            large = _cpu_time(lambda d=large_data, r=read: _feed_reads(d, r))  # type: ignore[misc]
            assert large / max(small, 1e-4) < 32, (name, read, small, large)


def _feed_reads(data: bytes, read: int) -> None:
    decoder = SSEDecoder()
    for start in range(0, len(data), read):
        decoder.feed(data[start : start + read])
    decoder.flush()
