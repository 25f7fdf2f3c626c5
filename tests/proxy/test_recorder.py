"""The recorder: batches off the hot path, spool when the database is away, nothing lost."""
import os
import sqlite3
import time
from urllib.parse import urlsplit

from common import config as nexus_config
from common import pricing
from common.recording import store
from proxy.metrics import Metrics
from proxy.recorder import Recorder
from tests.proxy.conftest import MODEL, TcpRelay, sdk
from tests.proxy.rows import fetch_rows, wait_for_rows
from tests.proxy.test_spool import record
from tests.proxy_server import running_proxy


def make_recorder(tmp_path, database, **settings):
    config = nexus_config.load({"NEXUS_SPOOL_DIR": str(tmp_path / "spool"),
                                **{k: str(v) for k, v in settings.items()}})
    prices = pricing.load_prices()
    metrics = Metrics(shared_dir="")
    return Recorder(config, lambda batch: store.save_records(database, batch, prices, config),
                    database=database, metrics=metrics), metrics


def test_records_are_written_in_batches_from_a_thread(tmp_path, db_url, database):
    recorder, metrics = make_recorder(tmp_path, database, NEXUS_BATCH_SIZE=10)
    recorder.start()
    records = [record() for _ in range(35)]
    for r in records:
        recorder.put(r)
    recorder.stop()
    rows = fetch_rows(db_url)
    assert sorted(r["request_id"] for r in rows) == sorted(r["request_id"] for r in records)
    assert rows[0]["input_tokens"] == 12 and rows[0]["cost_usd"] > 0
    assert metrics.counters[("nexus_records_written_total", "")] == 35


def test_a_full_queue_overflows_to_the_spool_and_is_replayed(tmp_path, db_url, database):
    recorder, metrics = make_recorder(tmp_path, database, NEXUS_QUEUE_SIZE=3)
    records = [record() for _ in range(10)]
    for r in records:  # the writer is not running yet: the queue fills up
        recorder.put(r)
    assert len(recorder.queue) == 3
    assert metrics.counters[("nexus_records_spooled_total", "")] == 7
    recorder.start()
    rows = wait_for_rows(db_url, 10, timeout=10)
    recorder.stop()
    assert sorted(r["request_id"] for r in rows) == sorted(r["request_id"] for r in records)


def test_a_record_the_database_rejects_is_set_aside_not_retried_forever(tmp_path, db_url, database):
    recorder, _ = make_recorder(tmp_path, database)
    bad = record(timestamp="not a time at all", request_id="x" * 80)
    good = [record(), record()]
    recorder.start()
    for r in [good[0], bad, good[1]]:
        recorder.put(r)
    recorder.stop()
    assert sorted(r["request_id"] for r in fetch_rows(db_url)) == sorted(r["request_id"] for r in good)
    rejected = os.listdir(tmp_path / "spool" / "rejected")
    assert len(rejected) == 1


def _outage(db_url):
    """(proxy's DATABASE_URL, take_down(), bring_back()) for a database that goes away."""
    if db_url.startswith("sqlite"):
        path = urlsplit(db_url).path
        holder = {}

        def take_down():  # another process holds the write lock: "database is locked"
            conn = sqlite3.connect(path, timeout=1, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            holder["conn"] = conn

        def bring_back():
            holder["conn"].execute("COMMIT")
            holder["conn"].close()
        return db_url, take_down, bring_back
    parts = urlsplit(db_url)
    relay = TcpRelay(parts.port or 5432).start()
    url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}").geturl()
    return url, relay.stop, relay.start


def test_the_proxy_keeps_answering_while_the_database_is_down(tmp_path, upstream, db_url):
    url, take_down, bring_back = _outage(db_url)
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": url,
           "NEXUS_SPOOL_DIR": str(tmp_path / "spool")}
    sent = []
    with running_proxy(env, cwd=str(tmp_path)) as proxy, sdk(proxy.url) as client:
        def call(n):
            for _ in range(n):
                raw = client.messages.with_raw_response.create(
                    model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
                assert raw.http_response.status_code == 200
                sent.append(raw.headers["x-nexus-request-id"])

        call(5)
        wait_for_rows(db_url, 5)
        take_down()
        try:
            started = time.monotonic()
            call(10)
            # answering never waited for the database
            assert time.monotonic() - started < 5
            # SQLite waits out its busy timeout (5 s) before it gives up on the lock
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not any(
                    e["event"] == "database unreachable: spooling records"
                    for e in proxy.log_events()):
                time.sleep(0.1)
            if db_url.startswith("postgres"):
                assert proxy.get("/ready")[0] == 503
            call(2)  # still answering, now straight to the spool
        finally:
            bring_back()
        call(5)
        rows = wait_for_rows(db_url, len(sent), timeout=30)
        events = [e["event"] for e in proxy.log_events()]
    assert sorted(r["request_id"] for r in rows) == sorted(sent)
    assert len(rows) == 22
    assert "database unreachable: spooling records" in events
