"""Keep secrets out of rows, logs and pages: redact headers, hash credentials.

A header is redacted when its name is a known secret header, when one of the words
of its name says it carries a credential (`x-auth-token`, `api-key`,
`anthropic-oauth-token`, `x-goog-api-key`), or when its value looks like one
(an Anthropic key or token, a client key, an HTTP `Bearer`/`Basic` credential).
"""
import hashlib
import re

SECRET_HEADERS = frozenset({
    "authorization", "x-api-key", "proxy-authorization", "cookie", "set-cookie",
    "x-dashboard-key", "anthropic-admin-key",
})
# Words of a header name (split at - and _) that mark a credential. Plural "tokens"
# is not one: anthropic-ratelimit-tokens-* are counts.
SECRET_WORDS = frozenset({"auth", "authorization", "token", "secret", "password", "passwd",
                          "credential", "credentials", "cookie", "apikey", "key", "jwt",
                          "signature", "oauth"})
SECRET_VALUE = re.compile(r"^\s*(?:sk-ant-|cnp_live_|cnp_test_|bearer\s|basic\s)", re.IGNORECASE)

REDACTED = "[redacted]"

_verdicts = {}  # header name -> secret?; names are client-chosen, so the cache is bounded


def hash_secret(value):
    """A stable sha256 hex digest of a secret: comparable, not reversible."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return hashlib.sha256(value).hexdigest()


def is_secret_name(name):
    """True for a header name that is, or says it holds, a credential."""
    verdict = _verdicts.get(name)
    if verdict is None:
        lower = name.lower()
        verdict = lower in SECRET_HEADERS or not SECRET_WORDS.isdisjoint(re.split(r"[-_]", lower))
        if len(_verdicts) < 4096:
            _verdicts[name] = verdict
    return verdict


def redact_headers(headers):
    """A copy of `headers` (name → value) with every secret value replaced."""
    return {name: (REDACTED if is_secret_name(name)
                   or (isinstance(value, str) and SECRET_VALUE.match(value)) else value)
            for name, value in headers.items()}
