"""The line-up: each thing the bench measures, started on the shared stand-in.

Baselines first (straight to the stand-in, nginx, the bare relay), then the proxy
with recording off, on SQLite and on a fresh PostgreSQL database.
"""
import contextlib
import re
import uuid
from pathlib import Path

from bench import servers
from bench.scenarios import Target

BASELINES = ("straight", "nginx", "relay")
PROXIES = ("proxy-off", "proxy-sqlite", "proxy-postgresql")
TARGETS = BASELINES + PROXIES
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql://postgres@127.0.0.1:5432"


def parse_variant(name):
    """("proxy-sqlite", {"NEXUS_LOG_LEVEL": "warning"}) from "proxy-sqlite+NEXUS_LOG_LEVEL=warning".

    A variant is one of PROXIES with settings changed, measured beside the others
    in the same run, to see what a setting costs.
    """
    base, *settings = name.split("+")
    if base not in PROXIES:
        raise ValueError(f"unknown target {name!r}: use one of {', '.join(TARGETS)}, "
                         "or a proxy target followed by +SETTING=value")
    env = dict(item.split("=", 1) for item in settings)
    return base, env


@contextlib.contextmanager
def fresh_postgres(admin_dsn=PG_ADMIN_DSN, url_prefix=PG_URL):
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    import psycopg2  # only this target needs it

    name = f"nexus_bench_{uuid.uuid4().hex[:12]}"

    def admin(sql):
        conn = psycopg2.connect(admin_dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    admin(f"CREATE DATABASE {name}")
    try:
        yield f"{url_prefix}/{name}"
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def start(name, upstream, workdir, pg_admin_dsn=PG_ADMIN_DSN, pg_url=PG_URL):
    """Start target `name` in front of the running `upstream` server; yield a Target."""
    workdir = Path(workdir) / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if name == "straight":
        yield Target(name, upstream.port, upstream.worker_pid())
        return
    with contextlib.ExitStack() as stack:
        recording = None
        if name == "nginx":
            server = servers.nginx(workdir, upstream.port)
        elif name == "relay":
            server = servers.relay(workdir, upstream.url)
        else:
            base, env = parse_variant(name)
            recording = base.split("-", 1)[1]
            if recording == "postgresql":
                db_url = stack.enter_context(fresh_postgres(pg_admin_dsn, pg_url))
            else:
                db_url = f"sqlite:///{workdir}/nexus.db"
            server = servers.proxy(workdir, upstream.url, db_url, storage=recording != "off",
                                   name=base, **env)
        stack.enter_context(server)
        count_rows = None
        if recording not in (None, "off"):
            count_rows = stack.enter_context(_row_counter(db_url))
        notes = {"log": str(server.log_path)}
        if recording not in (None, "off"):
            notes["db_url"] = db_url
        target = Target(name, server.port, server.worker_pid(), recording=recording,
                        has_metrics=recording is not None, count_rows=count_rows, notes=notes)
        yield target


@contextlib.contextmanager
def _row_counter(db_url):
    """A function counting the recorded rows, on a connection of its own."""
    from common.db import open_database

    database = open_database(db_url, pool_size=1)

    def count_rows():
        try:
            return database.execute_sql("SELECT COUNT(*) FROM api_requests").fetchone()[0]
        except Exception:  # not migrated yet, or busy: no rows seen this time
            database.close()
            return 0

    try:
        yield count_rows
    finally:
        database.close()
