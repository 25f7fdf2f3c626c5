"""Refusals: one type, each built with the status and error type a client expects."""
import json

import pytest

from proxy import refusals
from proxy.wire import error_body


@pytest.mark.parametrize("refusal, status, error_type", [
    (refusals.invalid("x"), 400, "invalid_request_error"),
    (refusals.unauthorized("x"), 401, "authentication_error"),
    (refusals.forbidden("x"), 403, "permission_error"),
    (refusals.body_timeout(60), 408, "timeout_error"),
    (refusals.too_large(10, close_after=False), 413, "request_too_large"),
    (refusals.rate_limited("x", 0.2), 429, "rate_limit_error"),
    (refusals.internal(), 500, "api_error"),
    (refusals.upstream_unreachable("ConnectionRefusedError"), 502, "api_error"),
    (refusals.unavailable("x"), 503, "api_error"),
    (refusals.upstream_timeout(), 504, "timeout_error"),
])
def test_each_refusal_has_its_status_and_type(refusal, status, error_type):
    assert (refusal.status, refusal.error_type) == (status, error_type)
    assert json.loads(error_body(refusal.error_type, refusal.message))["error"]["type"] == error_type


def test_retry_after_is_whole_seconds_and_never_zero():
    assert dict(refusals.rate_limited("x", 0.2).headers) == {"retry-after": "1"}


def test_a_stalled_body_closes_the_connection():
    assert refusals.body_timeout(1).close_after and refusals.bad_framing("x").close_after


def test_gunicorn_errors_are_whole_answers_in_anthropics_shape():
    answer = refusals.gunicorn_error(431, "Request Header Fields Too Large", "too many headers")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ") and b"Connection: close" in head
    assert int(head.split(b"Content-Length: ")[1]) == len(body)
    assert json.loads(body)["error"] == {"type": "invalid_request_error",
                                         "message": "Request Header Fields Too Large: too many headers"}
