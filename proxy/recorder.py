"""Recording off the hot path: a bounded queue and a writer in a real OS thread.

The proxy's greenlets `put()` records without blocking: a deque append (atomic
under the GIL, so safe between the gevent hub and an OS thread). The writer runs
in an OS thread, not a greenlet, because SQLite calls would otherwise stall the
hub; it takes up to NEXUS_BATCH_SIZE records at a time and saves them with
`common.recording.store.save_records`. When the database is unreachable, or the queue is
full (NEXUS_QUEUE_SIZE records or NEXUS_QUEUE_BYTES bytes, counting the batch
being written), records go to the spool; once the database answers again the
writer replays the spool. A record that the database rejects for its content
(not for being down) is logged and set aside in the spool's `rejected/` folder.
"""
import collections
import logging
import os
import sys
import time

import peewee

from common.logs import event

from .green import original, real_lock
from .spool import Spool

log = logging.getLogger("nexus.recorder")

IDLE_WAIT_S = 0.02
# Saving costs ~1.6 ms of CPU for a batch of one record, ~0.2 ms a record in batches of
# 200 (peewee builds the SQL in Python): wait this long for a batch to fill.
LINGER_S = 0.25
SWITCH_INTERVAL_S = 0.0005
PROBE_INTERVAL_S = 1.0     # retry a down database at most this often
REPLAY_INTERVAL_S = 2.0
METRICS_INTERVAL_S = 1.0
BATCH_BYTES = 2 << 20


def record_size(record):
    """Roughly the bytes a record holds in memory: its bodies and texts, plus the rest."""
    size = 512
    for value in record.values():
        if isinstance(value, (bytes, bytearray, str)):
            size += len(value)
    return size


class Unavailable(Exception):
    """Where records go is not there right now (raised by a `save` that is not the database)."""


# Errors that mean "the database is not there right now", not "this record is bad".
UNAVAILABLE = (peewee.OperationalError, peewee.InterfaceError, Unavailable)


