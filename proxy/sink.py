"""Recording, the writer process's side: batches into the database, the spool while it is away.

`DatabaseSink.run` reads the frames the worker sends (`proxy.writer.FrameReader`),
gathers them into batches (up to NEXUS_BATCH_SIZE records, waiting LINGER_S for a
batch to fill: one big transaction is cheaper than many small ones) and saves each
with `common.recording.store.save_records`. While the database cannot be reached,
batches go to the spool and the database is probed once a second; once it answers,
the spool is replayed (the worker's overflow files too). A record the database
rejects for its content (not for being down) is logged and set aside in the spool's
`rejected/` folder, so that it never blocks the records behind it.
"""
import logging
import os
import time

import peewee

from common import pricing
from common.logs import event
from common.migrations import migrate
from common.recording import store

from .recorder import Unavailable, record_size
from .spool import Spool
from .telemetry import OFF

log = logging.getLogger("nexus.writer")

LINGER_S = 0.1
IDLE_S = 0.5
PROBE_INTERVAL_S = 1.0     # retry a down database at most this often
REPLAY_INTERVAL_S = 2.0
METRICS_INTERVAL_S = 1.0
# A transaction gathers the worker's frames (2 MB each) up to this many bytes. Each
# transaction pays a dozen statements and a commit whatever it holds: with 300 KB records
# capped at 2 MB (six records), PostgreSQL saved 700 rows/s, fewer than the worker serves;
# at 16 MB, 1,900 (docs/recording-performance.md). The cost is the writer's memory: up to
# this much of bodies held while a batch is saved.
TRANSACTION_BYTES = 16 << 20

# Errors that mean "the database is not there right now", not "this record is bad".
UNAVAILABLE = (peewee.OperationalError, peewee.InterfaceError, Unavailable)


