"""The fake Anthropic API behaves like the real one where the proxy's tests rely on it."""
import http.client
import json
import socket
import time

import anthropic
import pytest

from tests import fake_upstream_data as data
from tests.fake_upstream import start_fake_upstream

MODEL = "claude-sonnet-4-6"
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                             "days": {"type": "integer"}}}}


def _body(**extra):
    body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "héllo"}]}
    body.update(extra)
    return json.dumps(body).encode()


def _post(upstream, path, body, headers=None, connection=None):
    conn = connection or http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json",
                                                       **(headers or {})})
        response = conn.getresponse()
        return response, response.read()
    finally:
        if connection is None:
            conn.close()


@pytest.fixture
def client(fake_upstream):
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=fake_upstream.url, max_retries=0)


def test_first_line_names_the_port_and_it_answers(fake_upstream):
    response, body = _post(fake_upstream, "/v1/messages", _body())
    assert response.status == 200
    assert json.loads(body)["content"][0]["text"] == "Fake answer to: héllo"
    assert response.getheader("request-id").startswith("req_")
    assert int(response.getheader("anthropic-ratelimit-requests-remaining")) < 4000
    assert response.getheader("anthropic-ratelimit-tokens-reset").endswith("Z")


def test_sdk_non_streaming_and_streaming_give_the_same_message(client):
    kwargs = dict(model=MODEL, max_tokens=256, tools=[WEATHER],
                  thinking={"type": "adaptive"},
                  messages=[{"role": "user", "content": "please use tool for Paris"}])
    plain = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        streamed = stream.get_final_message()
    assert [b.type for b in plain.content] == ["thinking", "text", "tool_use"]
    assert plain.content[2].input == {"city": "value of city", "days": 7}
    assert plain.stop_reason == "tool_use"
    assert streamed.model_dump(exclude_none=True) == plain.model_dump(exclude_none=True)


def test_prompt_cache_writes_then_reads_with_ttl_buckets(client):
    system = [{"type": "text", "text": "a long system prompt " * 50,
               "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "context " * 40, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "question"}]}]
    first = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=messages)
    second = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=messages)
    created = first.usage.cache_creation
    assert created.ephemeral_1h_input_tokens > 0 and created.ephemeral_5m_input_tokens > 0
    assert first.usage.cache_creation_input_tokens == (
        created.ephemeral_1h_input_tokens + created.ephemeral_5m_input_tokens)
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens


def test_records_headers_query_and_body_unchanged(fake_upstream):
    body = _body()
    _post(fake_upstream, "/v1/messages?beta=true", body,
          {"anthropic-beta": "oauth-2025-04-20,interleaved-thinking-2025-05-14",
           "X-Custom-Thing": "kept"})
    [received] = fake_upstream.requests()
    assert (received["method"], received["path"], received["query"]) == (
        "POST", "/v1/messages", "beta=true")
    assert received.header("anthropic-beta") == "oauth-2025-04-20,interleaved-thinking-2025-05-14"
    assert received.header("x-custom-thing") == "kept"
    assert received["body"] == body
    fake_upstream.clear()
    assert fake_upstream.requests() == []


def test_keep_alive_serves_many_requests_on_one_connection(fake_upstream):
    conn = http.client.HTTPConnection("127.0.0.1", fake_upstream.port, timeout=10)
    conn.connect()
    local = conn.sock.getsockname()
    for _ in range(3):
        response, _ = _post(fake_upstream, "/v1/messages", _body(stream=True), connection=conn)
        assert response.status == 200
    assert conn.sock.getsockname() == local
    conn.close()


def test_chunked_request_body_is_read(fake_upstream):
    conn = http.client.HTTPConnection("127.0.0.1", fake_upstream.port, timeout=10)
    conn.request("POST", "/v1/messages", body=iter([_body()[:10], _body()[10:]]),
                 headers={"content-type": "application/json"}, encode_chunked=True)
    assert conn.getresponse().status == 200
    assert fake_upstream.requests()[0]["body"] == _body()
    conn.close()


@pytest.mark.parametrize("scenario, status, error_type", [
    ("error-400", 400, "invalid_request_error"),
    ("error-500", 500, "api_error"),
    ("overloaded-529", 529, "overloaded_error"),
    ("rate-limit-429", 429, "rate_limit_error"),
])
def test_error_scenarios_answer_in_anthropic_shape(fake_upstream, scenario, status, error_type):
    response, body = _post(fake_upstream, "/v1/messages", _body(),
                           {"x-fake-scenario": scenario, "x-fake-retry-after": "7"})
    assert response.status == status
    assert json.loads(body)["error"]["type"] == error_type
    if status in (429, 529):
        assert response.getheader("retry-after") == "7"


def test_invalid_json_and_missing_fields_get_400(fake_upstream):
    response, body = _post(fake_upstream, "/v1/messages", b"{nope")
    assert response.status == 400
    response, body = _post(fake_upstream, "/v1/messages", b'{"model": "x"}')
    assert response.status == 400 and "messages" in json.loads(body)["error"]["message"]


def test_unknown_path_is_404_in_error_shape(fake_upstream):
    response, body = _post(fake_upstream, "/v1/nothing-here", b"{}")
    assert response.status == 404
    assert json.loads(body)["error"]["type"] == "not_found_error"


