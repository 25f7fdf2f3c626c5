"""Throwaway databases for tests: a SQLite file or a fresh PostgreSQL database.

PostgreSQL is the machine's own server (127.0.0.1:5432, trust auth); each test
gets a database of its own, dropped afterwards, so tests never see each other's
rows and can run against the real server in parallel.
"""
import os
import uuid
from contextlib import contextmanager

import psycopg2

PG_ADMIN_DSN = os.environ.get("NEXUS_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_URL_PREFIX = os.environ.get("NEXUS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def _admin(sql):
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@contextmanager
def temporary_database(kind, tmp_path):
    """Yield the URL of an empty database of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/nexus.db"
        return
    name = f"nexus_test_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_URL_PREFIX}/{name}"
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
