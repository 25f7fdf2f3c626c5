"""Pure functions over one exchange's bytes and headers: no sockets, no state.

What goes upstream (`upstream_headers`, `raw_target`), which domain a Host names,
whether a JSON endpoint's body is acceptable (`check_json`), the proxy's own error
body, and the record handed to the recorder (`make_record`, docs/architecture.md).
"""
import json
from http import HTTPStatus

from common.redact import redact_headers

from .refusals import Refusal, invalid  # noqa: F401  (Refusal: its old home, still importable)

FULL_JSON_CHECK_BYTES = 16 * 1024  # bigger bodies get a structural check (docs/adr/0032)
JSON_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens",
                        "/v1/messages/batches", "/v1/complete"})
REQUEST_HOP = frozenset({"connection", "keep-alive", "te", "trailer", "trailers",
                         "transfer-encoding", "upgrade", "host", "content-length"})
RESPONSE_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                          "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
REASONS = {s.value: s.phrase for s in HTTPStatus} | {529: "Overloaded"}
_WS = b" \t\r\n"


def error_body(error_type, message):
    """Anthropic's error shape as bytes."""
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()


_HEADER_NAMES = {}


def client_headers(environ):
    """The client's headers as {lower-case name: value}, from a WSGI environ."""
    headers = {}
    names = _HEADER_NAMES
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = names.get(key)
            if name is None:
                name = key[5:].replace("_", "-").lower()
                if len(names) < 1024:  # names are client-chosen: bound the cache
                    names[key] = name
            headers[name] = value
    if "CONTENT_TYPE" in environ and environ["CONTENT_TYPE"]:
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def upstream_headers(headers, grant):
    """The client's headers minus hop-by-hop and what the grant drops, plus what it sets."""
    skip = REQUEST_HOP | grant.drop_headers
    if "connection" in headers:  # Connection may name more hop-by-hop headers
        skip = skip | {t.strip().lower() for t in headers["connection"].split(",")}
    out = {k: v for k, v in headers.items() if k not in skip and not k.startswith("proxy-")}
    for name, value in grant.set_headers:
        out[name.lower()] = value
    return out


def raw_target(environ):
    """Path and query exactly as the client sent them (not percent-decoded)."""
    raw = environ.get("RAW_URI")
    if raw and raw.startswith("/"):
        return raw
    query = environ.get("QUERY_STRING")
    return environ["PATH_INFO"] + ("?" + query if query else "")


METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def method_label(method):
    """The method as a metrics label: the client picks it, so unknown ones are "other"."""
    return method if method in METHODS else "other"


def check_target(path):
    """Refuse (400) a raw /v1 path that could leave /v1 once the upstream decodes it:
    dot segments (also percent-encoded), encoded slashes and backslashes."""
    if not path.startswith("/v1/"):
        raise invalid("The request path must start with /v1/ as sent (not percent-encoded).")
    lower = path.lower()
    if "%2f" in lower or "%5c" in lower or "\\" in path:
        raise invalid("The request path may not contain encoded slashes or backslashes.")
    for segment in lower.split("/"):
        if segment.replace("%2e", ".") in (".", ".."):
            raise invalid("The request path may not contain . or .. segments.")


def host_domain(host):
    """The Host header without its port, lower-cased (host names are case-insensitive)."""
    host = host.lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_json(body):
    """Refuse (400) a JSON endpoint's body that is not a JSON object."""
    if len(body) <= FULL_JSON_CHECK_BYTES:
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise invalid("The request body is not valid JSON.") from None
        except RecursionError:
            raise invalid("The request body is nested too deeply.") from None
        if not isinstance(value, dict):
            raise invalid("The request body must be a JSON object.")
        return
    # Large bodies: the cheap checks (valid UTF-8, braces at both ends); the upstream
    # still validates the rest and answers 400 in the same shape.
    start, end = 0, len(body) - 1
    while start < end and body[start] in _WS:
        start += 1
    while end > start and body[end] in _WS:
        end -= 1
    if body[start] != 0x7B or body[end] != 0x7D:  # { ... }
        raise invalid("The request body must be a JSON object.")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("The request body is not valid UTF-8.") from None


def make_record(x, now):
    """The record (docs/architecture.md) of a finished exchange.

    Headers are redacted here, once: the record may wait in the spool on disk, and the
    writer stores its headers as they are.
    """
    grant = x.grant
    return {
        "request_id": x.request_id, "timestamp": x.timestamp, "domain": x.domain,
        "method": x.method, "path": x.path, "query": x.query,
        "request_headers": redact_headers(x.headers), "request_body": x.body,
        "response_status": x.status, "response_headers": redact_headers(x.response_headers),
        "response_body": b"".join(x.chunks) if x.chunks else None, "stream": x.stream,
        "duration_ms": round((now - x.start) * 1000, 3),
        "first_token_ms": round((x.first_byte - x.start) * 1000, 3) if x.first_byte else None,
        "error": x.error, "upstream_request_id": x.response_headers.get("request-id"),
        "auth_hash": grant.auth_hash if grant else None,
        "client_key_id": grant.client_key_id if grant else None,
        "account_id": grant.account_id if grant else None,
        "session_header": x.headers.get("x-claude-code-session-id"),
    }
