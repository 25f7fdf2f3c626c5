"""The pure helpers of the hot path: headers, targets, JSON checks."""
import pytest

from proxy import wire
from proxy.auth import Grant
from proxy.refusals import Refusal
from proxy.wire import check_target, method_label


def test_upstream_headers_drop_hop_by_hop_and_apply_the_grant():
    grant = Grant(set_headers=(("X-Api-Key", "sk-upstream"),), drop_headers=frozenset({"authorization"}))
    out = wire.upstream_headers({"x-api-key": "client", "authorization": "Bearer c",
                                "connection": "close, x-private", "x-private": "1",
                                "keep-alive": "5", "host": "a", "content-length": "3",
                                "proxy-connection": "x", "anthropic-beta": "b1"}, grant)
    assert out == {"x-api-key": "sk-upstream", "anthropic-beta": "b1"}


def test_host_domain_strips_the_port():
    assert wire.host_domain("team.example:3000") == "team.example"
    assert wire.host_domain("team.example") == "team.example"
    assert wire.host_domain("[::1]:3000") == "[::1]"
    assert wire.host_domain("Team.EXAMPLE:3000") == "team.example"


def test_large_bodies_get_the_structural_json_check():
    big = b'{"a": "' + b"x" * wire.FULL_JSON_CHECK_BYTES + b'"}\n'
    wire.check_json(big)
    for bad in (b"[" + big + b"]", big[:-3], b'{"a": "\xff' + big[7:]):
        with pytest.raises(wire.Refusal) as caught:
            wire.check_json(bad)
        assert caught.value.status == 400


def test_the_target_is_the_path_and_query_as_sent():
    assert wire.raw_target({"RAW_URI": "/v1/files/a%2Fb?beta=true", "PATH_INFO": "/v1/files/a/b",
                            "QUERY_STRING": "beta=true"}) == "/v1/files/a%2Fb?beta=true"
    assert wire.raw_target({"PATH_INFO": "/v1/models", "QUERY_STRING": "limit=2"}) == \
        "/v1/models?limit=2"


def test_client_headers_are_lower_cased_with_dashes():
    headers = wire.client_headers({"HTTP_X_API_KEY": "k", "HTTP_ANTHROPIC_BETA": "b",
                                   "CONTENT_TYPE": "application/json", "PATH_INFO": "/"})
    assert headers == {"x-api-key": "k", "anthropic-beta": "b", "content-type": "application/json"}


def test_the_record_carries_no_secret_header():
    import types
    x = types.SimpleNamespace(
        request_id="r", timestamp=None, domain="d", method="POST", path="/v1/messages", query="",
        headers={"x-api-key": "sk-ant-api03-secret", "authorization": "Bearer sk-ant-oat01-secret",
                 "anthropic-version": "2023-06-01"},
        body=b"{}", status=200, response_headers={"set-cookie": "session=secret", "request-id": "q"},
        chunks=[b"{}"], stream=False, start=0.0, first_byte=None, error=None, grant=None)
    record = wire.make_record(x, 1.0)
    assert "secret" not in repr(record)
    assert record["request_headers"]["anthropic-version"] == "2023-06-01"
    assert record["response_headers"] == {"set-cookie": "[redacted]", "request-id": "q"}


@pytest.mark.parametrize("path", ["/v1/../admin", "/v1/%2e%2e/admin", "/v1/%2E./x", "/v1/./messages",
                                  "/v1/a%2fb", "/v1/a%5Cb", "/v1/a\\b", "/%761/messages", "/v1/messages/.."])
def test_paths_that_could_leave_v1_are_refused(path):
    with pytest.raises(Refusal) as caught:
        check_target(path)
    assert caught.value.status == 400


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/batches/msgbatch_1/results",
                                  "/v1/models/claude-sonnet-4-5", "/v1/a..b", "/v1/.well"])
def test_ordinary_paths_pass(path):
    check_target(path)


def test_unknown_methods_are_one_metrics_label():
    assert [method_label(m) for m in ("POST", "GET", "BREW", "post")] == ["POST", "GET", "other", "other"]
