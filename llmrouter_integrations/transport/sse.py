"""Sans-IO server-sent-events decoder: feed it bytes in any split, get whole events out.

>>> decoder = SSEDecoder()
>>> decoder.feed(b'data: {"a"')
[]
>>> decoder.feed(b': 1}\\n\\n')
[SSEEvent(event='message', data='{"a": 1}', id=None, retry=None)]
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event. `event` is "message" when the server named none."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """The WHATWG event-stream algorithm, incrementally.

    Lines end in CRLF, LF or CR (a CR at the very end of a chunk waits for the next chunk
    to know if an LF follows); text is decoded as UTF-8 across chunk boundaries, so a
    character split between two reads survives. No limit on line or event size.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # text not yet ended by a line break
        self._event = ""
        self._data: list[str] = []
        self._has_fields = False
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return every event completed by them."""
        return self._feed_text(self._utf8.decode(chunk))

    def flush(self) -> list[SSEEvent]:
        """The stream ended: dispatch what a final blank line would have."""
        events = self._feed_text(self._utf8.decode(b"", final=True))
        if self._pending.endswith("\r"):
            # A CR held back to see whether an LF follows: at the end it just ends its line.
            events += self._feed_text("\n")
        if self._pending:
            line, self._pending = self._pending, ""
            self._line(line)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not text:
            return []
        buffer = self._pending + text
        events: list[SSEEvent] = []
        start = 0
        length = len(buffer)
        while True:
            lf = buffer.find("\n", start)
            cr = buffer.find("\r", start)
            if lf == -1 and cr == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            else:
                if cr == length - 1:
                    break  # a CR at the end: the next chunk may start with its LF
                end = cr
                nxt = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
            line = buffer[start:end]
            start = nxt
            if line:
                self._line(line)
            else:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
        self._pending = buffer[start:]
        return events

    def _line(self, line: str) -> None:
        if line.startswith(":"):
            return  # comment / keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        else:
            return
        self._has_fields = True

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_fields:
            return None
        event = SSEEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._last_id,
            retry=self._retry,
        )
        self._event = ""
        self._data = []
        self._retry = None
        self._has_fields = False
        return event
