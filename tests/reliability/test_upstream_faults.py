"""Upstream faults, one at a time, through the real proxy, on SQLite and PostgreSQL.

For each fault: what the client sees (status, Anthropic's error shape, headers
such as retry-after kept), that the proxy stays up, and what the row says. Then
the optional retry policy (NEXUS_UPSTREAM_RETRIES): which failures it retries,
that it honours retry-after and is bounded, and that it never retries once a
byte has reached the client or the upstream may be working on the request.
"""
import http.client
import time

import pytest

from tests.proxy.conftest import free_port
from tests.proxy.rows import fetch_rows, row_for, wait_for_rows
from tests.proxy_server import running_proxy

from .scripted_upstream import ScriptedUpstream
from .support import anthropic_error, message_body, metric, post, sse_events, wait_until

TIMEOUT_MS = 1500


@pytest.fixture(scope="module")
def proxy(upstream, module_db_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("proxy")
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": module_db_url,
           "CLAUDE_API_TIMEOUT": str(TIMEOUT_MS)}
    with running_proxy(env, cwd=str(home)) as running:
        running.db_url = module_db_url
        yield running


def ask(proxy, scenario, stream=False, **headers):
    """POST a message with `x-fake-scenario`; (status, headers, body, seconds taken)."""
    started = time.monotonic()
    status, answer_headers, body = post(proxy.port, message_body(stream=stream),
                                        {"x-fake-scenario": scenario, **headers})
    return status, answer_headers, body, time.monotonic() - started


@pytest.mark.parametrize("status, retry_after", [(500, None), (529, "17"), (429, "17")])
def test_upstream_error_statuses_pass_through_with_retry_after(proxy, status, retry_after):
    got, headers, body, _ = ask(proxy, f"error-{status}", **{"x-fake-retry-after": "17"})
    assert got == status
    assert anthropic_error(body) is not None, body
    assert headers.get("retry-after") == retry_after
    row = row_for(proxy.db_url, headers["x-nexus-request-id"])
    assert row["response_status"] == status and row["error"]
    assert proxy.get("/health")[0] == 200


def test_a_hang_before_headers_is_504_after_the_timeout(proxy):
    status, headers, body, seconds = ask(proxy, "hang-before-headers",
                                         **{"x-fake-delay-ms": "6000"})
    assert status == 504 and anthropic_error(body)["type"] == "timeout_error"
    assert TIMEOUT_MS / 1000 - 0.1 < seconds < TIMEOUT_MS / 1000 + 2.0
    row = row_for(proxy.db_url, headers["x-nexus-request-id"])
    assert row["response_status"] == 504 and row["error"]


def test_a_refused_connection_is_502_and_recorded(module_db_url, tmp_path):
    env = {"CLAUDE_API_BASE_URL": f"http://127.0.0.1:{free_port()}", "DATABASE_URL": module_db_url}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        status, headers, body = post(proxy.port)
        assert status == 502 and anthropic_error(body)["type"] == "api_error"
        row = row_for(module_db_url, headers["x-nexus-request-id"])
        assert row["response_status"] == 502 and "unreachable" in row["error"]


def test_an_error_event_mid_stream_reaches_the_client_and_the_row(proxy):
    status, headers, body, _ = ask(proxy, "midstream-error", stream=True)
    assert status == 200
    events = sse_events(body)
    assert events[0] == "message_start" and events[-1] == "error"
    assert "message_stop" not in events
    row = row_for(proxy.db_url, headers["x-nexus-request-id"])
    assert row["stream"] and row["response_status"] == 200
    assert "overloaded_error" in row["error"]
    assert row["input_tokens"] > 0  # the usage of message_start is kept


def test_a_reset_mid_stream_cuts_the_client_and_is_recorded_with_its_usage(proxy):
    # Events 50 ms apart, so that the first ones reach the client before the reset.
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("POST", "/v1/messages", message_body(stream=True), {
        "content-type": "application/json", "x-fake-scenario": "midstream-reset,slow-stream",
        "x-fake-delay-ms": "50"})
    response = conn.getresponse()
    request_id = response.getheader("x-nexus-request-id")
    assert response.status == 200
    assert response.read1(65536).startswith(b"event: message_start")
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        response.read()  # the client sees the cut: no clean end of the chunked body
    conn.close()
    row = row_for(proxy.db_url, request_id)
    assert row["error"].startswith("upstream connection lost")
    assert row["stream"] and row["input_tokens"] > 0
    assert proxy.get("/health")[0] == 200


def test_a_reset_before_the_first_event_never_looks_like_a_complete_answer(proxy):
    # The reset can beat the proxy's first read (the kernel drops unread data on RST):
    # the client then gets a 502 or a connection closed without a complete answer.
    before = len(fetch_rows(proxy.db_url))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("POST", "/v1/messages", message_body(stream=True), {
        "content-type": "application/json", "x-fake-scenario": "midstream-reset",
        "x-fake-fail-after": "0"})
    try:
        response = conn.getresponse()
        if response.status == 502:
            assert anthropic_error(response.read())["type"] == "api_error"
        else:
            with pytest.raises((http.client.IncompleteRead, ConnectionError)):
                response.read()
    except ConnectionError:
        pass  # closed before the status line: the client's SDK reports a connection error
    finally:
        conn.close()
    rows = wait_for_rows(proxy.db_url, before + 1)
    assert rows[-1]["error"] and proxy.get("/health")[0] == 200


