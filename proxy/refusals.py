"""The proxy's one error type, `Refusal`, and every refusal it makes, built here.

A Refusal is a request the proxy answers itself, in Anthropic's error shape
(`{"type":"error","error":{"type":…,"message":…}}`) with its status: auth,
client-key limits, bad or oversized bodies, an upstream that cannot be reached.
Modules raise one of the builders below; `proxy.app.Proxy.refuse` is the one
place a Refusal becomes a response (and a record).
"""
import json


class Refusal(Exception):
    """A request the proxy answers itself, in Anthropic's error shape."""

    def __init__(self, status, error_type, message, headers=(), error=None, close_after=False):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message
        self.headers = tuple(headers)
        self.error = error  # what the record's error says, when not the client's message
        self.close_after = close_after  # end the connection after the answer


def invalid(message):
    """400: the request cannot be used as sent."""
    return Refusal(400, "invalid_request_error", message)


def unauthorized(message):
    """401, with the challenge a client expects."""
    return Refusal(401, "authentication_error", message,
                   (("www-authenticate", 'Bearer realm="claude-nexus"'),))


def forbidden(message):
    """403: a valid client key used where it is not allowed."""
    return Refusal(403, "permission_error", message)


def rate_limited(message, retry_after):
    """429 with `retry-after` in whole seconds (at least 1)."""
    return Refusal(429, "rate_limit_error", message,
                   (("retry-after", str(max(1, int(retry_after)))),))


def too_large(limit, close_after):
    """413: the body is past NEXUS_MAX_BODY_BYTES."""
    return Refusal(413, "request_too_large",
                   f"Request body exceeds NEXUS_MAX_BODY_BYTES ({limit} bytes).",
                   close_after=close_after)


def body_timeout(seconds):
    """408: the client stopped sending its body; the connection is closed after the answer."""
    return Refusal(408, "timeout_error",
                   f"The request body did not arrive within NEXUS_BODY_TIMEOUT ({seconds:g} s).",
                   close_after=True)


def bad_framing(reason):
    """400: a body whose chunked framing is broken; nothing more can be read on the connection."""
    return Refusal(400, "invalid_request_error", f"The request body is malformed ({reason}).",
                   close_after=True)


def unavailable(message):
    """503: something the proxy needs to decide (the client-key store) is not answering."""
    return Refusal(503, "api_error", message)


def misconfigured(message):
    """500: the proxy's own configuration (a credential file) is unusable."""
    return Refusal(500, "api_error", message)


def upstream_unreachable(reason):
    """502: no connection to the upstream."""
    return Refusal(502, "api_error", f"The upstream API is unreachable ({reason}).")


def upstream_closed(error):
    """502: the upstream closed the connection before any body byte."""
    return Refusal(502, "api_error", "The upstream API closed the connection before sending a body.",
                   error=error)


def upstream_timeout(error=None):
    """504: the upstream did not answer within CLAUDE_API_TIMEOUT."""
    return Refusal(504, "timeout_error", "The upstream API did not answer in time.", error=error)


GUNICORN_ERROR_TYPES = {403: "permission_error", 413: "request_too_large", 500: "api_error"}


def gunicorn_error(status, reason, message):
    """The whole HTTP answer (bytes) for an error gunicorn makes itself, before the app
    sees the request (a bad request line, 414, 431, Content-Length with chunked): the
    same shape as ours; the connection is closed after it, as gunicorn does."""
    body = json.dumps({"type": "error", "error": {
        "type": GUNICORN_ERROR_TYPES.get(status, "invalid_request_error"),
        "message": f"{reason}: {message}" if message else reason}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def internal():
    """500: a bug of ours, still in Anthropic's shape."""
    return Refusal(500, "api_error", "The proxy failed to handle this request.")
