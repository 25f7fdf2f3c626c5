"""Hostile input through the real proxy (gunicorn, gevent), on SQLite and PostgreSQL.

Every input gets one of three answers, and which one is part of the contract:
- `proxy`: the proxy refuses it itself, in Anthropic's error shape, and records it;
- `gunicorn`: the request never reaches the application (a malformed request
  line or header, or one past gunicorn's size limits), so gunicorn answers with
  its own 4xx, in Anthropic's error shape too, and closes the connection; nothing
  is recorded (gunicorn logs a warning);
- `upstream`: a well-formed /v1 request the proxy has no reason to judge (an
  unknown /v1 path or method) goes to the upstream, whose answer the client
  gets unchanged; it is recorded.
After every input the same worker is still serving (no crash, no restart).
See docs/adr/0080-hostile-input-three-answers.md.
"""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.proxy.rows import fetch_rows, row_for
from tests.proxy_server import running_proxy

from .support import anthropic_error, message_body, note, parse_answer, raw_exchange, wait_until

LIMIT = 4096
ANSWERED = {}  # database url -> x-nexus-request-id of every answer that carried one


@pytest.fixture(scope="module")
def proxy(upstream, module_db_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("proxy")
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": module_db_url,
           "NEXUS_MAX_BODY_BYTES": str(LIMIT)}
    with running_proxy(env, cwd=str(home)) as running:
        running.db_url = module_db_url
        running.workers_at_start = running.worker_pids()
        yield running


