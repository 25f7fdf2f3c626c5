"""The record writer as a process of its own, one per gunicorn worker.

Saving a record is Python work (parsing bodies, linking, building SQL) that would
share the worker's GIL with the requests it serves (ADR 0035). So the worker's
recorder only pickles batches into a pipe; this process reads them and runs the
ordinary `Recorder` (batches, spool, replay) against the database, on another core.

Frames on the pipe: a 4-byte big-endian length, then a pickled list of records.
The process ignores SIGTERM/SIGINT: it ends when the worker closes the pipe (after
flushing its own queue), so a shutdown loses nothing in between. If the worker dies,
the pipe closes too and the writer saves what it has before it exits.
"""
import logging
import os
import pickle
import signal
import struct
import sys
import time

from common.logs import event

from .green import original
from .recorder import Unavailable

log = logging.getLogger("nexus.writer")

_HEADER = struct.Struct(">I")
STOP_WAIT_S = 15.0


def encode_frame(batch):
    """One frame: length, then the pickled batch."""
    data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def read_frames(stream):
    """Each batch from a stream of frames, until end of file."""
    while True:
        header = stream.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        data = stream.read(_HEADER.unpack(header)[0])
        yield pickle.loads(data)


class WriterProcess:
    """The worker's end: start the writer process, send it batches, stop it."""

    def __init__(self, metrics_dir=None):
        self.metrics_dir = metrics_dir or ""
        self.pid = None
        self.fd = None

    def start(self):
        """Spawn `python -m proxy.writer` with a pipe as its stdin (again, if it died)."""
        self._close()
        self._reap()
        read_end, write_end = os.pipe()
        try:
            self.pid = original("os", "posix_spawn")(
                sys.executable, [sys.executable, "-m", "proxy.writer", self.metrics_dir],
                os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)])
        finally:
            os.close(read_end)
        self.fd = write_end
        event(log, "writer process started", writer_pid=self.pid)

    def send(self, batch):
        """Hand a batch over (blocks while the pipe is full: call from the writer thread)."""
        if self.fd is None:
            self.start()
        view = memoryview(encode_frame(batch))
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self._close()
            raise Unavailable(f"writer process gone: {exc}") from None

    def _close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _reap(self):
        if self.pid is not None:
            try:
                original("os", "waitpid")(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def stop(self, timeout=STOP_WAIT_S):
        """Close the pipe and wait for the writer to save what it has."""
        self._close()
        if self.pid is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid, _ = original("os", "waitpid")(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            time.sleep(0.02)
        event(log, "writer process still saving at shutdown", logging.WARNING,
              writer_pid=self.pid)


def main(argv=None):
    """Entry point of the writer process."""
    from common import config as nexus_config
    from common import db, logs, pricing
    from common.migrations import migrate
    from common.recording import store

    from .metrics import Metrics
    from .recorder import Recorder

    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = nexus_config.load()
    logs.configure(config.log_level)
    database = db.connect(config.database_url, pool_size=2)
    prices = pricing.load_prices(config.pricing_file)
    recorder = Recorder(
        config, save=lambda batch: store.save_records(database, batch, prices, config),
        database=database, metrics=Metrics(shared_dir=argv[0] if argv else ""),
        prepare=lambda: migrate(database))
    recorder.start()
    for batch in read_frames(sys.stdin.buffer):
        # Push back on the worker (it blocks on a full pipe, its queue fills, and past its
        # own budget it spools): hold at most NEXUS_QUEUE_BYTES, counting the next frame.
        while (len(recorder.queue) >= recorder.capacity
               or recorder.held() > recorder.budget - recorder.batch_bytes):
            time.sleep(0.01)
        for record in batch:
            recorder.put(record)
    recorder.stop(timeout=STOP_WAIT_S - 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
