"""Database faults under load: the proxy keeps answering and every request is recorded.

- PostgreSQL stopped while traffic flows and started again: every request gets
  its answer, and once the server is back the rows equal the requests sent. The
  server stopped is a private one (tests/reliability/support.PrivatePostgres),
  never the machine's shared server.
- A SQLite file locked by another process for longer than the busy timeout: the
  same, and answers stay fast (the writer waits, not the hot path).
- A spool directory that fills while the database is down: one clear log line,
  the loss counted in /metrics, and the proxy keeps answering.
"""
import os
import sqlite3
import subprocess
import tempfile
import time

import pytest

from common import db as nexus_db
from common.migrations import migrate
from tests.proxy.conftest import free_port
from tests.proxy.rows import wait_for_rows
from tests.proxy_server import running_proxy

from .load import Load
from .support import message_body, metric, note, post, require


def assert_all_recorded(db_url, load, timeout=60):
    sent = load.request_ids()
    assert load.failures == [], load.failures[:5]
    assert set(load.statuses()) == {200}
    rows = wait_for_rows(db_url, len(sent), timeout=timeout)
    recorded = [r["request_id"] for r in rows]
    assert len(recorded) == len(sent) and set(recorded) == set(sent), \
        (len(sent), len(recorded), len(set(sent) - set(recorded)))
    return rows


@pytest.mark.slow
def test_postgresql_stopped_under_load_and_started_again(private_postgres, upstream, tmp_path):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": private_postgres.url,
           "NEXUS_SPOOL_DIR": str(tmp_path / "spool")}
    with running_proxy(env, cwd=str(tmp_path), workers=2) as proxy:
        with Load(proxy.port) as load:
            time.sleep(2)
            private_postgres.stop("fast")
            down_at = len(load.answers)
            time.sleep(1)
            assert proxy.get("/ready")[0] == 503
            time.sleep(3)
            during = len(load.answers) - down_at
            private_postgres.start()
            time.sleep(2)
        assert during > 20, "the proxy stopped answering while the database was down"
        rows = assert_all_recorded(private_postgres.url, load)
        assert proxy.get("/ready")[0] == 200
        events = [e["event"] for e in proxy.log_events()]
        metrics = proxy.get("/metrics")[2].decode()
    note("postgresql stopped under load", sent=len(load.answers), recorded=len(rows),
         answered_while_down=during, spooled=metric(metrics, "nexus_records_spooled_total"),
         replayed=metric(metrics, "nexus_records_replayed_total"))
    assert "database unreachable: spooling records" in events
    assert "database reachable again: replaying the spool" in events
    assert all(r["input_tokens"] > 0 for r in rows)  # replayed rows are whole rows


@pytest.mark.slow
def test_a_locked_sqlite_file_delays_recording_but_not_answers(upstream, tmp_path):
    url = f"sqlite:///{tmp_path}/nexus.db"
    database = nexus_db.open_database(url)
    migrate(database)
    database.close()
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": url,
           "NEXUS_SPOOL_DIR": str(tmp_path / "spool")}
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        with Load(proxy.port) as load:
            time.sleep(1)
            holder = sqlite3.connect(f"{tmp_path}/nexus.db", timeout=1, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # longer than the 5 s busy timeout
            locked_at = len(load.answers)
            time.sleep(7)
            during = load.answers[locked_at:]
            holder.execute("ROLLBACK")
            holder.close()
            time.sleep(1)
        assert len(during) > 20
        slowest = max(seconds for _, _, seconds in during)
        assert slowest < 1.0, f"answers waited for the lock ({slowest:.2f} s)"
        rows = assert_all_recorded(url, load)
    note("sqlite file locked", sent=len(load.answers), recorded=len(rows),
         answered_while_locked=len(during), slowest_answer_s=round(slowest, 3))


@pytest.fixture
def tiny_disk():
    """A 256 KiB tmpfs: a disk that fills up. Mounting needs root."""
    require(os.geteuid() == 0, "mounting a small tmpfs needs root")
    path = tempfile.mkdtemp(prefix="nexus-full-")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", path],
                          capture_output=True, text=True)
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


@pytest.mark.slow
def test_a_full_spool_disk_is_one_clear_log_line_and_the_proxy_keeps_serving(upstream, tmp_path,
                                                                              tiny_disk):
    env = {"CLAUDE_API_BASE_URL": upstream.url, "NEXUS_SPOOL_DIR": tiny_disk,
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"}
    padding = "x" * 8000  # each record about 11 KB in the spool: 256 KiB holds ~20
    with running_proxy(env, cwd=str(tmp_path)) as proxy:
        statuses = [post(proxy.port, message_body(text=f"fill {n} {padding}"))[0]
                    for n in range(80)]
        assert statuses == [200] * 80
        time.sleep(1.5)  # the writer spools in the background
        assert post(proxy.port)[0] == 200 and proxy.get("/health")[0] == 200
        status, _, metrics = proxy.get("/metrics")
        complaints = [e for e in proxy.log_events() if e.get("event", "").startswith("spool write failed")]
    lost = [line for line in metrics.decode().splitlines()
            if line.startswith("nexus_records_lost_total")]
    assert lost and float(lost[0].split()[-1]) > 0, metrics.decode()[:2000]
    note("spool disk full", sent=81, answered_200=statuses.count(200) + 1,
         spooled=metric(metrics.decode(), "nexus_records_spooled_total"),
         lost=metric(metrics.decode(), "nexus_records_lost_total"), log_lines=len(complaints))
    assert len(complaints) == 1, complaints  # one line, not one per record
    assert complaints[0]["level"] == "error"
    assert complaints[0]["reason"] == os.strerror(28)  # "No space left on device"
    assert complaints[0]["directory"] == tiny_disk and complaints[0]["hint"]


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections (the kernel's backlog) and never says a word."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_a_postgresql_that_never_answers_is_a_prompt_503(upstream, tmp_path, silent_server):
    import json as _json
    os.makedirs(tmp_path / "credentials")
    with open(tmp_path / "credentials" / "keyed.example.credentials.json", "w") as f:
        _json.dump({"type": "api_key", "api_key": "sk-ant-api03-SILENT-DB"}, f)
    env = {"CLAUDE_API_BASE_URL": upstream.url, "NEXUS_SPOOL_DIR": str(tmp_path / "spool"),
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{silent_server}/nexus",
           "ENABLE_CLIENT_AUTH": "true"}
    with running_proxy(env, cwd=str(tmp_path), timeout=60) as proxy:
        started = time.monotonic()
        status, _, body = proxy.get("/ready", timeout=30)
        assert status == 503 and b"timeout" in body
        assert time.monotonic() - started < 10
        started = time.monotonic()
        status, _, body = post(proxy.port, headers={"host": "keyed.example",
                                                    "x-api-key": "cnp_live_NOT-CACHED"}, timeout=30)
        assert status == 503, body
        assert time.monotonic() - started < 10