def request(method=b"POST", path=b"/v1/messages", host=b"localhost", headers=b"", body=None):
    body = message_body() if body is None else body
    return (method + b" " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
            b"Content-Type: application/json\r\n" + headers +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def exactly(size):
    """A valid JSON object of exactly `size` bytes."""
    head = b'{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "'
    tail = b'"}]}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


# name: (raw request, expected answer, expected status)
CASES = {
    "invalid JSON": (request(body=b'{"model": "x", "messages": ['), "proxy", 400),
    "a JSON array": (request(body=b'[{"model": "x"}]'), "proxy", 400),
    "a JSON string": (request(body=b'"hello"'), "proxy", 400),
    "invalid UTF-8": (request(body=b'{"messages": "\xff\xfe\xc3"}'), "proxy", 400),
    "a body one byte over the limit": (request(body=exactly(LIMIT + 1)), "proxy", 413),
    "a chunked body one byte over the limit": (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (LIMIT + 1, exactly(LIMIT + 1)), "proxy", 413),
    "a body exactly at the limit": (request(body=exactly(LIMIT)), "upstream", 200),
    "a bare CR in a header value": (request(headers=b"X-Evil: a\rInjected: b\r\n"), "gunicorn", 400),
    "a bare LF in a header value": (request(headers=b"X-Evil: a\nInjected: b\r\n"), "gunicorn", 400),
    "a folded header line": (request(headers=b"X-Evil: a\r\n Injected: b\r\n"), "gunicorn", 400),
    "a NUL in a header value": (request(headers=b"X-Evil: a\x00b\r\n"), "gunicorn", 400),
    "a header one byte past 8190": (request(headers=b"X-Big: " + b"a" * 8184 + b"\r\n"), "gunicorn", 431),
    "two hundred headers": (request(headers=b"".join(b"X-H%d: v\r\n" % i for i in range(200))),
                            "gunicorn", 431),
    "Host ..": (request(host=b".."), "proxy", 400),
    "Host /": (request(host=b"/"), "proxy", 400),
    "Host ../../etc/passwd": (request(host=b"../../etc/passwd"), "proxy", 400),
    "Host with a NUL": (request(host=b"a\x00b"), "gunicorn", 400),
    "Host 5000 bytes long": (request(host=b"h" * 5000), "proxy", 400),
    "Host 9000 bytes long": (request(host=b"h" * 9000), "gunicorn", 431),
    "Host with a space": (request(host=b"a b.example"), "proxy", 400),
    "Host with a percent-encoded dot-dot": (request(host=b"%2e%2e"), "proxy", 400),
    # Client-chosen text longer than its column: PostgreSQL refuses it, so the
    # store must clip it or the record is lost (SQLite would not notice).
    "a 300-byte session header": (request(headers=b"X-Claude-Code-Session-Id: " + b"s" * 300 + b"\r\n"),
                                  "upstream", 200),
    "a 19-letter method (gunicorn allows 20)": (request(method=b"B" * 19), "upstream", 501),
    "a 1000-byte metadata.user_id": (request(body=message_body(metadata={"user_id": json.dumps(
        {"session_id": "s" * 1000, "account_uuid": "a" * 1000})})), "upstream", 200),
    "an unknown /v1 path": (request(path=b"/v1/nothing-here"), "upstream", 404),
    "an unknown method on /v1": (request(method=b"BREW"), "upstream", 501),
    "a path outside /v1": (request(path=b"/admin"), "proxy-unrecorded", 404),
    "a dot-dot path outside /v1": (request(path=b"/../etc/passwd"), "proxy-unrecorded", 404),
    "a NUL in the path": (request(path=b"/v1/mess\x00ages"), "gunicorn", 400),
    "a request line past 4094 bytes": (request(path=b"/v1/" + b"a" * 5000), "gunicorn", 414),
    "a TLS handshake": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
                        "gunicorn", 400),
    # Paths the upstream would resolve outside /v1 under a base URL with a path prefix.
    "a dot-dot path under /v1": (request(path=b"/v1/../../admin"), "proxy", 400),
    "an encoded dot-dot path under /v1": (request(path=b"/v1/%2e%2E/%2e%2e/admin"), "proxy", 400),
    "a single-dot segment": (request(path=b"/v1/./messages"), "proxy", 400),
    "an encoded slash": (request(path=b"/v1/messages%2F..%2F..%2Fadmin"), "proxy", 400),
    "an encoded backslash": (request(path=b"/v1/messages%5c..%5cadmin"), "proxy", 400),
    "/v1 spelled with a percent-escape": (request(path=b"/%761/messages"), "proxy", 400),
    # A Host as long as DNS allows, whose credential file name would be too long.
    "Host 240 bytes long": (request(host=b"h" * 240), "upstream", 200),
    "Host 253 bytes long": (request(host=b"a" * 63 + b"." + b"b" * 63 + b"." + b"c" * 63 + b"." + b"d" * 61),
                            "upstream", 200),
    "JSON nested 1,000 deep": (request(body=b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"), "proxy", 400),
    "JSON nested 2,000 deep": (request(body=b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}"), "proxy", 400),
    "a chunk size that is not hex": (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n", "proxy", 400),
    "a chunk without its CRLF": (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}XX0\r\n\r\n", "proxy", 400),
    "Content-Length not a number": (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "gunicorn", 400),
    "a negative Content-Length": (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "gunicorn", 400),
    "two Content-Lengths": (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "gunicorn", 400),
    "Content-Length with Transfer-Encoding (smuggling)": (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "gunicorn", 400),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_gets_a_clear_answer_and_the_proxy_stays_up(proxy, name):
    data, kind, expected = CASES[name]
    status, headers, body = parse_answer(raw_exchange(proxy.port, data))
    assert status == expected, body[:300]
    request_id = headers.get("x-nexus-request-id")
    if kind == "proxy":
        error = anthropic_error(body)
        assert error and error["message"], body
        assert error["type"] == ("request_too_large" if status == 413 else "invalid_request_error")
    elif kind == "proxy-unrecorded":
        assert anthropic_error(body)["type"] == "not_found_error" and request_id is None
    elif kind == "gunicorn":
        assert request_id is None and headers.get("connection") == "close"
        assert headers["content-type"] == "application/json" and anthropic_error(body)["message"]
    else:
        assert "x-nexus-overhead-ms" in headers  # set on relayed answers only
    if kind in ("proxy", "upstream"):
        row = row_for(proxy.db_url, request_id)
        assert row is not None and row["response_status"] == status
    assert proxy.get("/health")[0] == 200
    assert proxy.worker_pids() == proxy.workers_at_start, "a worker died"


def test_percent_encoded_crlf_in_the_path_injects_no_header(proxy, upstream):
    upstream.clear()
    data = request(path=b"/v1/messages%0D%0AX-Injected:%20yes%0D%0A")
    status, headers, _ = parse_answer(raw_exchange(proxy.port, data))
    [seen] = upstream.requests()
    assert seen.header("x-injected") is None
    assert seen["path"] == "/v1/messages%0D%0AX-Injected:%20yes%0D%0A"
    assert status == 404 and headers["x-nexus-request-id"]


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"XYZ"]),
       path=st.binary(max_size=40).map(lambda b: b"/v1/" + bytes(c for c in b if 0x21 <= c < 0x7F)),
       headers=st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True),
                                  HEADER_TEXT), max_size=6),
       body=st.one_of(st.binary(max_size=300), st.builds(lambda v: json.dumps(v).encode(),
                                                         st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                                                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                                                                      max_leaves=8))))