def test_midstream_error_sends_error_event_after_deltas(fake_upstream):
    response, body = _post(fake_upstream, "/v1/messages", _body(stream=True),
                           {"x-fake-scenario": "midstream-error"})
    assert response.status == 200
    assert b"event: content_block_delta" in body
    assert body.endswith(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                         b'"message":"Overloaded"}}\n\n')


def test_midstream_reset_resets_the_connection(fake_upstream):
    conn = http.client.HTTPConnection("127.0.0.1", fake_upstream.port, timeout=10)
    conn.request("POST", "/v1/messages", body=_body(stream=True),
                 headers={"x-fake-scenario": "midstream-reset"})
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(ConnectionResetError):
        response.read()
    conn.close()


def test_slow_stream_and_hang_delay_as_asked(fake_upstream):
    started = time.monotonic()
    _post(fake_upstream, "/v1/messages", _body(stream=True),
          {"x-fake-scenario": "slow-stream", "x-fake-delay-ms": "50"})
    assert time.monotonic() - started >= 0.4  # 8 gaps between 9 events
    sock = socket.create_connection(("127.0.0.1", fake_upstream.port), timeout=0.3)
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                 b"x-fake-scenario: hang-before-headers\r\nx-fake-delay-ms: 1000\r\n\r\n{}")
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.close()


def test_trickle_and_event_count_keep_the_same_message(fake_upstream):
    from common.accumulator import message_from_sse
    request = json.loads(_body())
    _, plain = _post(fake_upstream, "/v1/messages", _body(), {"x-fake-events": "40"})
    _, streamed = _post(fake_upstream, "/v1/messages", _body(stream=True),
                        {"x-fake-scenario": "trickle", "x-fake-events": "40",
                         "x-fake-delay-ms": "0"})
    assert streamed.count(b"event: content_block_delta") == 40
    assert message_from_sse(streamed).message == json.loads(plain)
    assert json.loads(plain) == data.build_message(request, min_text=40)


def test_full_delta_usage_repeats_every_count(fake_upstream):
    _, streamed = _post(fake_upstream, "/v1/messages", _body(stream=True),
                        {"x-fake-delta-usage": "full"})
    delta = [line for line in streamed.split(b"\n") if b'"message_delta"' in line][0]
    assert b'"input_tokens"' in delta and b'"output_tokens"' in delta


def test_server_default_scenario_applies_without_header():
    with start_fake_upstream(scenario="overloaded-529") as upstream:
        response, _ = _post(upstream, "/v1/messages", _body())
        assert response.status == 529


def test_records_a_client_that_hangs_up_mid_stream(fake_upstream):
    sock = socket.create_connection(("127.0.0.1", fake_upstream.port), timeout=5)
    body = _body(stream=True)
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                 b"x-fake-scenario: slow-stream\r\nx-fake-delay-ms: 100\r\n\r\n%s"
                 % (len(body), body))
    assert sock.recv(100).startswith(b"HTTP/1.1 200")
    sock.close()
    deadline = time.monotonic() + 5
    while fake_upstream.requests()[0]["outcome"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    [record] = fake_upstream.requests()
    assert record["outcome"] == "client disconnected"
    assert record["finished_at"] - record["received_at"] < 1.5


def test_outcomes_of_whole_and_faulty_exchanges(fake_upstream):
    _post(fake_upstream, "/v1/messages", _body(stream=True))
    _post(fake_upstream, "/v1/messages", _body())
    _post(fake_upstream, "/v1/messages", _body(stream=True), {"x-fake-scenario": "midstream-error"})
    assert [r["outcome"] for r in fake_upstream.requests()] == [
        "complete", "answered", "error event"]


def test_record_keeps_only_the_latest_requests():
    with start_fake_upstream(args=["--max-records", "2"]) as upstream:
        for path in ("/v1/a", "/v1/b", "/v1/c"):
            _post(upstream, path, b"{}")
        assert [r["path"] for r in upstream.requests()] == ["/v1/b", "/v1/c"]


def test_unified_headers_for_oauth_requests(fake_upstream):
    response, _ = _post(fake_upstream, "/v1/messages", _body(),
                        {"authorization": "Bearer sk-ant-oat01-x", "x-fake-unified": "0.93"})
    assert response.getheader("anthropic-ratelimit-unified-5h-utilization") == "0.93"
    assert response.getheader("anthropic-ratelimit-unified-status") == "allowed_warning"


def test_models_count_tokens_batches_and_files(client):
    assert client.models.retrieve("claude-sonnet-4-6").display_name == "Claude Sonnet 4.6"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nonexistent")
    assert len(client.models.list().data) == len(data.MODELS)
    counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens > 0
    batch = client.messages.batches.create(requests=[{"custom_id": "one", "params": {
        "model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}}])
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    [result] = list(client.messages.batches.results(batch.id))
    assert result.custom_id == "one" and result.result.type == "succeeded"
    uploaded = client.beta.files.upload(file=("notes.txt", b"0123456789" * 100, "text/plain"))
    assert (uploaded.filename, uploaded.size_bytes) == ("notes.txt", 1000)
