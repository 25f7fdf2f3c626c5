"""The upstream client: pooled calls, the optional retry policy, bytes passed as they are."""
import contextlib
import gzip
import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common import config as nexus_config
from proxy.refusals import Refusal
from proxy.upstream import MAX_RETRY_WAIT_S, Upstream, retry_after_seconds
from tests.proxy.conftest import established_to, free_port
from tests.proxy_server import running_proxy


class Scripted(BaseHTTPRequestHandler):
    """Answers from a script: a list of (status, headers, body), one per request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def do_GET(self):
        server = self.server
        with server.lock:
            server.seen += 1
            status, headers, body = server.script[min(server.seen, len(server.script)) - 1]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def scripted_server(script):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    server.script, server.seen, server.lock = script, 0, threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def upstream_for(url, retries=0, timeout_ms=2000):
    waits = []
    config = nexus_config.load({"CLAUDE_API_BASE_URL": url, "NEXUS_UPSTREAM_RETRIES": str(retries),
                                "CLAUDE_API_TIMEOUT": str(timeout_ms)})
    return Upstream(config, sleep=waits.append), waits


OVERLOADED = (529, [("retry-after", "0.2"), ("content-type", "application/json")],
              b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
OK = (200, [("content-type", "application/json")], b'{"ok":true}')


def test_retry_after_is_read_in_seconds():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after_seconds(None) is None


def test_a_529_is_retried_after_its_retry_after_when_retries_are_on():
    with scripted_server([OVERLOADED, OK]) as server:
        upstream, waits = upstream_for(f"http://127.0.0.1:{server.server_port}", retries=2)
        response = upstream.send("POST", "/v1/messages", b"{}", {})
        assert response.status == 200 and response.read() == b'{"ok":true}'
        assert server.seen == 2 and waits == [0.2]


def test_retries_are_bounded_and_the_last_529_reaches_the_client():
    with scripted_server([OVERLOADED]) as server:
        upstream, waits = upstream_for(f"http://127.0.0.1:{server.server_port}", retries=2)
        response = upstream.send("POST", "/v1/messages", b"{}", {})
        assert response.status == 529 and server.seen == 3 and len(waits) == 2


def test_without_retries_a_529_passes_straight_through():
    with scripted_server([OVERLOADED, OK]) as server:
        upstream, waits = upstream_for(f"http://127.0.0.1:{server.server_port}")
        assert upstream.send("POST", "/v1/messages", b"{}", {}).status == 529
        assert server.seen == 1 and waits == []


def test_a_long_retry_after_is_left_to_the_client():
    long_wait = (529, [("retry-after", str(int(MAX_RETRY_WAIT_S * 3)))], b"{}")
    with scripted_server([long_wait, OK]) as server:
        upstream, waits = upstream_for(f"http://127.0.0.1:{server.server_port}", retries=3)
        assert upstream.send("POST", "/v1/messages", b"{}", {}).status == 529
        assert waits == []


def test_a_refused_connection_is_retried_with_backoff_then_502():
    upstream, waits = upstream_for(f"http://127.0.0.1:{free_port()}", retries=2)
    with pytest.raises(Refusal) as caught:
        upstream.send("POST", "/v1/messages", b"{}", {})
    assert caught.value.status == 502 and waits == [0.25, 0.5]


def test_a_timeout_waiting_for_headers_is_504_and_never_retried(upstream):
    client, waits = upstream_for(upstream.url, retries=3, timeout_ms=300)
    started = time.monotonic()
    with pytest.raises(Refusal) as caught:
        client.send("POST", "/v1/messages", b"{}", {"x-fake-scenario": "hang-before-headers",
                                                     "x-fake-delay-ms": "2000"})
    assert caught.value.status == 504 and waits == []
    assert time.monotonic() - started < 1.5


def test_a_compressed_body_reaches_the_client_byte_for_byte(tmp_path):
    payload = gzip.compress(b'{"type":"message","content":[]}' * 50)
    script = [(200, [("content-type", "application/json"), ("content-encoding", "gzip")], payload)]
    with scripted_server(script) as server:
        env = {"CLAUDE_API_BASE_URL": f"http://127.0.0.1:{server.server_port}",
               "DATABASE_URL": f"sqlite:///{tmp_path}/n.db"}
        with running_proxy(env, cwd=str(tmp_path)) as proxy:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("GET", "/v1/models", headers={"accept-encoding": "gzip"})
            response = conn.getresponse()
            body = response.read()
            conn.close()
    assert response.getheader("content-encoding") == "gzip"
    assert body == payload


def test_the_pool_keeps_one_connection_per_client_connection_unless_sized():
    from proxy.upstream import pool_size
    unset = nexus_config.load({})
    assert pool_size(unset, connections=2000) == 2000
    assert pool_size(nexus_config.load({"NEXUS_POOL_SIZE": "50"}), connections=2000) == 50


def test_120_concurrent_requests_keep_their_upstream_connections_for_the_next_ones(tmp_path, upstream):
    # With a pool smaller than the concurrency, urllib3 closed the connections past its
    # size after each request (and warned for each); a second wave had to reopen them.
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
           "STORAGE_ENABLED": "false"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        def wave():
            statuses = []

            def one():
                conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
                try:
                    conn.request("GET", "/v1/models", headers={
                        "x-fake-scenario": "hang-before-headers", "x-fake-delay-ms": "400"})
                    response = conn.getresponse()
                    response.read()
                    statuses.append(response.status)
                finally:
                    conn.close()
            threads = [threading.Thread(target=one) for _ in range(120)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            return statuses

        assert wave() == [200] * 120
        assert established_to(upstream.port) >= 115  # all kept, idle, for the next requests
        log = "\n".join(proxy.log_lines())
        assert "pool is full" not in log.lower()
