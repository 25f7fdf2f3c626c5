"""OAuth token refresh: once per expiry, however many workers and replicas ask.

Three nested guards, from cheapest to widest:
1. a per-domain lock in this process (greenlets and threads of one worker);
2. an fcntl lock on `.<file>.lock` beside the credential file (the workers of one host);
3. a lease row in `credential_leases` (replicas sharing the database and the
   credentials volume).
Whoever passes all three re-reads the file, and only if the token is still due
calls the token endpoint and writes the file back atomically with mode 0600.
Everyone else waits and re-reads the file. Refresh tokens rotate, so two
refreshes with the same refresh token would leave one replica holding a dead
token: that is why "once" matters.
"""
import datetime
import errno
import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import peewee as pw
import requests

from common import credentials
from common.models import CredentialLease, utcnow

from .limits import DATABASE_ERRORS, connected

log = logging.getLogger("nexus.proxy.oauth")

OAUTH_BETA = "oauth-2025-04-20"
REFRESH_MARGIN_S = 60
LEASE_S = 30
WAIT_S = 35
FAILURE_COOLDOWN_S = 5
POLL_S = 0.1


class RefreshError(Exception):
    """The token endpoint refused or could not be reached; the message holds no secret."""


def needs_refresh(cred, now_s=None, margin=REFRESH_MARGIN_S):
    """True when an OAuth credential's token expires within `margin` seconds."""
    if cred is None or cred.type != "oauth":
        return False
    ms = (cred.oauth or {}).get("expiresAt")
    if not isinstance(ms, (int, float)):
        return False
    return ms / 1000 - margin <= (time.time() if now_s is None else now_s)


def is_expired(cred):
    """True when the access token can no longer be used at all."""
    return needs_refresh(cred, margin=0)


class Refresher:
    """Refreshes OAuth credential files; `ensure_fresh` is safe to call from any worker."""

    def __init__(self, config, session=None):
        self.token_url = config.oauth_token_url
        self.client_id = config.oauth_client_id
        self.session = session or requests.Session()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._locks = {}
        self._guard = threading.Lock()
        self._failed = {}  # path -> monotonic time of the last failed refresh

    def ensure_fresh(self, domain, path, cred):
        """The credential at `path`, refreshed first if its token is (nearly) expired."""
        if not needs_refresh(cred):
            return cred
        if time.monotonic() - self._failed.get(path, -1e9) < FAILURE_COOLDOWN_S:
            return cred  # a refresh just failed: don't hammer the token endpoint
        with self._local_lock(path):
            cred = credentials.load(path)
            if not needs_refresh(cred):
                return cred
            try:
                with _file_lock(path):
                    return self._refresh_leased(domain, path)
            except (RefreshError, OSError) as exc:
                self._failed[path] = time.monotonic()
                log.error("oauth refresh failed for %s: %s", domain, exc)
                return credentials.load(path)

    def _local_lock(self, path):
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def _refresh_leased(self, domain, path):
        deadline = time.monotonic() + WAIT_S
        while True:
            cred = credentials.load(path)
            if not needs_refresh(cred):
                return cred
            held = self._take_lease(domain)
            if held is not False:  # True, or None when the database is unavailable
                try:
                    cred = credentials.load(path)
                    return cred if not needs_refresh(cred) else self._refresh(path, cred)
                finally:
                    if held:
                        self._drop_lease(domain)
            if time.monotonic() > deadline:
                raise RefreshError("timed out waiting for another replica's refresh")
            time.sleep(POLL_S)

    def _refresh(self, path, cred):
        if not cred.refresh_token:
            raise RefreshError("the credential file has no refreshToken; log in again")
        try:
            response = self.session.post(
                self.token_url, timeout=(5, 20),
                headers={"content-type": "application/json", "anthropic-beta": OAUTH_BETA},
                json={"grant_type": "refresh_token", "refresh_token": cred.refresh_token,
                      "client_id": self.client_id})
        except requests.RequestException as exc:
            raise RefreshError(f"token endpoint unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise RefreshError(f"token endpoint answered {response.status_code} {_error_code(response)}")
        try:
            payload = response.json()
            raw = credentials.refreshed(cred.raw, payload, time.time() * 1000)
            fresh = credentials.parse(raw)
        except (ValueError, KeyError, TypeError):
            raise RefreshError("token endpoint answered without a usable access_token") from None
        credentials.write_atomic(path, raw)
        log.info("oauth token refreshed for %s, expires %s UTC", os.path.basename(path), fresh.expires_at)
        return fresh

    def _take_lease(self, domain):
        """True if this process now holds the lease, False if another does, None if no database."""
        now = utcnow()
        try:
            with connected(CredentialLease._meta.database):
                return bool(CredentialLease
                            .insert(domain=domain, holder=self.holder,
                                    expires_at=now + datetime.timedelta(seconds=LEASE_S))
                            .on_conflict(conflict_target=[CredentialLease.domain],
                                         update={CredentialLease.holder: pw.EXCLUDED.holder,
                                                 CredentialLease.expires_at: pw.EXCLUDED.expires_at},
                                         where=(CredentialLease.expires_at < now))
                            .as_rowcount().execute())
        except (*DATABASE_ERRORS, AttributeError) as exc:
            # AttributeError: the database proxy was never initialised (no database at all).
            log.warning("no refresh lease (database unavailable: %s); the file lock alone guards",
                        type(exc).__name__)
            return None

    def _drop_lease(self, domain):
        try:
            with connected(CredentialLease._meta.database):
                CredentialLease.delete().where((CredentialLease.domain == domain)
                                               & (CredentialLease.holder == self.holder)).execute()
        except DATABASE_ERRORS:
            log.warning("could not release the refresh lease for %s; it expires in %ss",
                        domain, LEASE_S)


def _error_code(response):
    try:
        body = response.json()
        return str(body.get("error", ""))[:64] if isinstance(body, dict) else ""
    except ValueError:
        return ""


@contextmanager
def _file_lock(path):
    """Hold an exclusive fcntl lock for `path`, polling so that a gevent worker keeps serving."""
    directory, name = os.path.split(path)
    lock_path = os.path.join(directory, f".{name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # closing releases the lock
