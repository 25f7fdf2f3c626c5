"""The database: chosen by DATABASE_URL, bound to the models at start-up.

Models bind to `database`, a proxy that each process initialises once with
`connect(url)`. SQLite runs in WAL mode so that the dashboard reads while the
proxy writes; PostgreSQL is pooled.
"""
import os
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as _connect_url

database = peewee.DatabaseProxy()

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
                            timeout=10, connect_timeout=5)
    return _connect_url(url)


def _create_sqlite(path):
    """Make a new SQLite file in incremental auto-vacuum mode, so that retention can give
    freed pages back (`PRAGMA incremental_vacuum`). Only an empty file takes the mode
    (before WAL mode and any table): existing files are left alone."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
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
    is a dozen lines (psycopg2's documented wait-callback protocol).
    """
    try:
        import psycopg2
        from psycopg2 import extensions
        from gevent.socket import wait_read, wait_write
    except ImportError:
        return False

    def wait(conn, timeout=None):
        while True:
            state = conn.poll()
            if state == extensions.POLL_OK:
                return
            if state == extensions.POLL_READ:
                wait_read(conn.fileno(), timeout=timeout)
            elif state == extensions.POLL_WRITE:
                wait_write(conn.fileno(), timeout=timeout)
            else:
                raise psycopg2.OperationalError(f"bad state from poll: {state}")

    extensions.set_wait_callback(wait)
    return True
