"""The one place the proxy talks to the Anthropic API: a pooled keep-alive client.

`Upstream.send()` makes one call and returns the urllib3 response unread
(`preload_content=False`), so that the caller streams it. Connection failures
become a 502 Refusal, a wait for headers past CLAUDE_API_TIMEOUT becomes
a 504 Refusal. With NEXUS_UPSTREAM_RETRIES > 0, a refused or reset
connection and a 529 (overloaded) are retried, since nothing has reached the
client yet; a 529's `retry-after` is honoured when it is short.
"""
import logging
import time
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (ConnectTimeoutError, HTTPError, NewConnectionError,
                                ProtocolError, ReadTimeoutError)
from urllib3.util import SKIP_HEADER

from common.logs import event

from .refusals import upstream_timeout, upstream_unreachable

log = logging.getLogger("nexus.upstream")

RETRY_STATUSES = frozenset({529})
MAX_RETRY_WAIT_S = 10.0  # a longer retry-after goes to the client, who may wait itself
BACKOFF_S = 0.25
DEFAULT_CONNECTIONS = 2000  # gunicorn_conf's worker_connections, when not told


def retry_after_seconds(value):
    """Seconds from a `retry-after` header (delta-seconds form), or None."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def pool_size(config, connections=None):
    """Keep-alive connections to keep: NEXUS_POOL_SIZE, else one per client connection.

    A worker serves up to `connections` requests at once (gunicorn's worker_connections);
    a smaller pool would close and reopen upstream connections past its size.
    """
    if config.pool_size > 0:
        return config.pool_size
    return connections or DEFAULT_CONNECTIONS


class Upstream:
    """A keep-alive connection pool to CLAUDE_API_BASE_URL."""

    def __init__(self, config, sleep=time.sleep, connections=None, metrics=None):
        parts = urlsplit(config.upstream_url)
        self.metrics = metrics
        self.base_path = parts.path.rstrip("/")
        self.retries = max(0, config.upstream_retries)
        self.sleep = sleep
        timeout = urllib3.Timeout(connect=config.connect_timeout_ms / 1000,
                                  read=config.upstream_timeout_ms / 1000)
        self.pool_size = pool_size(config, connections)
        manager = urllib3.PoolManager(num_pools=1, maxsize=self.pool_size, block=False,
                                      retries=False, timeout=timeout)
        # Past the pool's size urllib3 opens extra connections, closes each one it cannot
        # keep and logs a warning for it: with NEXUS_POOL_SIZE set below the worker's
        # connections that is expected under load, and not worth a line per request.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        # One host: keep its pool rather than look it up on every call.
        self.pool = manager.connection_from_url(f"{parts.scheme}://{parts.netloc}/")
        self.manager = manager

    def send(self, method, path, body, headers):
        """Send one request; return the unread response or raise a Refusal (502, 504)."""
        if "user-agent" not in headers:
            headers["user-agent"] = SKIP_HEADER  # don't invent one for the client
        target = self.base_path + path
        attempt = 0
        while True:
            try:
                response = self.pool.urlopen(
                    method, target, body=body, headers=headers, retries=False,
                    redirect=False, assert_same_host=False, preload_content=False,
                    decode_content=False, release_conn=False)
            except ReadTimeoutError:
                # The upstream has the request and may be working on it: never retry.
                raise upstream_timeout() from None
            except (ConnectTimeoutError, NewConnectionError, ProtocolError, HTTPError, OSError) as exc:
                if attempt < self.retries:
                    attempt += 1
                    self._wait(attempt, None, f"connection error: {type(exc).__name__}")
                    continue
                raise upstream_unreachable(type(exc).__name__) from None
            if response.status in RETRY_STATUSES and attempt < self.retries:
                wait = retry_after_seconds(response.headers.get("retry-after"))
                if wait is None or wait <= MAX_RETRY_WAIT_S:
                    attempt += 1
                    response.drain_conn()
                    response.release_conn()
                    self._wait(attempt, wait, f"status {response.status}")
                    continue
            response.retries_used = attempt
            return response

    def _wait(self, attempt, wait, reason):
        seconds = wait if wait is not None else min(BACKOFF_S * 2 ** (attempt - 1), MAX_RETRY_WAIT_S)
        event(log, "upstream retry", attempt=attempt, wait_s=seconds, reason=reason)
        if self.metrics is not None:
            self.metrics.inc("nexus_upstream_retries_total")
        self.sleep(seconds)

    def close(self):
        """Close every pooled connection."""
        self.manager.clear()
