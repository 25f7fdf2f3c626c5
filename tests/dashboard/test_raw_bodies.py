"""`/api/requests/<id>/raw/request` and `/raw/response`: the bytes as they crossed the proxy."""
import hashlib
import http.client
import json

import pytest

from tests.dashboard.conftest import KEY, make_app
from tests.dashboard.factories import make_legacy_bodies, make_request
from tests.dashboard.server import running_dashboard
from tests.proxy.conftest import MODEL, sdk
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy

HEADERS = {"X-Dashboard-Key": KEY}


@pytest.fixture
def client(db_url, database):
    return make_app(db_url, DASHBOARD_API_KEY=KEY).test_client()


def test_a_stored_body_comes_back_with_its_content_type(client):
    body = {"model": "m", "messages": [{"role": "user", "content": "caf\u00e9"}]}
    rid = make_request(body=body, response={"type": "message", "content": []},
                       headers={"content-type": "application/json"})
    answer = client.get(f"/api/requests/{rid}/raw/request", headers=HEADERS)
    assert answer.status_code == 200
    assert answer.data == json.dumps(body).encode()
    assert answer.headers["content-type"] == "application/json"
    # The client chose these bytes and their type: the dashboard never runs them.
    assert "sandbox" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "x-nexus-exact" not in answer.headers


def test_raw_bodies_need_the_dashboard_key(client):
    rid = make_request(body={"model": "m", "messages": []})
    assert client.get(f"/api/requests/{rid}/raw/request").status_code == 401


def test_a_body_that_was_not_kept_is_a_404(client):
    rid = make_request()
    for which in ("request", "response"):
        answer = client.get(f"/api/requests/{rid}/raw/{which}", headers=HEADERS)
        assert answer.status_code == 404
        assert "not kept" in answer.get_json()["error"]["message"]
    assert client.get("/api/requests/nope/raw/request", headers=HEADERS).status_code == 404
    assert client.get(f"/api/requests/{rid}/raw/other", headers=HEADERS).status_code == 404


def test_rows_from_before_pieces_are_served_and_marked_inexact(client):
    rid = make_request()
    make_legacy_bodies(rid, '{"messages": []}', '{"type": "message"}')
    answer = client.get(f"/api/requests/{rid}/raw/request", headers=HEADERS)
    assert answer.data == b'{"messages": []}'
    assert answer.headers["x-nexus-exact"] == "false"
    streamed = make_request(stream=True)
    make_legacy_bodies(streamed, '{"messages": []}', '{"type": "message", "content": []}')
    # A stream stored before raw capture kept its rebuilt message, not the events it sent.
    assert client.get(f"/api/requests/{streamed}/raw/response", headers=HEADERS).status_code == 404
    detail = client.get(f"/api/requests/{streamed}", headers=HEADERS).get_json()
    assert detail["response_body"] == {"type": "message", "content": []}


ODD_BODIES = [
    # unicode escapes, an emoji in both spellings, key order, whitespace
    b'{"max_tokens":5,"model":"%s","messages":[{"role":"user","content":"caf\\u00e9 \xf0\x9f\x98\x80 '
    b'\\ud83d\\ude00"}]}',
    b'  {\n  "messages" : [ { "content" : "a\\"b\\\\c", "role" : "user" } ],\n'
    b'  "model" : "%s",   "max_tokens" : 5 }\n\n',
    b'{"model":"%s","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"x",'
    b'"cache_control":{"type":"ephemeral"}}]}],"system":[{"type":"text","text":"s"}]}',
]


def _post(port, path, body, content_type="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, {"content-type": content_type,
                                          "x-api-key": "sk-ant-test-key",
                                          "anthropic-version": "2023-06-01"})
        response = conn.getresponse()
        return response.status, response.getheader("x-nexus-request-id"), response.read()
    finally:
        conn.close()


def _raw(dashboard, request_id, which):
    conn = http.client.HTTPConnection("127.0.0.1", dashboard.port, timeout=30)
    try:
        conn.request("GET", f"/api/requests/{request_id}/raw/{which}", headers=HEADERS)
        response = conn.getresponse()
        return response.status, response.getheader("content-type"), response.read()
    finally:
        conn.close()


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def test_bodies_round_trip_byte_for_byte_through_the_real_proxy(tmp_path, fake_upstream, db_url):
    env = {"CLAUDE_API_BASE_URL": fake_upstream.url, "DATABASE_URL": db_url,
           "NEXUS_SPOOL_DIR": str(tmp_path / "spool")}
    sent = {}  # request id -> (request bytes, response bytes as received, content type)
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        for template in ODD_BODIES:
            body = template.replace(b"%s", MODEL.encode())
            status, rid, answer = _post(proxy.port, "/v1/messages", body)
            assert status == 200
            sent[rid] = (body, answer, "application/json")
        upload = b"\x00\xff binary \r\n" * 50
        status, rid, answer = _post(proxy.port, "/v1/files", upload, "application/octet-stream")
        sent[rid] = (upload, answer, "application/octet-stream")
        with sdk(proxy.url) as client:
            with client.messages.with_streaming_response.create(
                    model=MODEL, max_tokens=50, stream=True,
                    messages=[{"role": "user", "content": "stream please"}]) as streamed:
                events = streamed.read()
                rid = streamed.headers["x-nexus-request-id"]
                body = streamed.http_request.content
        sent[rid] = (body, events, "application/json")
        wait_for_rows(db_url, len(sent))
    dashboard_env = {"DATABASE_URL": db_url, "DASHBOARD_API_KEY": KEY}
    with running_dashboard(dashboard_env, str(tmp_path)) as dashboard:
        for rid, (request_bytes, response_bytes, content_type) in sent.items():
            status, kind, data = _raw(dashboard, rid, "request")
            assert status == 200 and kind == content_type
            assert _sha(data) == _sha(request_bytes)
            status, _, data = _raw(dashboard, rid, "response")
            assert status == 200
            assert _sha(data) == _sha(response_bytes)
        # the stream came back as the events the client read
        assert data.startswith(b"event: message_start")
