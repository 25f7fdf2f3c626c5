"""A real local HTTP server that records what is posted to it (alerts' webhooks in tests).

    with webhook_receiver() as hooks:
        ...  # post to hooks.url + "/any/path"
        hooks.wait_for(1)  # [{"path", "headers", "json"}]
"""
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with self.server.lock:
            self.server.received.append({"path": self.path, "headers": dict(self.headers),
                                         "json": json.loads(body or b"null")})
        status = self.server.status
        self.send_response(status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class Receiver:
    def __init__(self, server):
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def received(self):
        with self.server.lock:
            return list(self.server.received)

    def answer(self, status):
        """Answer later posts with `status`."""
        self.server.status = status

    def wait_for(self, count, timeout=20.0):
        """The posts once at least `count` arrived (fails the test after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} posts arrived, expected {count}")
            time.sleep(0.05)
        return self.received


@contextlib.contextmanager
def webhook_receiver():
    """A started receiver on a free loopback port; shut down afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.lock, server.received, server.status = threading.Lock(), [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(server)
    finally:
        server.shutdown()
        server.server_close()
