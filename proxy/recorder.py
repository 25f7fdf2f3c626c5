"""Recording, the worker's side: a bounded queue, and a batcher that hands records over.

The proxy's greenlets `put()` a record without blocking: a deque append. One flusher
greenlet takes what is queued and writes it, a frame at a time, into the pipe of the
worker's writer process (`proxy/writer.py`), which saves it (`proxy/sink.py`); while
the pipe is full the flusher waits without blocking the worker. Past the byte budget
(NEXUS_QUEUE_BYTES) or the queue size, and while no writer process can be started,
records go to the spool on disk instead, and the writer process replays them later.

Nothing here parses, hashes or touches the database: the worker's cost for a record
is a queue append and, later, one copy into the pipe.
"""
import collections
import logging
import time

from common.logs import event

from . import green
from .spool import Spool

log = logging.getLogger("nexus.recorder")

PROBE_INTERVAL_S = 1.0     # retry a writer process that could not be started at most this often
HANDOVER_INTERVAL_S = 2.0  # close the worker's spool file this often, for the writer to replay
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
    """Where records go is not there right now (the writer process, or the database)."""


class RecordQueue:
    """Queue records in the worker and hand them to the writer process in batches."""

    def __init__(self, config, channel, spool=None, metrics=None):
        self.enabled = config.storage_enabled
        self.capacity = max(1, config.queue_size)
        self.budget = max(1, config.queue_bytes)
        self.batch_size = max(1, config.batch_size)
        # A frame holds at most an eighth of the budget: the writer's copy of it while it
        # saves stays small next to the budget.
        self.batch_bytes = max(1, min(self.budget // 8, BATCH_BYTES))
        self.channel = channel  # .send(batch) (raises Unavailable), .start(), .stop()
        self.spool = spool or Spool(config.spool_dir)
        self.metrics = metrics
        self.queue = collections.deque()  # (record, size)
        self.held = 0
        self.writer_up = True
        self._stopping = False
        self._retry_at = 0.0
        self._wake = None
        self._task = None

    def put(self, record):
        """Hand a record over; never blocks (past the budget it goes to the spool)."""
        if not self.enabled:
            return
        size = record_size(record)
        if (not self._stopping and len(self.queue) < self.capacity
                and self.held + size <= self.budget):
            self.queue.append((record, size))
            self.held += size
            if self._wake is not None:
                self._wake.set()
            return
        self._spool([record])

    def start(self):
        """Start the flusher (once per worker, after the fork)."""
        if self._task is None:
            self._wake = green.event()
            self._task = green.spawn(self._run)

    def stop(self, timeout=10.0):
        """Hand over what is queued (or spool it), then let the writer process finish."""
        self._stopping = True
        if self._task is not None:
            self._wake.set()
            green.join(self._task, timeout)
        leftover = [record for record, _ in self.queue]
        self.queue.clear()
        self.held = 0
        if leftover:
            self._spool(leftover)
        self.spool.rotate()
        self.channel.stop()
        self._flush_metrics()

    # -- the flusher -----------------------------------------------------------------
    def _run(self):
        next_handover = next_metrics = 0.0
        while True:
            if self.queue:
                self._hand_over(self._take())
            elif self._stopping:
                return
            else:
                self._wake.wait(timeout=METRICS_INTERVAL_S)
                self._wake.clear()
            now = time.monotonic()
            if now >= next_handover and not self.queue:
                next_handover = now + HANDOVER_INTERVAL_S
                self._hand_over_spool()
            if now >= next_metrics:
                next_metrics = now + METRICS_INTERVAL_S
                self._flush_metrics()

    def _take(self):
        batch, size = [], 0
        while self.queue and len(batch) < self.batch_size and size < self.batch_bytes:
            record, record_bytes = self.queue.popleft()
            batch.append(record)
            size += record_bytes
        self.held -= size
        return batch

    def _hand_over(self, batch):
        if time.monotonic() < self._retry_at:
            self._spool(batch)
            return
        try:
            self.channel.send(batch)
        except Unavailable as exc:
            self._retry_at = time.monotonic() + PROBE_INTERVAL_S
            if self.writer_up:
                self.writer_up = False
                event(log, "writer process unavailable: spooling records", logging.ERROR,
                      reason=str(exc)[:500], spool_dir=self.spool.directory)
            self._spool(batch)
            return
        if not self.writer_up:
            self.writer_up = True
            event(log, "writer process back: handing records over")
        self._count("nexus_records_sent_total", len(batch))

    def _hand_over_spool(self):
        """Close this worker's spool file for the writer process to replay, and make sure a
        writer process runs when records wait in the spool (left, say, by a previous run)."""
        self.spool.rotate()
        if time.monotonic() < self._retry_at or self.channel.running():
            return
        if self.spool.backlog()[0]:
            try:
                self.channel.start()
            except Unavailable as exc:
                self._retry_at = time.monotonic() + PROBE_INTERVAL_S
                event(log, "writer process could not start", logging.ERROR, reason=str(exc)[:500])

    def _spool(self, records):
        stored = self.spool.append(records)  # records written whole; a torn one is lost
        if stored:
            self._count("nexus_records_spooled_total", stored)
        if stored < len(records):
            self._count("nexus_records_lost_total", len(records) - stored)

    def _count(self, name, amount):
        if self.metrics:
            self.metrics.inc(name, amount=amount)

    def _flush_metrics(self):
        if not self.metrics:
            return
        self.metrics.set("nexus_recorder_queue_depth", len(self.queue))
        self.metrics.set("nexus_recorder_queue_bytes", max(0, self.held))
        try:
            self.metrics.flush()
        except OSError:
            pass
