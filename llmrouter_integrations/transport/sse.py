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
    """The WHATWG event-stream algorithm, incrementally, in time linear in the input.

    Lines end in CRLF, LF or CR (a CR at the very end of a chunk ends its line, and an LF
    opening the next chunk is then skipped); text is decoded as UTF-8 across chunk
    boundaries, so a character split between two reads survives, and one leading byte-order
    mark is dropped. A line arriving in many reads is kept as pieces and joined once. No
    limit on line or event size; no input makes it raise (bad bytes become U+FFFD, bad
    fields are ignored).
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._pieces: list[str] = []  # text of the line not yet ended by a line break
        self._after_cr = False  # the last text ended in CR: an LF next belongs to it
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
        if self._pieces:
            line = "".join(self._pieces)
            self._pieces = []
            self._line(line)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if self._after_cr and text:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        if "\r" in text:  # rare: make every line end an LF (each pass is linear)
            self._after_cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if len(lines) == 1:
            self._pieces.append(text)
            return []
        if self._pieces:
            self._pieces.append(lines[0])
            lines[0] = "".join(self._pieces)
            self._pieces = []
        rest = lines.pop()
        if rest:
            self._pieces.append(rest)
        events: list[SSEEvent] = []
        for line in lines:
            if line:
                self._line(line)
            else:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
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
            # ASCII digits only ("²".isdigit() is true, int() refuses it); the length cap
            # keeps int() clear of its digit limit and absurd delays out.
            if not (value.isascii() and value.isdigit() and len(value) <= 12):
                return
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
