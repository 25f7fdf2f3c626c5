"""Redaction: secrets never leave in headers; hashes compare without revealing."""
from common.redact import REDACTED, hash_secret, redact_headers


def test_every_auth_header_is_redacted_whatever_its_case():
    headers = {"Authorization": "Bearer sk-ant-oat-1", "X-Api-Key": "sk-ant-api-2",
               "cookie": "session=3", "x-dashboard-key": "k", "anthropic-beta": "a,b",
               "user-agent": "claude-cli"}
    out = redact_headers(headers)
    assert out["Authorization"] == out["X-Api-Key"] == out["cookie"] == out["x-dashboard-key"] == REDACTED
    assert out["anthropic-beta"] == "a,b" and out["user-agent"] == "claude-cli"
    assert "sk-ant" not in repr(out)
    assert headers["Authorization"] == "Bearer sk-ant-oat-1", "the input is left alone"


def test_hash_is_stable_and_does_not_contain_the_secret():
    digest = hash_secret("sk-ant-api03-secret")
    assert digest == hash_secret(b"sk-ant-api03-secret")
    assert len(digest) == 64 and "secret" not in digest
    assert digest != hash_secret("sk-ant-api03-secreT")


def test_credential_looking_headers_are_redacted_by_name_and_by_value():
    headers = {"api-key": "k1", "x-auth-token": "k2", "anthropic-oauth-token": "k3",
               "x-goog-api-key": "k4", "client_secret": "k5", "x-forwarded-note": "sk-ant-api03-k6",
               "x-carrier": "Bearer k7", "x-client-key": "cnp_live_k8",
               "anthropic-ratelimit-tokens-remaining": "1000", "x-claude-code-session-id": "s-1",
               "anthropic-version": "2023-06-01", "content-type": "application/json"}
    out = redact_headers(headers)
    assert [n for n, v in out.items() if v == REDACTED] == list(headers)[:8]
    assert out["anthropic-ratelimit-tokens-remaining"] == "1000"
    assert out["x-claude-code-session-id"] == "s-1"
