"""Recording: the worker's queue, the writer's sink, the spool when either is away; nothing lost."""
import os
import sqlite3
import time
from urllib.parse import urlsplit

from common import config as nexus_config
from proxy.metrics import Metrics
from proxy.recorder import RecordQueue, Unavailable
from proxy.sink import DatabaseSink
from tests.proxy.conftest import MODEL, TcpRelay, sdk
from tests.proxy.rows import fetch_rows, wait_for_rows
from tests.proxy.test_spool import record
from tests.proxy_server import running_proxy


class Frames:
    """What the worker's pipe would bring the writer: batches, then the end."""

    def __init__(self, batches):
        self.batches, self.eof = list(batches), False

    def next(self, timeout):
        if self.batches:
            return self.batches.pop(0)
        self.eof = True
        return None


class Channel:
    """The writer process's pipe, as the worker's queue sees it."""

    def __init__(self, fail=False):
        self.batches, self.fail, self.stopped = [], fail, False

    def send(self, batch):
        if self.fail:
            raise Unavailable("no writer process")
        self.batches.append(batch)

    def running(self):
        return not self.fail

    def start(self):
        if self.fail:
            raise Unavailable("no writer process")

    def stop(self):
        self.stopped = True


def settings(tmp_path, **values):
    return nexus_config.load({"NEXUS_SPOOL_DIR": str(tmp_path / "spool"),
                              **{k: str(v) for k, v in values.items()}})


def test_the_sink_saves_what_the_pipe_brings_in_batches(tmp_path, db_url, database):
    config = settings(tmp_path, NEXUS_BATCH_SIZE=10)
    metrics = Metrics(shared_dir="")
    saved = []
    sink = DatabaseSink(config, database, metrics=metrics)
    real_save = sink.save
    sink.save = lambda batch: (saved.append(len(batch)), real_save(batch))
    records = [record() for _ in range(35)]
    sink.run(Frames([records[:20], records[20:]]))
    rows = fetch_rows(db_url)
    assert sorted(r["request_id"] for r in rows) == sorted(r["request_id"] for r in records)
    assert rows[0]["input_tokens"] == 12 and rows[0]["cost_usd"] > 0
    assert max(saved) == 10 and sum(saved) == 35
    assert metrics.counters[("nexus_records_written_total", "")] == 35


def test_the_worker_queue_hands_batches_over_and_spools_past_its_size(tmp_path):
    channel, metrics = Channel(), Metrics(shared_dir="")
    queue = RecordQueue(settings(tmp_path, NEXUS_QUEUE_SIZE=3), channel, metrics=metrics)
    records = [record() for _ in range(10)]
    for r in records:  # the flusher is not running yet: the queue fills up
        queue.put(r)
    assert len(queue.queue) == 3
    assert metrics.counters[("nexus_records_spooled_total", "")] == 7
    queue.start()
    queue.stop()
    assert [r["request_id"] for b in channel.batches for r in b] == [
        r["request_id"] for r in records[:3]]
    assert channel.stopped
    assert metrics.counters[("nexus_records_sent_total", "")] == 3


def test_without_a_writer_process_records_wait_in_the_spool_and_are_replayed(
        tmp_path, db_url, database):
    config = settings(tmp_path)
    queue = RecordQueue(config, Channel(fail=True))
    records = [record() for _ in range(5)]
    queue.start()
    for r in records:
        queue.put(r)
    queue.stop()
    assert not fetch_rows(db_url)
    sink = DatabaseSink(config, database)
    sink.idle()  # the writer replays what the worker spooled
    assert sorted(r["request_id"] for r in fetch_rows(db_url)) == sorted(
        r["request_id"] for r in records)


def test_a_record_the_database_rejects_is_set_aside_not_retried_forever(tmp_path, db_url, database):
    bad = record(timestamp="not a time at all", request_id="x" * 80)
    good = [record(), record()]
    DatabaseSink(settings(tmp_path), database).run(Frames([[good[0], bad, good[1]]]))
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
