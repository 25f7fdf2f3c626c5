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