class DatabaseSink:
    """Save batches of records; spool them while the database is away; replay the spool."""

    def __init__(self, config, database, metrics=None, spool=None, save=None, linger=LINGER_S,
                 telemetry=OFF):
        prices = pricing.load_prices(config.pricing_file)
        self.database = database
        self.telemetry = telemetry  # proxy.telemetry: spans of what was saved, never raises
        self.save = save or (lambda batch: store.save_records(database, batch, prices, config))
        self.metrics = metrics
        self.spool = spool or Spool(config.spool_dir)
        self.batch_size = max(1, config.batch_size)
        self.batch_bytes = max(1, min(max(1, config.queue_bytes) // 4, TRANSACTION_BYTES))
        self.linger = linger
        self.database_up = True
        self.pending, self.pending_bytes = [], 0
        self._prepared = False
        self._next_probe = self._next_replay = self._next_metrics = 0.0
        self._bytes_counted = (0, 0)

    def run(self, reader):
        """Save what `reader` brings until it ends, then what is left."""
        deadline = None
        while True:
            now = time.monotonic()
            wait = max(0.0, deadline - now) if self.pending else IDLE_S
            batch = reader.next(wait)
            if batch:
                self.add(batch)
                deadline = deadline or time.monotonic() + self.linger
            if self.pending and (batch is None or self.full() or time.monotonic() >= deadline):
                self.flush()
                deadline = None
            elif not self.pending and batch is None and not reader.eof:
                self.idle()
            self.tick()
            if reader.eof:
                break
        self.flush()
        self.spool.rotate()
        self._flush_metrics()

    def add(self, records):
        """Take records in; whole batches are saved as soon as they fill."""
        for record in records:
            self.pending.append(record)
            self.pending_bytes += record_size(record)
            if self.full():
                self.flush()

    def full(self):
        return len(self.pending) >= self.batch_size or self.pending_bytes >= self.batch_bytes

    def flush(self):
        """Save (or spool) what is pending."""
        batch, self.pending, self.pending_bytes = self.pending, [], 0
        if batch:
            self.write(batch)

    def write(self, batch):
        if not self.database_up and time.monotonic() < self._next_probe:
            self._spool(batch)
            return
        try:
            self._save(batch)
        except UNAVAILABLE as exc:
            self._mark_down(exc)
            self._spool(batch)
            return
        except Exception:
            self._write_one_by_one(batch)
            return
        self._mark_up()
        self._count("nexus_records_written_total", len(batch))

    def idle(self):
        """Between batches: replay the spool now and then."""
        now = time.monotonic()
        if now >= self._next_replay:
            self._next_replay = now + REPLAY_INTERVAL_S
            self._replay()

    def tick(self):
        now = time.monotonic()
        if now >= self._next_metrics:
            self._next_metrics = now + METRICS_INTERVAL_S
            self._flush_metrics()

    def _save(self, batch):
        if not self._prepared:
            self._prepare()
        self.database.connect(reuse_if_open=True)
        try:
            self.save(batch)
        except Exception:
            self._close_connection()
            raise
        self.telemetry.export(self.database, batch)

    def _prepare(self):
        """Apply migrations before the first save (and after an outage)."""
        try:
            self.database.connect(reuse_if_open=True)
            migrate(self.database)
        except UNAVAILABLE:
            self._close_connection()
            raise
        except Exception as exc:  # whatever stops preparing is an outage, not a bad record
            self._close_connection()
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        self._prepared = True

    def _close_connection(self):
        try:
            self.database.close()
        except Exception:
            pass

    def _write_one_by_one(self, batch):
        for record in batch:
            try:
                self._save([record])
                self._count("nexus_records_written_total", 1)
            except UNAVAILABLE as exc:
                self._mark_down(exc)
                self._spool([record])
            except Exception as exc:
                self._reject(record, exc)

    def _save_or_reject(self, batch):
        """Save a replayed batch; a record the database refuses for its content is set aside
        (like `_write_one_by_one`), so that one bad record never stops the spool behind it.
        An outage still raises, and the file stays for the next replay."""
        try:
            self._save(batch)
        except UNAVAILABLE:
            raise
        except Exception:
            for record in batch:
                try:
                    self._save([record])
                except UNAVAILABLE:
                    raise
                except Exception as exc:
                    self._reject(record, exc)

    def _reject(self, record, exc):
        event(log, "record rejected by the database", logging.ERROR,
              request_id=record.get("request_id"), reason=repr(exc)[:500])
        Spool(os.path.join(self.spool.directory, "rejected")).append([record])

    def _spool(self, records):
        stored = self.spool.append(records)  # records written whole; a torn one is lost
        if stored:
            self._count("nexus_records_spooled_total", stored)
        if stored < len(records):
            self._count("nexus_records_lost_total", len(records) - stored)

    def _replay(self):
        if not self.database_up and time.monotonic() < self._next_probe:
            return
        self.spool.rotate()
        try:
            replayed = self.spool.replay(self._save_or_reject, self.batch_size, self.batch_bytes)
        except UNAVAILABLE as exc:
            self._mark_down(exc)
            return
        except Exception as exc:
            event(log, "spool replay failed", logging.ERROR, reason=repr(exc)[:500])
            return
        if replayed:
            self._mark_up()
            self._count("nexus_records_replayed_total", replayed)

    def _mark_down(self, exc):
        self._next_probe = time.monotonic() + PROBE_INTERVAL_S
        self._prepared = False  # migrations again once it is back (it may be a new server)
        if self.database_up:
            self.database_up = False
            event(log, "database unreachable: spooling records", logging.ERROR,
                  reason=str(exc)[:500], spool_dir=self.spool.directory)

    def _mark_up(self):
        if not self.database_up:
            self.database_up = True
            self._next_replay = 0.0  # replay the spool on the next idle turn
            event(log, "database reachable again: replaying the spool")

    def _count(self, name, amount):
        if self.metrics:
            self.metrics.inc(name, amount=amount)

    def _count_bytes(self):
        writer = store.body_writer_for(self.database)
        received, stored = self._bytes_counted
        self._count("nexus_body_bytes_received_total", writer.received - received)
        self._count("nexus_body_bytes_stored_total", writer.stored - stored)
        self._bytes_counted = (writer.received, writer.stored)

    def _flush_metrics(self):
        if not self.metrics:
            return
        self._count_bytes()
        self.metrics.set("nexus_recorder_queue_depth", len(self.pending))
        self.metrics.set("nexus_recorder_queue_bytes", self.pending_bytes)
        self.metrics.set("nexus_database_up", 1 if self.database_up else 0)
        try:
            self.metrics.flush()
        except OSError:
            pass
