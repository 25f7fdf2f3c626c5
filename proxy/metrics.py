"""Prometheus metrics that add up across gunicorn workers.

Each worker counts in a plain dict (a few hundred nanoseconds per request) and
every second, off the hot path, writes a snapshot to `<dir>/<pid>.json` in a
directory the gunicorn master made before forking. A scrape, which lands on any
one worker, first writes that worker's snapshot, then sums every file:
counters and histograms of workers that have exited are kept (so totals never
go backwards), gauges count only live workers. Outside gunicorn (no directory)
a process reports its own numbers.
"""
import bisect
import itertools
import json
import os
import shutil
import tempfile

from .green import real_lock

# name: (type, help); histograms are in seconds
DEFINITIONS = {
    "nexus_requests_total": ("counter", "Requests answered, by method and status."),
    "nexus_request_duration_seconds": ("histogram", "Arrival to last byte sent."),
    "nexus_overhead_seconds": ("histogram", "Time the proxy spent before the upstream call."),
    "nexus_first_byte_seconds": ("histogram", "Arrival to the upstream's first body byte."),
    "nexus_upstream_errors_total": ("counter", "Upstream calls that failed, by kind."),
    "nexus_upstream_retries_total": ("counter", "Upstream calls retried."),
    "nexus_client_disconnects_total": ("counter", "Responses cancelled by the client."),
    "nexus_records_written_total": ("counter", "Records saved to the database."),
    "nexus_records_sent_total": ("counter", "Records a worker handed to its writer process."),
    "nexus_records_spooled_total": ("counter", "Records written to the spool."),
    "nexus_records_replayed_total": ("counter", "Spooled records saved after the database came back."),
    "nexus_records_lost_total": ("counter", "Records that could be neither saved nor spooled."),
    "nexus_body_bytes_received_total": ("counter", "Body bytes recorded: requests as sent, "
                                        "responses as received."),
    "nexus_body_bytes_stored_total": ("counter", "Bytes storing them added to the database "
                                      "(new pieces, recipes, responses, headers; compressed)."),
    "nexus_in_flight_requests": ("gauge", "Requests being answered now."),
    "nexus_recorder_queue_depth": ("gauge", "Records waiting for the writer."),
    "nexus_recorder_queue_bytes": ("gauge", "Bytes of records held in memory for the writer."),
    "nexus_database_up": ("gauge", "1 when the writer's last database call worked."),
    "nexus_spool_backlog_bytes": ("gauge", "Bytes waiting in the spool."),
}
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_LE = tuple(repr(b) for b in BUCKETS) + ("+Inf",)
# Gauges a scrape passes in that describe the answering process only: they replace that
# process's own value and are summed with the others'. Any other extra gauge (the spool
# backlog, one directory for all) replaces the sum.
PER_PROCESS_GAUGES = frozenset({"nexus_in_flight_requests", "nexus_recorder_queue_depth",
                                "nexus_recorder_queue_bytes"})
# Gauges that are the lowest of the live processes' values (each writer process says
# whether the database answered it; the sum would count writers).
LOWEST_GAUGES = frozenset({"nexus_database_up"})
_temp_names = itertools.count(1)  # next() is atomic under the GIL: a name per flush

_shared_dir = None


def prepare_shared_dir():
    """Make the directory workers share (call in the gunicorn master, before forking)."""
    global _shared_dir
    _shared_dir = tempfile.mkdtemp(prefix="nexus-metrics-")
    return _shared_dir


def remove_shared_dir():
    """Remove the shared directory (the master, on exit)."""
    if _shared_dir:
        shutil.rmtree(_shared_dir, ignore_errors=True)


