"""Who may call upstream, and with which credential: the proxy's three auth modes.

- passthrough: no credential file for the Host and ENABLE_CLIENT_AUTH off. The
  client's own `x-api-key` or `Authorization: Bearer` goes upstream untouched
  (Claude Code subscribers use the proxy this way).
- credential mode: `<Host>.credentials.json` exists. The client's auth headers
  are replaced by the file's API key or OAuth token (refreshed before expiry).
- client keys: ENABLE_CLIENT_AUTH on. Every call needs a client key (the file's
  `client_api_key` or one made by `nexus keys create`), and the Host must have a
  credential file, since the client's header is spent on the client key.

`authorize` is on the hot path: a dict lookup and, at most once a second per
Host, one stat(); client keys are cached for a few seconds.
"""
import errno
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass

from common import credentials, keys
from common.models import ClientKey
from common.redact import hash_secret

from . import refusals
from .limits import DATABASE_ERRORS, Limiter, connected
from .oauth import OAUTH_BETA, Refresher, is_expired
from .refusals import Refusal

log = logging.getLogger("nexus.proxy.auth")

STAT_TTL_S = 1.0       # a new, changed or deleted credential file is seen within this
KEY_TTL_S = 5.0        # a revoked client key is refused within this
KEY_STALE_S = 300.0    # a known key keeps working this long while the database is down
MAX_CACHED = 4096      # Host values and presented keys are client-chosen: bound the caches


@dataclass(frozen=True)
class Grant:
    """What to change on the upstream request, and what to record about the caller."""

    set_headers: tuple = ()          # ((name, value), ...) replacing same-named client headers
    drop_headers: frozenset = frozenset()  # lower-case client header names not to forward
    auth_hash: str | None = None
    client_key_id: str | None = None
    account_id: str | None = None
    slack_webhook: str | None = None
    slack_options: tuple = ()        # ((name, value), ...): channel, username, icon_emoji

    def __repr__(self):
        # set_headers carries the upstream secret
        return (f"Grant(client_key_id={self.client_key_id!r}, account_id={self.account_id!r}, "
                f"headers={[n for n, _ in self.set_headers]})")


@dataclass(frozen=True)
class _KeyInfo:
    key_id: str
    domain: str | None
    revoked: bool
    requests_per_minute: int | None
    daily_budget_usd: float | None


def presented_secret(headers):
    """The credential the client sent: `x-api-key`, else an `Authorization: Bearer` token."""
    value = headers.get("x-api-key")
    if value:
        return value.strip()
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def merge_beta(client_value, flag):
    """The client's comma-separated `anthropic-beta` list plus `flag`, order kept, no duplicates."""
    flags = []
    for item in (client_value or "").split(","):
        item = item.strip()
        if item and item not in flags:
            flags.append(item)
    if flag not in flags:
        flags.append(flag)
    return ",".join(flags)


