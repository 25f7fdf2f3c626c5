"""HTTP/1.1 bytes for the stand-in: an incremental request reader and prebuilt answers.

Pure functions over bytes, no sockets, so the stand-in's protocol stays a thin
shell and the reader can be tested on its own.
"""
import json
from functools import lru_cache

MODEL = "claude-sonnet-4-5-20250929"
USAGE = {"input_tokens": 12, "output_tokens": 6, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 0}


def _response(status, content_type, body, extra=b""):
    head = (b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
            b"request-id: req_bench\r\n%s\r\n" % (status, content_type, len(body), extra))
    return head + body


MESSAGE_BODY = json.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL,
    "content": [{"type": "text", "text": "Hello from the bench stand-in."}],
    "stop_reason": "end_turn", "stop_sequence": None, "usage": USAGE,
}, separators=(",", ":")).encode()
MESSAGE_RESPONSE = _response(b"200 OK", b"application/json", MESSAGE_BODY,
                             b"anthropic-ratelimit-requests-remaining: 999\r\n")
OK_TEXT = _response(b"200 OK", b"text/plain", b"ok")
BAD_REQUEST = _response(b"400 Bad Request", b"text/plain", b"bad request")
SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"request-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n")
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data):
    """`data` framed as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(name, data):
    return b"event: %s\ndata: %s\n\n" % (name.encode(), json.dumps(data, separators=(",", ":")).encode())


@lru_cache(maxsize=64)
def sse_events(count):
    """`count` (at least 6) Anthropic stream events: start, text deltas, stop."""
    deltas = max(1, count - 5)
    start = {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {**USAGE, "output_tokens": 1}}}
    events = [_event("message_start", start),
              _event("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})]
    delta = _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": "token "}})
    events += [delta] * deltas
    events += [_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
               _event("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                        "usage": {"output_tokens": deltas}}),
               _event("message_stop", {"type": "message_stop"})]
    return tuple(events)


def parse_head(head):
    """(method, target, {lower-cased name: value}) of a request head without its blank line."""
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _dechunk(buf, start):
    """(body, end) of a chunked body beginning at `start`, or None while incomplete."""
    parts, pos = [], start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)
            return (b"".join(parts), end + 4) if end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(bytes(buf[eol + 2:eol + 2 + size]))
        pos = eol + 2 + size + 2


class RequestReader:
    """Feed bytes in, take whole requests out: (method, target, headers, body)."""

    def __init__(self):
        self.buf = bytearray()
        self.head = None  # (method, target, headers, body start) once the head is complete

    def feed(self, data):
        self.buf += data

    def next_request(self):
        """The next complete request, or None until more bytes arrive."""
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            self.head = parse_head(bytes(self.buf[:end])) + (end + 4,)
        method, target, headers, start = self.head
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            done = _dechunk(self.buf, start)
            if done is None:
                return None
            body, end = done
        else:
            end = start + int(headers.get(b"content-length", 0))
            if len(self.buf) < end:
                return None
            with memoryview(self.buf) as view:  # one copy of a 1 MB body, not two
                body = bytes(view[start:end])
        del self.buf[:end]
        self.head = None
        return method, target, headers, body
