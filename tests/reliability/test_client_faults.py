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

from .support import anthropic_error, message_body, parse_answer, post, rss_bytes, wait_until


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


# -- a client that sends its headers and stalls its body ---------------------------------
@pytest.fixture(scope="module")
def strict_proxy(upstream, module_db_url, tmp_path_factory):
    """A proxy with a one-second body timeout and room for only five connections."""
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": module_db_url,
           "NEXUS_BODY_TIMEOUT": "1000", "NEXUS_MAX_BODY_BYTES": "1000",
           "GUNICORN_CMD_ARGS": "--worker-connections 5"}
    with running_proxy(env, cwd=str(tmp_path_factory.mktemp("strict"))) as running:
        running.db_url = module_db_url
        yield running


def stall(port, length, sent=b'{"model":'):
    """A connection that sent its headers and `sent` of a `length`-byte body, then stopped."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                 b"application/json\r\nContent-Length: %d\r\n\r\n" % length + sent)
    return sock


def answer_of(sock):
    """Everything the server sends until it closes the connection."""
    data = b""
    while piece := sock.recv(65536):
        data += piece
    sock.close()
    return data


def test_stalled_bodies_get_408_and_do_not_hold_the_worker(strict_proxy):
    stalled = [stall(strict_proxy.port, 500) for _ in range(8)]
    started = time.monotonic()
    status, _, _ = post(strict_proxy.port, timeout=15)
    assert status == 200 and time.monotonic() - started < 6
    for sock in stalled:
        status, headers, body = parse_answer(answer_of(sock))
        assert status == 408 and anthropic_error(body)["type"] == "timeout_error"
        row = wait_until(lambda: row_for(strict_proxy.db_url, headers["x-nexus-request-id"]), 10)
        assert row["response_status"] == 408
    assert strict_proxy.get("/health")[0] == 200


def test_an_oversized_body_that_stalls_gets_its_413_within_the_body_timeout(strict_proxy):
    sock = stall(strict_proxy.port, 1500)
    started = time.monotonic()
    status, _, body = parse_answer(answer_of(sock))
    assert status == 413 and anthropic_error(body)["type"] == "request_too_large"
    assert time.monotonic() - started < 5  # the drain gives up with the body timeout, not 30 s
