"""An upstream that answers from a script, in this process: for the retry policy's tests.

The fake upstream answers each request by its headers; a retry sends the same
headers again, so "fail twice, then answer" needs a server that remembers. Each
script step is one of ("status", code, headers), ("close",) (hang up without an
answer: a connection error), ("stream-reset",) (200 and two SSE events, then a TCP
reset), ("hang", seconds); when the script runs out it answers 200 with a message.
"""
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests import fake_upstream_data as data

MESSAGE = {"id": "msg_01scripted", "type": "message", "role": "assistant",
           "model": "claude-haiku-4-5-20251001", "content": [{"type": "text", "text": "ok"}],
           "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 9, "output_tokens": 1}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        with server.lock:
            server.arrivals.append(time.monotonic())
            step = server.script.pop(0) if server.script else ("ok",)
        getattr(self, "_" + step[0].replace("-", "_"))(*step[1:])

    def _ok(self):
        self._send(200, {}, MESSAGE)

    def _status(self, code, headers):
        kind = "overloaded_error" if code == 529 else "rate_limit_error" if code == 429 else "api_error"
        self._send(code, headers, data.error_body(kind, f"scripted {code}"))

    def _send(self, code, headers, body):
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _close(self):
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _stream_reset(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for name, body in list(data.sse_events(MESSAGE))[:2]:
            event = data.encode_event(name, body)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.flush()
        time.sleep(0.1)
        self._close()

    def _hang(self, seconds):
        time.sleep(seconds)
        self._ok()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The proxy hanging up on a hung answer is the point of some tests.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ScriptedUpstream:
    """A started scripted upstream: `url`, `play(*steps)`, `arrivals` (monotonic times)."""

    def __init__(self):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.lock = threading.Lock()
        self.server.script = []
        self.server.arrivals = []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def play(self, *steps):
        """Answer the next requests with `steps`; forget earlier arrivals."""
        with self.server.lock:
            self.server.script = list(steps)
            self.server.arrivals = []

    @property
    def arrivals(self):
        with self.server.lock:
            return list(self.server.arrivals)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
