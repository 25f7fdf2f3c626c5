"""Records that could not reach the database wait on disk, in append-only files.

Each process appends JSON lines to a file of its own (`<host>-<pid>-<n>.jsonl`
in NEXUS_SPOOL_DIR), holding an exclusive `flock` on it while it is open for
appending. `replay()` takes every file nobody holds (a closed file, or one left
by a process that died, kill -9 included: the kernel drops its lock), saves
its records and deletes it. Saving is idempotent by `request_id`, so a replay
cut short and run again stores each record once. A torn last line (a crash
mid-write) is skipped with a log line. When the disk is full, `append()` logs
one clear line and returns how many records it did store whole; the proxy keeps
serving. Replay reads a file a batch at a time, so a large spool never has to
fit in memory.
"""
import base64
import datetime
import fcntl
import itertools
import json
import logging
import os
import socket
import time

from common.logs import event

from .green import real_lock

log = logging.getLogger("nexus.spool")

_counter = itertools.count(1)


TAGS = ("$b64", "$dt", "$dict")


def encode(record):
    """One JSON line for a record: bytes as base64, datetimes as ISO text.

    A value that is itself a one-key dict named like a tag (a client may send a header
    called `$b64`) is wrapped in `{"$dict": ...}`, so that decoding gives it back as the
    dict it was and never mistakes it for an encoded value.
    """
    out = {}
    for key, value in record.items():
        if isinstance(value, (bytes, bytearray)):
            value = {"$b64": base64.b64encode(value).decode("ascii")}
        elif isinstance(value, datetime.datetime):
            value = {"$dt": value.isoformat()}
        elif isinstance(value, dict) and len(value) == 1 and next(iter(value)) in TAGS:
            value = {"$dict": value}
        out[key] = value
    return json.dumps(out, separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line):
    """The record a line of `encode()` holds."""
    record = json.loads(line)
    for key, value in record.items():
        if isinstance(value, dict) and len(value) == 1:
            if "$b64" in value:
                record[key] = base64.b64decode(value["$b64"])
            elif "$dt" in value:
                record[key] = datetime.datetime.fromisoformat(value["$dt"])
            elif "$dict" in value:
                record[key] = value["$dict"]
    return record


class Spool:
    """Append-only spool files in one directory, shared by every process."""

    def __init__(self, directory, lock_factory=None):
        self.directory = directory
        self._fd = None
        self._path = None
        self._lock = lock_factory() if lock_factory else real_lock()
        self._last_complaint = 0.0

    def append(self, records):
        """Write `records` to this process's file; how many of them are on disk whole.

        Fewer than len(records) only when the disk refused the rest (it is full).
        """
        lines = [encode(r) for r in records]
        data = b"".join(lines)
        written = 0
        with self._lock:
            try:
                if self._fd is None:
                    self._open()
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    written += n
                    view = view[n:]
                return len(records)
            except OSError as exc:
                # A torn line stays at the end of this file; later records start a new one.
                self._close()
                stored = _whole_lines(lines, written)
                self._complain(exc, len(records) - stored)
                return stored

    def _open(self):
        os.makedirs(self.directory, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}-{next(_counter)}.jsonl"
        path = os.path.join(self.directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd, self._path = fd, path

    def _complain(self, exc, count):
        now = time.monotonic()
        if now - self._last_complaint >= 10:  # one line per ten seconds, not one per request
            self._last_complaint = now
            event(log, "spool write failed: records are being lost", logging.ERROR,
                  records=count, directory=self.directory, reason=os.strerror(exc.errno or 0),
                  hint="free space in NEXUS_SPOOL_DIR or bring the database back")

    def rotate(self):
        """Close this process's file so that replay() may take it."""
        with self._lock:
            self._close()

    def _close(self):
        if self._fd is not None:
            os.close(self._fd)  # also drops the flock
            self._fd = self._path = None

    def backlog(self):
        """(files, bytes) waiting in the spool."""
        files = size = 0
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if entry.name.endswith(".jsonl"):
                        files += 1
                        size += entry.stat().st_size
        except OSError:
            pass
        return files, size

    def replay(self, save, batch_size=200, batch_bytes=8 << 20):
        """Save every unheld spool file's records with `save(list)`; return how many.

        Batches hold at most `batch_size` records and stop growing past `batch_bytes`.
        """
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".jsonl"))
        except OSError:
            return 0
        total = 0
        for name in names:
            path = os.path.join(self.directory, name)
            if path != self._path:
                total += self._replay_file(path, save, batch_size, batch_bytes)
        return total

    def _replay_file(self, path, save, batch_size, batch_bytes):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0  # another process replayed it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # still being written, or another process is replaying it
            if os.fstat(fd).st_nlink == 0:
                return 0  # replayed and deleted between our listdir and our lock
            count = 0
            with os.fdopen(os.dup(fd), "rb") as f:
                for batch in _batches(_read_records(f, path), batch_size, batch_bytes):
                    save(batch)  # raises: the file stays, and saving again is idempotent
                    count += len(batch)
            os.unlink(path)
            event(log, "spool replayed", file=os.path.basename(path), records=count)
            return count
        finally:
            os.close(fd)


def _whole_lines(lines, written):
    """How many of `lines` lie whole within the first `written` bytes."""
    count = 0
    for line in lines:
        written -= len(line)
        if written < 0:
            break
        count += 1
    return count


def _batches(records, batch_size, batch_bytes):
    batch, size = [], 0
    for record, line_size in records:
        batch.append(record)
        size += line_size
        if len(batch) >= batch_size or size >= batch_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _read_records(f, path):
    """(record, line length) of each readable line."""
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            yield decode(line), len(line)
        except (ValueError, KeyError, TypeError, RecursionError):
            event(log, "spool line unreadable, skipped", logging.WARNING,
                  file=os.path.basename(path), line=number)
