"""The hot path, end to end: the official SDK → the real gunicorn proxy → the fake upstream."""
import http.client
import json
import socket
import time
import uuid

import anthropic
import pytest

from proxy import app
from tests.proxy.conftest import MODEL, established_to, free_port, sdk
from tests.proxy.rows import row_for
from tests.proxy_server import running_proxy

PROMPT = [{"role": "user", "content": "Tell me about otters"}]
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}]


def _comparable(message):
    return message.model_dump()


def _without_request_id(body):
    return {k: v for k, v in body.items() if k != "request_id"}


CASES = {
    "plain": dict(messages=PROMPT),
    "tool use": dict(messages=[{"role": "user", "content": "use tool: weather in Oslo"}], tools=TOOLS),
    "thinking": dict(messages=PROMPT, thinking={"type": "enabled", "budget_tokens": 1024},
                     max_tokens=2048),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sdk_gets_the_same_message_through_the_proxy(proxy, upstream, case):
    kwargs = {"model": MODEL, "max_tokens": 256, **CASES[case]}
    with sdk(upstream.url) as direct_client, sdk(proxy.url) as client:
        direct = direct_client.messages.create(**kwargs)
        through = client.messages.create(**kwargs)
    assert _comparable(through) == _comparable(direct)
    if case == "tool use":
        assert any(b.type == "tool_use" for b in through.content)
    if case == "thinking":
        assert through.content[0].type == "thinking" and through.content[0].signature


@pytest.mark.parametrize("case", sorted(CASES))
def test_sdk_stream_is_the_same_through_the_proxy(proxy, upstream, case):
    kwargs = {"model": MODEL, "max_tokens": 256, **CASES[case]}

    def events_and_message(url):
        with sdk(url) as client, client.messages.stream(**kwargs) as stream:
            events = [e.model_dump() for e in stream]
            return events, stream.get_final_message()

    direct_events, direct_message = events_and_message(upstream.url)
    events, message = events_and_message(proxy.url)
    assert events == direct_events
    assert _comparable(message) == _comparable(direct_message)


@pytest.mark.parametrize("status, error_class", [
    (400, anthropic.BadRequestError), (401, anthropic.AuthenticationError),
    (404, anthropic.NotFoundError), (429, anthropic.RateLimitError),
    # 529: OverloadedError, an InternalServerError in recent SDKs but an APIStatusError
    # only in older ones (nixpkgs' 0.75); the status is checked below.
    (500, anthropic.InternalServerError), (529, anthropic.APIStatusError)])
def test_upstream_errors_reach_the_sdk_unchanged(proxy, upstream, status, error_class):
    def call(url):
        with sdk(url) as client, pytest.raises(error_class) as caught:
            client.messages.create(model=MODEL, max_tokens=10, messages=PROMPT,
                                     extra_headers={"x-fake-scenario": f"error-{status}",
                                                    "x-fake-retry-after": "7"})
        return caught.value

    direct, through = call(upstream.url), call(proxy.url)
    assert through.status_code == direct.status_code == status
    assert _without_request_id(through.body) == _without_request_id(direct.body)
    assert through.response.headers["request-id"].startswith("req_")
    if status in (429, 529):
        assert through.response.headers["retry-after"] == "7"
    row = row_for(proxy.db_url, through.response.headers["x-nexus-request-id"])
    assert row["response_status"] == status


def raw_request(port, method, target, body=b"", headers=(), read=True):
    """(status, headers, body) of one request over a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=any(n.lower() == "host" for n, _ in headers),
                        skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None and not any(n.lower() == "transfer-encoding" for n, _ in headers):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body:
            conn.send(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read() if read else b""
    finally:
        conn.close()


def test_headers_query_and_body_reach_the_upstream_unchanged(proxy, upstream):
    upstream.clear()
    body = json.dumps({"model": MODEL, "max_tokens": 5, "messages": PROMPT}).encode()
    status, headers, answer = raw_request(proxy.port, "POST", "/v1/messages?beta=true", body, [
        ("Host", "localhost"), ("Content-Type", "application/json"),
        ("x-api-key", "sk-ant-client"), ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"),
        ("X-Unknown-Thing", "keep me"), ("User-Agent", "claude-cli/2.0"),
        ("Connection", "keep-alive, x-hop"), ("X-Hop", "drop me"),
        ("Proxy-Authorization", "Basic c2VjcmV0")])
    assert status == 200, answer
    [seen] = upstream.requests()
    assert seen["path"] == "/v1/messages" and seen["query"] == "beta=true"
    assert seen["body"] == body
    assert seen.header("anthropic-beta") == "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
    assert seen.header("x-unknown-thing") == "keep me"
    assert seen.header("x-api-key") == "sk-ant-client"
    assert seen.header("user-agent") == "claude-cli/2.0"
    assert seen.header("content-length") == str(len(body))
    for hop in ("x-hop", "proxy-authorization"):
        assert seen.header(hop) is None, hop


def test_upstream_headers_reach_the_client(proxy, upstream):
    with sdk(proxy.url) as client:
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=5, messages=PROMPT)
    headers = raw.headers
    assert headers["request-id"].startswith("req_")
    assert headers["anthropic-ratelimit-requests-limit"] == "4000"
    assert headers["anthropic-ratelimit-tokens-reset"]
    assert uuid.UUID(headers["x-nexus-request-id"]).version == 4
    assert 0 <= float(headers["x-nexus-overhead-ms"]) < 1000
    row = row_for(proxy.db_url, headers["x-nexus-request-id"])
    assert row["upstream_request_id"] == headers["request-id"]


def test_stream_events_arrive_as_the_upstream_sends_them(proxy):
    body = json.dumps({"model": MODEL, "max_tokens": 50, "stream": True,
                       "messages": PROMPT}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    start = time.monotonic()
    conn.request("POST", "/v1/messages", body, {
        "content-type": "application/json", "x-api-key": "sk-ant-client",
        "x-fake-scenario": "slow-stream", "x-fake-delay-ms": "400", "x-fake-events": "3"})
    response = conn.getresponse()
    first = response.read1(65536)
    first_at = time.monotonic() - start
    rest = response.read()
    total = time.monotonic() - start
    conn.close()
    assert first.startswith(b"event: message_start")
    assert b"event: message_stop" in rest
    # seven events 400 ms apart: the first must not wait for the others
    assert total > 2.0 and first_at < 0.5, (first_at, total)


@pytest.mark.parametrize("body, message", [
    (b'{"model": "x", "messages": [', "not valid JSON"),
    (b'[{"model": "x"}]', "must be a JSON object"),
    (b'{"text": "\xff\xfe"}', "not valid JSON"),
    (b"", "not valid JSON")])
def test_bad_json_gets_400_without_an_upstream_call(proxy, upstream, body, message):
    upstream.clear()
    status, headers, answer = raw_request(proxy.port, "POST", "/v1/messages", body,
                                          [("Content-Type", "application/json")])
    assert status == 400
    error = json.loads(answer)
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]
    assert upstream.requests() == []
    row = row_for(proxy.db_url, headers["x-nexus-request-id"])
    assert row["response_status"] == 400 and row["error"]


def test_file_uploads_pass_untouched(proxy, upstream):
    upstream.clear()
    payload = bytes(range(256)) * 40
    boundary = "nexusboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + \
        f"\r\n--{boundary}--\r\n".encode()
    status, _, answer = raw_request(proxy.port, "POST", "/v1/files", body, [
        ("Content-Type", f"multipart/form-data; boundary={boundary}"),
        ("anthropic-beta", "files-api-2025-04-14")])
    assert status == 200 and json.loads(answer)["size_bytes"] == len(payload)
    assert upstream.requests()[0]["body"] == body


@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_the_limit_gets_413_that_the_client_sees(proxy, upstream, chunked):
    upstream.clear()
    limit = 200000
    body = b'{"x": "' + b"a" * (limit - 8) + b'"}'  # one byte over
    assert len(body) == limit + 1
    headers = [("Content-Type", "application/json")]
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        body_sent = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                             for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
    else:
        body_sent = body
    status, answer_headers, answer = raw_request(proxy.port, "POST", "/v1/messages",
                                                 body_sent, headers)
    assert status == 413
    assert json.loads(answer)["error"]["type"] == "request_too_large"
    assert upstream.requests() == []
    assert row_for(proxy.db_url, answer_headers["x-nexus-request-id"])["response_status"] == 413


def test_a_huge_declared_body_is_refused_before_it_is_read(proxy):
    # 1 GB announced, 64 KB sent: the 413 comes back without waiting for the rest.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000\r\n\r\n" + b"{" * 65536)
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")


def test_upstream_429_and_529_keep_their_retry_after(proxy):
    for scenario in ("rate-limit-429", "overloaded-529"):
        status, headers, body = raw_request(
            proxy.port, "POST", "/v1/messages",
            json.dumps({"model": MODEL, "max_tokens": 5, "messages": PROMPT}).encode(),
            [("Content-Type", "application/json"), ("x-fake-scenario", scenario),
             ("x-fake-retry-after", "13")])
        assert status == int(scenario[-3:])
        assert headers["retry-after"] == "13"
        assert json.loads(body)["type"] == "error"


def test_upstream_timeout_before_headers_is_504(proxy):
    started = time.monotonic()
    status, headers, body = raw_request(
        proxy.port, "POST", "/v1/messages",
        json.dumps({"model": MODEL, "max_tokens": 5, "messages": PROMPT}).encode(),
        [("Content-Type", "application/json"), ("x-fake-scenario", "hang-before-headers"),
         ("x-fake-delay-ms", "8000")])
    assert status == 504 and 2.4 < time.monotonic() - started < 6
    assert json.loads(body)["error"]["type"] == "timeout_error"
    row = row_for(proxy.db_url, headers["x-nexus-request-id"])
    assert row["response_status"] == 504 and row["error"]


def test_a_reset_after_the_headers_before_any_body_byte_is_a_502_the_client_reads(proxy):
    # The upstream sends its 200 headers, waits, then resets before any body byte:
    # nothing has reached the client, so it gets Anthropic's 502 rather than a cut.
    status, headers, body = raw_request(
        proxy.port, "POST", "/v1/messages",
        json.dumps({"model": MODEL, "max_tokens": 5, "stream": True,
                    "messages": PROMPT}).encode(),
        [("Content-Type", "application/json"), ("x-fake-scenario", "midstream-reset"),
         ("x-fake-fail-after", "0"), ("x-fake-reset-delay-ms", "100")])
    assert status == 502
    assert json.loads(body)["error"]["type"] == "api_error"
    row = row_for(proxy.db_url, headers["x-nexus-request-id"])
    assert row["response_status"] == 502
    assert row["error"].startswith("upstream connection lost before the first byte")
    assert proxy.get("/health")[0] == 200


def test_unreachable_upstream_is_502_and_recorded(tmp_path):
    env = {"CLAUDE_API_BASE_URL": f"http://127.0.0.1:{free_port()}",
           "DATABASE_URL": f"sqlite:///{tmp_path}/nexus.db"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        with sdk(proxy.url) as client, pytest.raises(anthropic.InternalServerError) as caught:
            client.messages.create(model=MODEL, max_tokens=5, messages=PROMPT)
        assert caught.value.status_code == 502
        assert caught.value.body["error"]["type"] == "api_error"
        request_id = caught.value.response.headers["x-nexus-request-id"]
        row = row_for(env["DATABASE_URL"], request_id)
        assert row["response_status"] == 502 and "unreachable" in row["error"]


def test_client_disconnect_closes_the_upstream_stream_and_records_a_cancelled_row(tmp_path, upstream):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/nexus.db"}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        body = json.dumps({"model": MODEL, "max_tokens": 50, "stream": True,
                           "messages": PROMPT}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("POST", "/v1/messages", body, {
            "content-type": "application/json", "x-fake-scenario": "slow-stream",
            "x-fake-delay-ms": "300", "x-fake-events": "40"})
        response = conn.getresponse()
        request_id = response.getheader("x-nexus-request-id")
        assert response.read1(65536).startswith(b"event: message_start")
        assert established_to(upstream.port) >= 1
        conn.sock.shutdown(socket.SHUT_RDWR)
        response.close()
        conn.close()
        closed_at = time.monotonic()
        while established_to(upstream.port) and time.monotonic() - closed_at < 3:
            time.sleep(0.02)
        assert established_to(upstream.port) == 0
        assert time.monotonic() - closed_at < 1.0
        row = row_for(env["DATABASE_URL"], request_id)
        assert row["error"] == "client disconnected"
        assert row["stream"] and row["response_status"] == 200
        assert row["input_tokens"] > 0  # the usage seen before the disconnect


def test_a_bug_in_the_proxy_is_a_500_in_anthropics_shape_and_is_recorded(tmp_path):
    import io

    from common import config as nexus_config
    from proxy.auth import Authenticator
    from proxy.recorder import RecordQueue

    class BrokenUpstream:
        def send(self, method, path, body, headers):
            raise RuntimeError("a bug")

    config = nexus_config.load({"NEXUS_SPOOL_DIR": str(tmp_path),
                                "CREDENTIALS_DIR": str(tmp_path)})
    recorder = RecordQueue(config, channel=None)  # not started: records stay queued
    proxy = app.Proxy(config, BrokenUpstream(), Authenticator(config), recorder)
    body = b'{"model": "m", "messages": []}'
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/messages", "QUERY_STRING": "",
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
               "HTTP_HOST": "team.example", "wsgi.input": io.BytesIO(body)}
    started = []
    answer = proxy(environ, lambda status, headers: started.append((status, dict(headers))))
    chunks = list(answer)
    answer.close()
    assert started[0][0].startswith("500")
    assert json.loads(b"".join(chunks))["error"]["type"] == "api_error"
    [(record, _)] = recorder.queue
    assert record["response_status"] == 500 and record["request_body"] == body
    assert record["request_id"] == started[0][1]["x-nexus-request-id"]
