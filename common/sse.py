"""An incremental Server-Sent Events parser (the WHATWG event-stream format), sans-io.

Bytes go in as they arrive, in chunks of any size and split anywhere (inside a CRLF,
inside a multi-byte UTF-8 character); complete events come out. Lines end in CRLF, LF
or CR; lines starting with ':' are comments; several `data:` lines join with '\n'.
"""
import re
from typing import NamedTuple

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class ServerSentEvent(NamedTuple):
    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed it bytes with `feed()`; it returns the events those bytes completed."""

    def __init__(self):
        self._pending = []         # the current line's bytes, before its terminator
        self._skip_lf = False      # the last chunk ended in CR: a leading LF is its pair
        self._started = False
        self._event = ""
        self._data = []
        self._id = None
        self._retry = None

    def feed(self, chunk):
        """Parse `chunk` (bytes); return the list of events it completed."""
        if not chunk:
            return []
        chunk = bytes(chunk)
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        events, start = [], 0
        for match in _LINE_END.finditer(chunk):
            self._pending.append(chunk[start:match.start()])
            line, self._pending = b"".join(self._pending), []
            start = match.end()
            event = self._line(line)
            if event is not None:
                events.append(event)
            if match.group() == b"\r" and start == len(chunk):
                self._skip_lf = True
        if start < len(chunk):
            self._pending.append(chunk[start:])
        return events

    def _line(self, raw):
        if not self._started:
            self._started = True
            if raw.startswith(_BOM):
                raw = raw[len(_BOM):]
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self):
        # The id persists across events (it is the stream's last event id); the rest resets.
        event_name, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event_name, "\n".join(data), self._id, self._retry)


def parse_sse(data):
    """Every complete event in `data` (bytes); a trailing unfinished event is dropped."""
    return SSEParser().feed(data)
