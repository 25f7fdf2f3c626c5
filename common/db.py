"""The database: chosen by DATABASE_URL, bound to the models at start-up.

Models bind to `database`, a proxy that each process initialises once with
`connect(url)`. SQLite runs in WAL mode so that the dashboard reads while the
proxy writes; PostgreSQL is pooled.
"""
import os
import time
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as _connect_url

database = peewee.DatabaseProxy()

CONNECT_TIMEOUT_S = 5  # PostgreSQL: an unanswered connect fails after this, also under gevent

_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    # WAL makes NORMAL durable across application crashes; only a power loss
    # can drop the last transactions, which the spool does not cover anyway.
    "synchronous": "normal",
    "busy_timeout": 5000,
    "foreign_keys": 1,
}


def is_sqlite(url):
    """True when `url` names a SQLite database."""
    return urlparse(url).scheme.split("+")[0] == "sqlite"


def open_database(url, pool_size=10):
    """A peewee Database for `url`, not yet bound to the models."""
    scheme = urlparse(url).scheme
    if is_sqlite(url):
        path = url.split("://", 1)[1].lstrip("/") if url.startswith("sqlite:///") else ""
        if url.startswith("sqlite:////"):
            path = "/" + path
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            _create_sqlite(path)
        return _connect_url(url, pragmas=_SQLITE_PRAGMAS, timeout=5)
    if scheme in ("postgres", "postgresql"):
        # Pooled unless the URL asks otherwise: connections are expensive and
        # the proxy's writer and the dashboard's requests reuse them.
        url = url.replace(f"{scheme}://", "postgresql+pool://", 1)
        return _connect_url(url, max_connections=pool_size, stale_timeout=300,
                            timeout=10, connect_timeout=CONNECT_TIMEOUT_S)
    return _connect_url(url)


def _create_sqlite(path):
    """Make a new SQLite file, readable by its owner only, in incremental auto-vacuum mode, so that retention can give
    freed pages back (`PRAGMA incremental_vacuum`). Only an empty file takes the mode
    (before WAL mode and any table): existing files are left alone."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    # Owner-only, as the spool files are: it holds every prompt. SQLite gives its -wal and
    # -shm files the database file's mode.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    import sqlite3
    conn = sqlite3.connect(path, timeout=5)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def connect(url, pool_size=10):
    """Open the database at `url` and bind the models to it."""
    db = open_database(url, pool_size=pool_size)
    database.initialize(db)
    return db


def make_psycopg2_cooperative():
    """Let psycopg2 yield to other greenlets while it waits on the network.

    psycogreen does this too, but it is not packaged in nixpkgs; the callback
    is a dozen lines (psycopg2's documented wait-callback protocol). With a wait
    callback libpq connects asynchronously and no longer enforces `connect_timeout`
    itself, so the callback does: a server that accepts and never answers is an
    OperationalError after that many seconds, not a wait as long as the kernel's.
    """
    try:
        import psycopg2
        from psycopg2 import extensions
        from gevent.socket import wait_read, wait_write
    except ImportError:
        return False

    def wait(conn, timeout=None):
        deadline = None
        if conn.status == extensions.STATUS_SETUP:  # still connecting
            deadline = time.monotonic() + _connect_timeout(conn.dsn)
        while True:
            state = conn.poll()
            if state == extensions.POLL_OK:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise psycopg2.OperationalError("timeout expired while connecting (connect_timeout)")
            expired = psycopg2.OperationalError("timeout expired while connecting (connect_timeout)")
            if state == extensions.POLL_READ:
                wait_read(conn.fileno(), timeout=left, timeout_exc=expired)
            elif state == extensions.POLL_WRITE:
                wait_write(conn.fileno(), timeout=left, timeout_exc=expired)
            else:
                raise psycopg2.OperationalError(f"bad state from poll: {state}")

    extensions.set_wait_callback(wait)
    return True


def _connect_timeout(dsn):
    """The DSN's connect_timeout in seconds (libpq's meaning: 0 or unset is our default)."""
    from psycopg2.extensions import parse_dsn
    try:
        seconds = int(parse_dsn(dsn).get("connect_timeout") or 0)
    except (ValueError, TypeError):
        seconds = 0
    return seconds if seconds > 0 else CONNECT_TIMEOUT_S
