"""Keep secrets out of rows, logs and pages: redact headers, hash credentials."""
import hashlib

SECRET_HEADERS = frozenset({
    "authorization", "x-api-key", "proxy-authorization", "cookie", "set-cookie",
    "x-dashboard-key", "anthropic-admin-key",
})

REDACTED = "[redacted]"


def hash_secret(value):
    """A stable sha256 hex digest of a secret: comparable, not reversible."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return hashlib.sha256(value).hexdigest()


def redact_headers(headers):
    """A copy of `headers` (name → value) with every secret value replaced."""
    return {name: (REDACTED if name.lower() in SECRET_HEADERS else value)
            for name, value in headers.items()}
