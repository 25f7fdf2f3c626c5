"""The record writer, a process of its own beside each gunicorn worker.

Saving a record is Python work (parsing bodies, linking, building SQL) that would
share the worker's GIL with the requests it serves (ADR 0035). So the worker only
writes batches into a pipe (`WriterProcess`, used by `proxy.recorder`), and this
process reads them and saves them (`proxy.sink.DatabaseSink`) on another core.

The pipe carries frames: a header (the pickle's length, the number of out-of-band
buffers and each one's length, big-endian), the pickled value, then the buffers. Bodies
of 16 KB or more travel out of band (pickle protocol 5): written into the pipe from
where they are, not copied into the pickle first, which for a 300 KB body cost the worker
0.15 ms of its 0.8 ms per request (docs/recording-performance.md). The first frame is the
worker's configuration, so that both sides run on the same settings; every later frame is
a list of records. The child gets the worker's `sys.path` on its command
line, so it imports what the worker imports however the interpreter was started (Nix's
wrappers set the path inside the entry script only). The process ignores SIGTERM and
SIGINT: it ends when the worker closes the pipe, after saving what it has; if the worker
dies, the pipe closes too and the writer saves what it has before it exits.
"""
import fcntl
import json
import logging
import os
import pickle
import select
import signal
import struct
import sys
import time

from common.logs import event

from . import green
from .recorder import Unavailable

log = logging.getLogger("nexus.writer")

