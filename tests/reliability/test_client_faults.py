"""Client faults through the real proxy: a client that leaves mid-stream, a client that reads slowly.

A disconnect must end the upstream exchange within a second (the fake upstream
notes when and how each exchange ended) and leave a row marked cancelled with
the usage seen so far. A slow reader must hold the upstream back instead of
making the proxy buffer the answer: the worker's memory stays flat while the
upstream is still waiting to send.
"""
import http.client
import socket
import time

import pytest

from tests.proxy.rows import row_for
from tests.proxy_server import running_proxy

from .support import message_body, rss_bytes, wait_until


@pytest.fixture(scope="module")
def proxy(upstream, module_db_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("proxy")
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": module_db_url}
    with running_proxy(env, cwd=str(home)) as running:
        running.db_url = module_db_url
        yield running


def exchange_of(upstream, marker):
    """The fake upstream's record of the request whose body holds `marker`."""
    found = [r for r in upstream.requests() if marker.encode() in r["body"]]
    return found[-1] if found else None


def test_a_client_that_leaves_mid_stream_ends_the_upstream_stream_within_a_second(proxy, upstream):
    marker = f"leaving-{time.time_ns()}"
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("POST", "/v1/messages", message_body(stream=True, text=marker), {
        "content-type": "application/json", "x-fake-scenario": "slow-stream",
        "x-fake-delay-ms": "100", "x-fake-events": "100"})
    response = conn.getresponse()
    request_id = response.getheader("x-nexus-request-id")
    seen = response.read1(65536)
    assert seen.startswith(b"event: message_start")
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    left_at = time.time()
    ended = wait_until(lambda: (r := exchange_of(upstream, marker)) and
                       r["outcome"] != "pending" and r, timeout=5)
    assert ended, "the upstream exchange never ended"
    assert ended["outcome"] == "client disconnected"
    assert ended["finished_at"] - left_at < 1.0
    row = row_for(proxy.db_url, request_id)
    assert row["error"] == "client disconnected"
    assert row["stream"] and row["response_status"] == 200
    assert row["input_tokens"] > 0  # usage from the message_start the client saw
    assert proxy.get("/health")[0] == 200


@pytest.mark.slow
def test_a_slow_reader_holds_the_upstream_back_and_memory_stays_flat(upstream, tmp_path):
    # Memory, not recording, is under test here: one database kind is enough.
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        slow_read(proxy, upstream)


def slow_read(proxy, upstream):
    [worker] = proxy.worker_pids()
    marker = f"slow-reader-{time.time_ns()}"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)  # no kernel-side slack
    sock.settimeout(30)
    sock.connect(("127.0.0.1", proxy.port))
    body = message_body(stream=True, text=marker)
    # ~300k events, about 35 MB: far more than every socket buffer on the way.
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"x-fake-events: 300000\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    received = len(sock.recv(65536))
    before = rss_bytes(worker)
    # The reader stalls for twice what the fake upstream needs to send it all unhindered
    # (about 4 s on this machine): only back-pressure can keep it from finishing.
    time.sleep(9)
    during = rss_bytes(worker)
    stalled = exchange_of(upstream, marker)
    assert stalled["outcome"] == "pending", "the whole answer was taken while the client slept"
    assert during - before < 16 * 2 ** 20, (before, during)
    while piece := sock.recv(1 << 20):
        received += len(piece)
        if piece.endswith(b"0\r\n\r\n"):
            break
    sock.close()
    assert received > 30 * 2 ** 20
    assert wait_until(lambda: exchange_of(upstream, marker)["outcome"] == "complete", 10)
