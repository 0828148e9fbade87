"""The SSE decoder yields the same events however the bytes are cut."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from wire_fixtures import (
    ANTHROPIC_TEXT_STREAM,
    ANTHROPIC_TOOL_STREAM,
    OPENAI_TEXT_STREAM,
    OPENAI_TOOL_STREAM,
    decode,
    pieces_at,
    two_way_splits,
)

from llmrouter_integrations.transport.sse import SSEDecoder, SSEEvent

STREAMS = {
    "openai_text": OPENAI_TEXT_STREAM,
    "openai_tools": OPENAI_TOOL_STREAM,
    "anthropic_text": ANTHROPIC_TEXT_STREAM,
    "anthropic_tools": ANTHROPIC_TOOL_STREAM,
}


@pytest.mark.parametrize("name", STREAMS)
def test_every_two_way_split_gives_the_same_events(name: str) -> None:
    data = STREAMS[name]
    expected = decode([data])
    assert len(expected) == data.count(b"\n\n")
    for pieces in two_way_splits(data):
        assert decode(pieces) == expected


@pytest.mark.parametrize("name", STREAMS)
def test_one_byte_at_a_time_gives_the_same_events(name: str) -> None:
    data = STREAMS[name]
    assert decode([data[i : i + 1] for i in range(len(data))]) == decode([data])


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_endings_match_lf_at_every_split(ending: bytes) -> None:
    data = ANTHROPIC_TOOL_STREAM
    converted = data.replace(b"\n", ending)
    expected = decode([data])
    for pieces in two_way_splits(converted):
        assert decode(pieces) == expected


def test_cut_between_cr_and_lf_does_not_make_an_extra_blank_line() -> None:
    data = b"data: one\r\n\r\ndata: two\r\n\r\n"
    cut = data.index(b"\r\n") + 1
    events = decode(pieces_at(data, [cut, cut + 2]))
    assert [e.data for e in events] == ["one", "two"]


def test_multibyte_utf8_split_mid_character_survives() -> None:
    text = 'data: {"content":"héllo wörld 😀 中文"}\n\n'
    data = text.encode()
    for pieces in two_way_splits(data):
        (event,) = decode(pieces)
        assert event.data == '{"content":"héllo wörld 😀 中文"}'


def test_comments_are_dropped_and_named_events_kept() -> None:
    data = (
        b": OPENROUTER PROCESSING\n\n"
        b"event: ping\ndata: {}\n\n"
        b": OPENROUTER PROCESSING\n"
        b'data: {"a": 1}\n\n'
    )
    events = decode([data])
    assert events == [
        SSEEvent(event="ping", data="{}"),
        SSEEvent(event="message", data='{"a": 1}'),
    ]


def test_multiline_data_id_and_retry() -> None:
    data = b"id: 7\nretry: 1500\ndata: first\ndata:second\n\ndata: again\n\n"
    first, second = decode([data])
    assert first == SSEEvent(event="message", data="first\nsecond", id="7", retry=1500)
    assert second.id == "7"  # the last id carries over; retry does not
    assert second.retry is None


def test_flush_dispatches_an_event_left_without_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.flush() == [SSEEvent(event="message", data="[DONE]")]


def test_flush_treats_a_trailing_cr_as_a_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail\r") == []
    assert [e.data for e in decoder.flush()] == ["tail"]


def test_huge_event_is_not_truncated() -> None:
    payload = "x" * 1_000_000
    data = f"data: {payload}\n\n".encode()
    (event,) = decode(pieces_at(data, range(0, len(data), 65_536)))
    assert event.data == payload


def _best_time(function: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def _feed_all(data: bytes, read_size: int) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for start in range(0, len(data), read_size):
        events += decoder.feed(data[start : start + read_size])
    return events + decoder.flush()


def test_many_lf_frames_in_one_feed_take_linear_time() -> None:
    # The same bytes in one feed or in 80 feeds must cost about the same. The old decoder
    # rescanned the rest of the buffer for a CR on every LF-only line: quadratic per feed.
    data = (b"data: " + b"x" * 42 + b"\n\n") * 40_000
    in_one = _best_time(lambda: _feed_all(data, len(data)))
    in_many = _best_time(lambda: _feed_all(data, len(data) // 80))
    assert len(_feed_all(data, len(data))) == 40_000
    assert in_one / in_many < 5, (in_one, in_many)


def test_a_long_line_in_small_reads_takes_linear_time() -> None:
    # The same 8 MiB line in 4 KiB reads or in one read must cost about the same; it used
    # to be recopied on every read.
    data = b"data: " + b"x" * (8 << 20) + b"\n\n"
    in_one = _best_time(lambda: _feed_all(data, len(data)))
    in_reads = _best_time(lambda: _feed_all(data, 4096))
    (event,) = _feed_all(data, 4096)
    assert len(event.data) == 8 << 20
    assert in_reads / in_one < 10, (in_one, in_reads)


def test_a_leading_byte_order_mark_does_not_drop_the_first_event() -> None:
    data = b"\xef\xbb\xbfdata: first\n\ndata: second\n\n"
    for pieces in two_way_splits(data):
        assert [e.data for e in decode(pieces)] == ["first", "second"]


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1" * 5000, "-5", "1.5", " 7"])
def test_a_bad_retry_value_is_ignored_not_raised(value: str) -> None:
    data = f"retry: {value}\ndata: x\n\n".encode()
    assert decode([data]) == [SSEEvent(event="message", data="x")]


def test_an_error_event_with_empty_data_is_dispatched() -> None:
    assert decode([b"event: error\ndata:\n\n"]) == [SSEEvent(event="error", data="")]