def test_no_input_makes_the_proxy_fail_or_fall_over(proxy, method, path, headers, body):
    """Random methods, /v1 paths, headers and bodies: never a 500 of the proxy's own."""
    extra = b"".join(f"{n}: {v}\r\n".encode() for n, v in headers
                     if n.lower() not in ("host", "content-length", "transfer-encoding",
                                          "connection", "expect"))
    extra += b"Connection: close\r\n"  # HEAD and streamed answers end with the connection
    status, answer_headers, answer = parse_answer(raw_exchange(
        proxy.port, request(method=method, path=path, headers=extra, body=body)))
    made_by_upstream = "x-nexus-overhead-ms" in answer_headers  # relayed answers only
    assert status < 500 or made_by_upstream, (status, answer[:300])
    if answer_headers.get("x-nexus-request-id"):
        ANSWERED.setdefault(proxy.db_url, []).append(answer_headers["x-nexus-request-id"])
        if not made_by_upstream and method != b"HEAD":  # an answer to HEAD has no body
            assert anthropic_error(answer), answer[:300]


@pytest.mark.slow  # it checks what the fuzzing above (slow too) left
def test_every_request_that_reached_the_proxy_was_recorded(proxy):
    # Runs after the fuzzing above: each answer that carried a request id has its row.
    answered = set(ANSWERED.get(proxy.db_url, ()))
    assert len(answered) > 50
    rows = wait_until(lambda: (found := fetch_rows(proxy.db_url)) and
                      answered <= {r["request_id"] for r in found} and found, 15) \
        or fetch_rows(proxy.db_url)  # the last answers' records may still be on their way
    missing = answered - {r["request_id"] for r in rows}
    assert not missing, "\n".join(
        [f"{len(missing)} answered requests have no row:"]
        + [line for line in proxy.log_lines() if any(m in line for m in missing)
           or '"level": "error"' in line or '"level": "warning"' in line][:10])
    assert proxy.worker_pids() == proxy.workers_at_start
    note("hostile input", db=proxy.db_url.split(":")[0], listed_inputs=len(CASES),
         fuzzed_answers_with_id=len(answered), rows=len(rows),
         statuses=sorted({r["response_status"] for r in rows}))


def test_client_chosen_methods_do_not_grow_the_metrics(proxy):
    """Each unknown method would be a new Prometheus series: they count as "other"."""
    for n in range(30):
        raw_exchange(proxy.port, request(method=b"M%dX" % n, headers=b"Connection: close\r\n"))
    text = proxy.get("/metrics")[2].decode()
    labels = {line.split('method="')[1].split('"')[0] for line in text.splitlines()
              if line.startswith("nexus_requests_total{")}
    assert "other" in labels and labels <= {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                            "OPTIONS", "other"}, labels


def half_closed_exchange(port, data, timeout=10):
    """Send raw bytes and end the sending side (so nothing waits for more); all that comes back."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            try:
                piece = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not piece:
                break
            answer += piece
        return answer


MUTATION = st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, 400),
                     st.binary(min_size=1, max_size=4))


def mutate(data, mutations):
    for kind, at, piece in mutations:
        at %= len(data) + 1
        if kind == "insert":
            data = data[:at] + piece + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + len(piece):]
        else:
            data = data[:at] + piece + data[at + len(piece):]
    return data or b"\r\n"


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from([
           request(), request(path=b"/v1/messages?beta=true", headers=b"X-Api-Key: k\r\n"),
           b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"10\r\n" + b'{"model": "m"}  ' + b"\r\n0\r\n\r\n"]),
       mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_no_mangled_request_makes_the_proxy_fail(proxy, base, mutations):
    """Requests mangled byte by byte: answered by gunicorn or the proxy in Anthropic's
    shape, or relayed; never a 500 of the proxy's own, never a dead worker."""
    answer = half_closed_exchange(proxy.port, mutate(base, mutations))
    if answer:
        status, headers, body = parse_answer(answer)
        if headers.get("content-length", "").isdigit():
            body = body[:int(headers["content-length"])]  # the first of pipelined answers
        if "x-nexus-overhead-ms" not in headers:  # not the upstream's answer
            # gunicorn's own answers (no request id) include 501 for a transfer coding
            # it does not implement; the proxy's own are never 5xx for client input.
            assert status < 500 or (status == 501 and "x-nexus-request-id" not in headers), \
                answer[:300]
            assert status < 400 or anthropic_error(body), answer[:300]
    assert proxy.worker_pids() == proxy.workers_at_start, "a worker died"
