"""The database binding: SQLite in WAL mode beside a writer, PostgreSQL pooled."""
import subprocess
import sys

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase

from common import db as nexus_db


def test_sqlite_runs_in_wal_mode_and_makes_its_folder(tmp_path):
    url = f"sqlite:///{tmp_path}/nested/dir/nexus.db"
    database = nexus_db.open_database(url)
    with database.connection_context():
        assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert (tmp_path / "nested" / "dir" / "nexus.db").exists()


def test_a_reader_sees_committed_rows_while_a_writer_holds_a_transaction(tmp_path):
    url = f"sqlite:///{tmp_path}/nexus.db"
    writer, reader = nexus_db.open_database(url), nexus_db.open_database(url)
    writer.execute_sql("CREATE TABLE t (x INTEGER)")
    writer.execute_sql("INSERT INTO t VALUES (1)")
    with writer.atomic():
        writer.execute_sql("INSERT INTO t VALUES (2)")
        # WAL: the dashboard's read neither blocks nor sees the open transaction.
        assert reader.execute_sql("SELECT count(*) FROM t").fetchone()[0] == 1
    assert reader.execute_sql("SELECT count(*) FROM t").fetchone()[0] == 2


def test_postgresql_urls_are_pooled():
    database = nexus_db.open_database("postgresql://postgres@127.0.0.1:5432/test", pool_size=7)
    assert isinstance(database, PooledPostgresqlDatabase)
    assert database._max_connections == 7
    with database.connection_context():
        assert database.execute_sql("SELECT 1").fetchone()[0] == 1


def test_connect_binds_the_models(tmp_path):
    from common.models import ApiRequest

    database = nexus_db.connect(f"sqlite:///{tmp_path}/bound.db")
    assert ApiRequest._meta.database.obj is database
    assert isinstance(database, pw.SqliteDatabase)


def test_psycopg2_waits_cooperatively_under_gevent():
    # Two greenlets each sleep 0.5 s inside PostgreSQL; cooperative waits overlap them.
    code = r"""
from gevent import monkey; monkey.patch_all()
import time, gevent, psycopg2
from common.db import make_psycopg2_cooperative
assert make_psycopg2_cooperative()
def nap():
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    conn.cursor().execute("SELECT pg_sleep(0.5)")
    conn.close()
start = time.monotonic()
gevent.joinall([gevent.spawn(nap), gevent.spawn(nap)])
print(round(time.monotonic() - start, 2))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 0.9, "the two queries ran one after the other"


def test_connect_timeout_holds_under_gevent():
    # A server that accepts and never answers: libpq's own timer is off with a wait
    # callback, so the callback must give up after connect_timeout.
    code = r"""
from gevent import monkey; monkey.patch_all()
import socket, time, psycopg2
from common.db import make_psycopg2_cooperative
assert make_psycopg2_cooperative()
silent = socket.socket(); silent.bind(("127.0.0.1", 0)); silent.listen(8)
start = time.monotonic()
try:
    psycopg2.connect(host="127.0.0.1", port=silent.getsockname()[1], user="postgres",
                     dbname="x", connect_timeout=1)
except psycopg2.OperationalError as exc:
    print(round(time.monotonic() - start, 2))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout and float(out.stdout) < 2.5, out.stdout