class Authenticator:
    """Turns (Host, client headers) into a Grant, or raises a Refusal."""

    def __init__(self, config, refresher=None, limiter=None):
        self.client_auth = config.client_auth
        self.base = os.path.realpath(config.credentials_dir)
        self.global_slack = config.slack_webhook_url
        self.refresher = refresher or Refresher(config)
        self.limiter = limiter or Limiter()
        self._files = {}  # domain -> [checked_at, signature, Credential | None, path]
        self._keys = {}   # sha256 of a presented key -> (fetched_at, _KeyInfo | None)
        self._lock = threading.Lock()

    def authorize(self, domain, headers):
        """The Grant for a request to `domain` with `headers` (lower-cased names)."""
        try:
            domain = credentials.check_domain(domain)
        except ValueError as exc:
            raise refusals.invalid(f"invalid Host header: {exc}") from None
        cred, name = self._find(domain, headers.get("host"))
        client_key_id = None
        if self.client_auth:
            if cred is None:
                raise refusals.unauthorized(f"no credentials are configured for {domain}")
            client_key_id = self._check_client_key(domain, headers, cred)
        if cred is None:
            secret = presented_secret(headers)
            return Grant(auth_hash=hash_secret(secret) if secret else None,
                         slack_webhook=self.global_slack)
        return self._credential_grant(name, headers, cred, client_key_id)

    # -- credential files ------------------------------------------------------------

    def _find(self, domain, host):
        """(credential, file name it came from): `localhost:3000` before `localhost`."""
        names = credentials.file_domains(host) if host else [domain]
        if names[-1] != domain:  # a Host that is not the request's domain: trust the domain
            names = [domain]
        for name in names:
            try:
                cred = self.credential(credentials.check_domain(name))
            except ValueError:
                continue  # a port that cannot be part of a file name; the bare name follows
            if cred is not None:
                return cred, name
        return None, domain

    def credential(self, domain):
        """The parsed credential file of a checked `domain`, or None; re-read when it changes."""
        now = time.monotonic()
        entry = self._files.get(domain)
        if entry is not None and now - entry[0] < STAT_TTL_S:
            return entry[2]
        path = self._path(domain)
        try:
            st = os.stat(path)
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        except (FileNotFoundError, NotADirectoryError):
            signature = None
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            signature = None  # a Host this long cannot have a credential file: passthrough
        if entry is not None and signature == entry[1]:
            entry[0] = now
            return entry[2]
        cred = self._read(domain, path, entry) if signature else None
        if len(self._files) >= MAX_CACHED:
            self._files.clear()
        self._files[domain] = [now, signature, cred, path]
        return cred

    def _path(self, domain):
        # `domain` passed check_domain: it cannot leave the directory.
        return os.path.join(self.base, domain + credentials.SUFFIX)

    def _read(self, domain, path, entry):
        try:
            return credentials.load(path)
        except (OSError, ValueError) as exc:
            # Often a half-saved edit: keep serving the last good version if there is one.
            log.error("credential file for %s is unusable (%s); run `nexus credentials check`",
                      domain, exc)
            if entry is not None and entry[2] is not None:
                return entry[2]
            raise refusals.misconfigured(
                f"the proxy's credential file for {domain} is invalid") from None

    def _credential_grant(self, domain, headers, cred, client_key_id):
        if cred.type == "oauth":
            path = self._path(domain)
            fresh = self.refresher.ensure_fresh(domain, path, cred)
            if fresh is not cred:
                self._files[domain] = [time.monotonic(), _signature(path), fresh, path]
                cred = fresh
            if is_expired(cred):
                raise refusals.unauthorized(f"the OAuth token for {domain} has expired and could not be "
                                    "refreshed; see `nexus credentials check`")
            set_headers = (("authorization", f"Bearer {cred.access_token}"),
                           ("anthropic-beta", merge_beta(headers.get("anthropic-beta"), OAUTH_BETA)))
            drop = frozenset({"x-api-key"})
        else:
            set_headers = (("x-api-key", cred.api_key),)
            drop = frozenset({"authorization"})
        webhook, options = self._slack(cred)
        return Grant(set_headers=set_headers, drop_headers=drop,
                     auth_hash=hash_secret(cred.upstream_secret()), client_key_id=client_key_id,
                     account_id=cred.account_id, slack_webhook=webhook, slack_options=options)

    def _slack(self, cred):
        """Per-domain Slack block overrides SLACK_WEBHOOK_URL; `enabled: false` silences the domain."""
        block = cred.slack or {}
        if block.get("enabled") is False:
            return None, ()
        options = tuple((k, block[k]) for k in ("channel", "username", "icon_emoji")
                        if isinstance(block.get(k), str) and block[k])
        return (block.get("webhook_url") or self.global_slack), options

    # -- client keys ------------------------------------------------------------------

    def _check_client_key(self, domain, headers, cred):
        presented = presented_secret(headers)
        if not presented:
            raise refusals.unauthorized("a client key is required: send it as x-api-key "
                                "or Authorization: Bearer")
        if cred.client_api_key and hmac.compare_digest(presented.encode("utf-8", "surrogateescape"),
                                                       cred.client_api_key.encode("utf-8", "surrogateescape")):
            return "file:" + hash_secret(cred.client_api_key)[:12]
        info = self._lookup_key(presented)
        if info is None or info.revoked:
            raise refusals.unauthorized("invalid client key")
        if info.domain and info.domain != domain:
            raise refusals.forbidden(f"client key {info.key_id} is not valid for {domain}")
        try:
            self.limiter.check(info.key_id, info.requests_per_minute, info.daily_budget_usd)
        except Refusal:
            raise
        except DATABASE_ERRORS as exc:
            # A database outage must not take the proxy down with it: limits fail open.
            log.warning("client key limits not checked (database error: %s)", type(exc).__name__)
        return info.key_id

    def _lookup_key(self, presented):
        digest = keys.hash_key(presented)
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and now - cached[0] < KEY_TTL_S:
            return cached[1]
        if not keys.looks_like_key(presented):
            info = None  # not ours: no database round trip for stray upstream keys
        else:
            try:
                info = self._fetch_key(digest)
            except DATABASE_ERRORS as exc:
                if cached is not None and now - cached[0] < KEY_STALE_S:
                    return cached[1]
                log.error("client key store unavailable (%s)", type(exc).__name__)
                raise refusals.unavailable("client keys cannot be checked right now") from None
        with self._lock:
            if len(self._keys) >= MAX_CACHED:
                self._keys.clear()
            self._keys[digest] = (now, info)
        return info

    def _fetch_key(self, digest):
        with connected(ClientKey._meta.database):
            row = ClientKey.get_or_none(ClientKey.key_hash == digest)
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return _KeyInfo(row.key_id, row.domain, row.revoked_at is not None,
                        row.requests_per_minute, row.daily_budget_usd)


def _signature(path):
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return None