class Metrics:
    """One process's counters, gauges and histograms."""

    def __init__(self, shared_dir=None):
        self.shared_dir = shared_dir if shared_dir is not None else _shared_dir
        self.counters = {}   # (name, labels) -> float
        self.gauges = {}
        self.buckets = {}    # (name, labels) -> [count per bucket..., +Inf]
        self.sums = {}
        self._flushing = real_lock()  # the writer thread and a scrape may flush at once

    def inc(self, name, labels="", amount=1.0):
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def set(self, name, value, labels=""):
        self.gauges[(name, labels)] = value

    def observe(self, name, seconds, labels=""):
        key = (name, labels)
        counts = self.buckets.get(key)
        if counts is None:
            counts = self.buckets[key] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[key] = self.sums.get(key, 0.0) + seconds

    def snapshot(self):
        """This process's values as JSON-ready lists (dict copies are atomic under the GIL)."""
        return {"pid": os.getpid(),
                "counters": [[n, l, v] for (n, l), v in self.counters.copy().items()],
                "gauges": [[n, l, v] for (n, l), v in self.gauges.copy().items()],
                "histograms": [[n, l, list(c), self.sums.get((n, l), 0.0)]
                               for (n, l), c in self.buckets.copy().items()]}

    def flush(self):
        """Write this process's snapshot for the other workers' scrapes."""
        if not self.shared_dir:
            return
        path = os.path.join(self.shared_dir, f"{os.getpid()}.json")
        tmp = f"{path}.{next(_temp_names)}.tmp"
        # The lock keeps the order of snapshots taken and files replaced the same, so a
        # slower, older snapshot never replaces a newer one (counters would go back).
        with self._flushing:
            try:
                with open(tmp, "w") as f:
                    json.dump(self.snapshot(), f)
                os.replace(tmp, path)
            except BaseException:
                _remove(tmp)
                raise

    def render(self, extra_gauges=()):
        """Prometheus text for every worker, plus `extra_gauges` ((name, labels, value), ...).

        Extra gauges named in PER_PROCESS_GAUGES are this process's own values (added to
        the other processes'); the others replace the total.
        """
        shared = []
        for name, labels, value in extra_gauges:
            if name in PER_PROCESS_GAUGES:
                self.set(name, value, labels)
            else:
                shared.append((name, labels, value))
        snapshots = [self.snapshot()]
        if self.shared_dir:
            self.flush()
            snapshots = list(_read_snapshots(self.shared_dir))
        return render(merge(snapshots, shared))


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_snapshots(directory):
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            try:
                with open(os.path.join(directory, name)) as f:
                    yield json.load(f)
            except (OSError, ValueError):
                continue  # a worker mid-write or gone: its previous file is replaced atomically


def merge(snapshots, extra_gauges=()):
    """Sum snapshots: counters and histograms from every worker, gauges from live ones."""
    values, hists = {}, {}
    for snap in snapshots:
        for name, labels, value in snap["counters"]:
            values[(name, labels)] = values.get((name, labels), 0.0) + value
        if _alive(snap["pid"]):
            for name, labels, value in snap["gauges"]:
                old = values.get((name, labels))
                if old is None:
                    values[(name, labels)] = value
                elif name in LOWEST_GAUGES:
                    values[(name, labels)] = min(old, value)
                else:
                    values[(name, labels)] = old + value
        for name, labels, counts, total in snap["histograms"]:
            old = hists.get((name, labels))
            if old is None:
                hists[(name, labels)] = [list(counts), total]
            else:
                old[0] = [a + b for a, b in zip(old[0], counts)]
                old[1] += total
    for name, labels, value in extra_gauges:
        values[(name, labels)] = value
    return values, hists


def _number(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _sample(name, labels, value, extra=""):
    inner = ",".join(x for x in (labels, extra) if x)
    return f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"


def render(merged):
    """Prometheus text exposition (version 0.0.4) of merged values."""
    values, hists = merged
    lines = []
    for name, (kind, help_text) in DEFINITIONS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        if kind == "histogram":
            for (hname, labels), (counts, total) in sorted(hists.items()):
                if hname != name:
                    continue
                running = 0
                for le, count in zip(_LE, counts):
                    running += count
                    lines.append(_sample(f"{name}_bucket", labels, running, f'le="{le}"'))
                lines.append(_sample(f"{name}_sum", labels, total))
                lines.append(_sample(f"{name}_count", labels, running))
            continue
        samples = sorted((labels, v) for (n, labels), v in values.items() if n == name)
        if not samples and kind == "gauge":
            samples = [("", 0.0)]
        lines += [_sample(name, labels, v) for labels, v in samples]
    return "\n".join(lines) + "\n"