class Recorder:
    """Queue records and write them in batches from an OS thread."""

    def __init__(self, config, save, database=None, metrics=None, spool=None, prepare=None,
                 linger=LINGER_S, written_metric="nexus_records_written_total", close=None,
                 replay=None):
        self.enabled = config.storage_enabled
        self.capacity = max(1, config.queue_size)
        self.budget = max(1, config.queue_bytes)
        # A batch holds at most an eighth of the budget, so that the worker's frame on the
        # pipe and the writer's parsed copy of it stay small next to the budget, and at most
        # BATCH_BYTES, so that saving one takes well under a second (large bodies cost the
        # writer about 0.15 s a megabyte, small ones are counted by NEXUS_BATCH_SIZE).
        self.batch_bytes = max(1, min(self.budget // 8, BATCH_BYTES))
        self.batch_size = max(1, config.batch_size)
        # Only a recorder that saves to the database replays the spool; a worker that hands
        # records to a writer process only closes its spool file now and then so that the
        # writer may take it (replaying through the pipe would spool a record twice when
        # the database is down, and count it twice).
        self.replays = database is not None if replay is None else replay
        self.save = save
        self.linger = linger
        self.close = close  # called after the last batch at stop(), e.g. to end a writer process
        self.written_metric = written_metric
        self.prepare = prepare  # e.g. apply migrations, before the first save and after outages
        self._prepared = prepare is None
        self.database = database
        self.metrics = metrics
        self.spool = spool or Spool(config.spool_dir)
        self.queue = collections.deque()
        # Bytes held = added - released; each counter has one writing thread, so no lock.
        self._added = 0      # by put(), in the thread that serves requests
        self._released = 0   # by the writer thread, once a batch is saved or spooled
        self.database_up = True
        self._stopping = False
        self._done = real_lock()
        self._thread_started = False
        self._sleep = original("time", "sleep")
        self._next_probe = self._next_replay = self._next_metrics = 0.0

    def put(self, record):
        """Hand a record to the writer; never blocks (overflow goes to the spool)."""
        if not self.enabled:
            return
        size = record_size(record)
        if (len(self.queue) < self.capacity and self.held() + size <= self.budget
                and not self._stopping):
            self._added += size
            self.queue.append(record)
            return
        self._spool([record])

    def held(self):
        """Bytes of records in memory: the queue and the batch being written."""
        return self._added - self._released

    def start(self):
        """Start the writer thread (once per process, after the fork)."""
        if self._thread_started:
            return
        self._thread_started = True
        # The writer's Python work (parsing, linking) holds the GIL; with the default
        # 5 ms switch interval a request waiting for it would wait up to 5 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._done.acquire()
        original("_thread", "start_new_thread")(self._run, ())

    def stop(self, timeout=10.0):
        """Write what is queued (or spool it), then end the writer thread."""
        self._stopping = True
        if self._thread_started:
            if self._done.acquire(timeout=timeout):
                self._done.release()
        leftover, size = self._take(len(self.queue), float("inf"))
        if leftover:
            self._spool(leftover)
        self._released += size
        self.spool.rotate()
        if self.close is not None:
            self.close()

    def _run(self):
        try:
            while True:
                batch, size = self._fill(*self._take(self.batch_size, self.batch_bytes))
                if batch:
                    try:
                        self._write(batch)
                    finally:
                        self._released += size
                elif self._stopping:
                    return
                else:
                    self._idle()
                self._tick()
        finally:
            self._done.release()

    def _fill(self, batch, size):
        """Wait up to LINGER_S for a started batch to fill (one big batch is cheaper)."""
        deadline = time.monotonic() + self.linger
        while (batch and len(batch) < self.batch_size and size < self.batch_bytes
               and not self._stopping and time.monotonic() < deadline):
            self._sleep(IDLE_WAIT_S)
            more, more_size = self._take(self.batch_size - len(batch), self.batch_bytes - size)
            batch += more
            size += more_size
        return batch, size

    def _take(self, count, room):
        """Up to `count` records, stopping once they hold `room` bytes; (records, bytes)."""
        batch, size = [], 0
        while len(batch) < count and size < room:
            try:
                record = self.queue.popleft()
            except IndexError:
                break
            batch.append(record)
            size += record_size(record)
        return batch, size

    def _idle(self):
        now = time.monotonic()
        if now >= self._next_replay:
            self._next_replay = now + REPLAY_INTERVAL_S
            if self.replays:
                self._replay()
            else:
                self._hand_over_spool()
        self._sleep(IDLE_WAIT_S)

    def _hand_over_spool(self):
        """Close this process's spool file for the writer process to replay, and start
        that process if records wait in the spool (left, say, by a previous run)."""
        self.spool.rotate()
        if not self.database_up and time.monotonic() < self._next_probe:
            return
        if not self._prepared and self.spool.backlog()[0]:
            try:
                self._prepare()
            except UNAVAILABLE as exc:
                self._mark_down(exc)

    def _tick(self):
        """Publish the metrics once a second, busy or idle."""
        now = time.monotonic()
        if self.metrics and now >= self._next_metrics:
            self._next_metrics = now + METRICS_INTERVAL_S
            self._flush_metrics()

    def _write(self, batch):
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
        self._count(self.written_metric, len(batch))

    def _prepare(self):
        try:
            self.prepare()
        except UNAVAILABLE:
            raise
        except Exception as exc:  # whatever stops preparing is an outage, not a bad record
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        self._prepared = True

    def _save(self, batch):
        if not self._prepared:
            self._prepare()
        if self.database is not None:
            self.database.connect(reuse_if_open=True)
        try:
            self.save(batch)
        except Exception:
            self._close_connection()
            raise

    def _close_connection(self):
        try:
            if self.database is not None:
                self.database.close()
        except Exception:
            pass

    def _write_one_by_one(self, batch):
        for record in batch:
            try:
                self._save([record])
                self._count(self.written_metric, 1)
            except UNAVAILABLE as exc:
                self._mark_down(exc)
                self._spool([record])
            except Exception as exc:
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
            replayed = self.spool.replay(self._save, self.batch_size, self.batch_bytes)
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
        if not self.replays:
            self._prepared = False  # the writer process is gone: start another one
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

    def _flush_metrics(self):
        self.metrics.set("nexus_recorder_queue_depth", len(self.queue))
        self.metrics.set("nexus_recorder_queue_bytes", max(0, self.held()))
        if self.database is not None:
            self.metrics.set("nexus_database_up", 1 if self.database_up else 0)
        try:
            self.metrics.flush()
        except OSError:
            pass