def test_a_trickling_stream_arrives_whole_and_is_recorded_exactly(proxy, upstream):
    # Events cut into 1-7 byte pieces, 2 ms apart: the slowest honest upstream.
    status, headers, trickled, _ = ask(proxy, "trickle", stream=True, **{"x-fake-events": "6"})
    _, _, direct = post(upstream.port, message_body(stream=True), {"x-fake-events": "6"})
    assert status == 200
    assert sse_events(trickled) == sse_events(direct)
    assert trickled.replace(b"\r", b"").count(b"text_delta") == direct.count(b"text_delta")
    row = row_for(proxy.db_url, headers["x-nexus-request-id"])
    assert row["error"] is None and row["output_tokens"] > 0


# -- the retry policy ------------------------------------------------------------------
@pytest.fixture(scope="module")
def scripted():
    server = ScriptedUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def retrying_proxy(scripted, tmp_path_factory):
    home = tmp_path_factory.mktemp("retrying")
    env = {"CLAUDE_API_BASE_URL": scripted.url, "DATABASE_URL": f"sqlite:///{home}/nexus.db",
           "NEXUS_UPSTREAM_RETRIES": "2", "CLAUDE_API_TIMEOUT": str(TIMEOUT_MS)}
    with running_proxy(env, cwd=str(home)) as running:
        running.db_url = env["DATABASE_URL"]
        yield running


def gaps(times):
    return [round(b - a, 2) for a, b in zip(times, times[1:])]


def test_529_is_retried_after_its_retry_after_until_an_answer(retrying_proxy, scripted):
    scripted.play(("status", 529, {"retry-after": "1"}), ("status", 529, {"retry-after": "1"}))
    status, headers, body = post(retrying_proxy.port)
    assert status == 200, body
    assert len(scripted.arrivals) == 3
    assert all(0.9 <= gap < 2.0 for gap in gaps(scripted.arrivals)), gaps(scripted.arrivals)
    row = row_for(retrying_proxy.db_url, headers["x-nexus-request-id"])
    assert row["response_status"] == 200


def test_retries_are_bounded_and_the_last_529_keeps_its_retry_after(retrying_proxy, scripted):
    def retries():
        return metric(retrying_proxy.get("/metrics")[2].decode(), "nexus_upstream_retries_total")

    before = retries()
    scripted.play(*[("status", 529, {"retry-after": "0"})] * 5)
    status, headers, body = post(retrying_proxy.port)
    assert status == 529 and headers["retry-after"] == "0"
    assert anthropic_error(body)["type"] == "overloaded_error"
    assert len(scripted.arrivals) == 3  # one try and NEXUS_UPSTREAM_RETRIES=2 retries
    assert wait_until(lambda: retries() == before + 2, 5), (before, retries())


def test_a_long_retry_after_goes_to_the_client_at_once(retrying_proxy, scripted):
    scripted.play(("status", 529, {"retry-after": "60"}))
    started = time.monotonic()
    status, headers, _ = post(retrying_proxy.port)
    assert status == 529 and headers["retry-after"] == "60"
    assert time.monotonic() - started < 2 and len(scripted.arrivals) == 1


@pytest.mark.parametrize("code", [429, 500])
def test_other_errors_are_not_retried(retrying_proxy, scripted, code):
    scripted.play(("status", code, {"retry-after": "0"}))
    status, headers, _ = post(retrying_proxy.port)
    assert status == code and len(scripted.arrivals) == 1


def test_a_dropped_connection_is_retried_with_backoff(retrying_proxy, scripted):
    scripted.play(("close",), ("close",))
    status, _, body = post(retrying_proxy.port)
    assert status == 200, body
    assert len(scripted.arrivals) == 3
    first, second = gaps(scripted.arrivals)
    assert first >= 0.2 and second >= 0.45  # 0.25 s, then 0.5 s


def test_a_refused_upstream_is_retried_then_502(tmp_path):
    env = {"CLAUDE_API_BASE_URL": f"http://127.0.0.1:{free_port()}",
           "DATABASE_URL": f"sqlite:///{tmp_path}/nexus.db", "NEXUS_UPSTREAM_RETRIES": "2"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        started = time.monotonic()
        status, _, body = post(proxy.port)
        took = time.monotonic() - started
        assert status == 502 and anthropic_error(body)["type"] == "api_error"
        assert 0.7 <= took < 5
        retries = [e for e in proxy.log_events() if e.get("event") == "upstream retry"]
        assert [e["attempt"] for e in retries] == [1, 2]


def test_a_stream_cut_after_its_first_bytes_is_never_retried(retrying_proxy, scripted):
    scripted.play(("stream-reset",), ("stream-reset",))
    conn = http.client.HTTPConnection("127.0.0.1", retrying_proxy.port, timeout=10)
    conn.request("POST", "/v1/messages", message_body(stream=True),
                 {"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        response.read()
    conn.close()
    assert len(scripted.arrivals) == 1


def test_a_timeout_is_never_retried(retrying_proxy, scripted):
    # The upstream has the request and may be answering it: a retry could run it twice.
    scripted.play(("hang", 4),)
    status, _, _ = post(retrying_proxy.port)
    assert status == 504 and len(scripted.arrivals) == 1