_HEADER = struct.Struct(">II")  # pickle length, number of out-of-band buffers
_LENGTH = struct.Struct(">Q")
OUT_OF_BAND_BYTES = 16 << 10
IOV_MAX = 512  # buffers per writev, well under Linux's 1024
STOP_WAIT_S = 15.0
PIPE_BYTES = 1 << 20  # a Claude Code body or three fit in the pipe without a wait
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Runs in the child: ignore the signals a shutdown sends the whole group (the writer ends
# when its pipe does), put the worker's sys.path in place, then the writer's entry point.
BOOTSTRAP = ("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             "signal.signal(signal.SIGINT, signal.SIG_IGN); "
             "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
             "from proxy.writer import main; sys.exit(main(sys.argv[2:]))")


def _lifted(value):
    """A record (dict) with its large bytes as PickleBuffers: pickle protocol 5 hands those
    to its buffer callback instead of copying them in (reducer_override never sees bytes)."""
    return {k: pickle.PickleBuffer(v) if type(v) is bytes and len(v) >= OUT_OF_BAND_BYTES else v
            for k, v in value.items()}


def encode_frame(value):
    """One frame as a list of buffers (header, pickle, out-of-band bytes), for writev.
    `value` is a list of records or a dict; the reader gets back the bytes it read for
    each out-of-band buffer, in its place."""
    value = [_lifted(v) for v in value] if isinstance(value, list) else _lifted(value)
    buffers = []
    data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    header = _HEADER.pack(len(data), len(raws)) + b"".join(_LENGTH.pack(r.nbytes) for r in raws)
    return [header, data, *raws]


def decode_frame(read):
    """The value of the next frame, reading with `read(n)` (n bytes, or None at the end);
    None when the stream ends before the frame does."""
    header = read(_HEADER.size)
    if header is None:
        return None
    size, count = _HEADER.unpack(header)
    lengths = read(_LENGTH.size * count) if count else b""
    data = read(size)
    if lengths is None or data is None:
        return None
    buffers = []
    for (length,) in _LENGTH.iter_unpack(lengths):
        buffers.append(read(length))
        if buffers[-1] is None:
            return None
    return pickle.loads(data, buffers=buffers)


def read_frames(stream):
    """Each value from a stream of frames, until end of file."""
    def read(n):
        data = stream.read(n)
        return data if len(data) == n else None

    while (value := decode_frame(read)) is not None:
        yield value


def _close_fd(fd):
    # gevent (25.8-25.9, nixpkgs' versions) defers os.close to the calling thread's hub:
    # the pipe's other end would stay open, and a dead writer go unnoticed.
    green.original("os", "close")(fd)


class WriterProcess:
    """The worker's end of the pipe: start the writer process, send it batches, stop it."""

    def __init__(self, config, metrics_dir=None):
        self.config = config
        self.metrics_dir = metrics_dir or ""
        self.pid = None
        self.fd = None

    def running(self):
        """True while a writer process holds the other end of the pipe."""
        return self.fd is not None

    def start(self):
        """Spawn the writer process with a pipe as its stdin (again, if it died)."""
        self._close()
        self._reap()
        read_end, write_end = os.pipe()
        try:
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: the default size works too, in more waits
        try:
            self.pid = green.original("os", "posix_spawn")(
                sys.executable,
                [sys.executable, "-c", BOOTSTRAP, json.dumps(sys.path), self.metrics_dir],
                os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)])
        except OSError as exc:
            _close_fd(write_end)
            raise Unavailable(f"writer process could not start: {exc}") from None
        finally:
            _close_fd(read_end)
        os.set_blocking(write_end, False)
        self.fd = write_end
        event(log, "writer process started", writer_pid=self.pid)
        self._write(encode_frame(self.config.as_dict()))

    def send(self, batch):
        """Hand a batch over, waiting (cooperatively) while the pipe is full."""
        if self.fd is None:
            self.start()
        self._write(encode_frame(batch))

    def _write(self, frame):
        views = [memoryview(b).cast("B") for b in frame]
        views = [v for v in views if v.nbytes]
        try:
            while views:
                try:
                    written = os.writev(self.fd, views[:IOV_MAX])
                except BlockingIOError:
                    green.wait_writable(self.fd)
                    continue
                while written:  # drop what went out; the rest of a buffer cut short stays
                    if written >= views[0].nbytes:
                        written -= views.pop(0).nbytes
                    else:
                        views[0], written = views[0][written:], 0
        except OSError as exc:
            self._close()
            raise Unavailable(f"writer process gone: {exc}") from None

    def _close(self):
        if self.fd is not None:
            _close_fd(self.fd)
            self.fd = None

    def _reap(self):
        if self.pid is not None:
            try:
                green.original("os", "waitpid")(self.pid, os.WNOHANG)
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
                pid, _ = green.original("os", "waitpid")(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            time.sleep(0.02)
        event(log, "writer process still saving at shutdown", logging.WARNING,
              writer_pid=self.pid)


class FrameReader:
    """The writer's end of the pipe: frames as they arrive, with a timeout."""

    def __init__(self, fd=0):
        self.fd = fd
        self.eof = False

    def next(self, timeout):
        """The next frame's value; None when none arrived in `timeout` seconds or at the end."""
        if self.eof:
            return None
        if not select.select([self.fd], [], [], timeout)[0]:
            return None
        return decode_frame(self._read)

    def _read(self, size):
        parts, left = [], size
        while left:
            chunk = os.read(self.fd, min(left, 1 << 20))
            if not chunk:
                self.eof = True
                return None
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)


def main(argv=None):
    """Entry point of the writer process: argv is [metrics directory]."""
    from common import config as nexus_config
    from common import db, logs
    from common.alerts import watcher as alerts

    from . import heap, telemetry
    from .metrics import Metrics
    from .sink import DatabaseSink

    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    heap.keep_top_pad()  # it reads the same bodies from the pipe
    reader = FrameReader(0)
    values = reader.next(timeout=None)
    if values is None:
        return 0
    config = nexus_config.Config(values)
    logs.configure(config.log_level)
    database = db.connect(config.database_url, pool_size=2)
    exporter = telemetry.start(config)
    sink = DatabaseSink(config, database, metrics=Metrics(shared_dir=argv[0] if argv else ""),
                        telemetry=exporter)
    alerts.watch(config, database)  # a thread of its own; the database makes posts once
    try:
        sink.run(reader)
    finally:
        database.close()
        exporter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
