"""The proxy's /metrics, sampled during a run: the recording writer's rows/s and backlog."""
import http.client
import re
import threading
import time

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")

# The proxy's series (proxy/metrics.py DEFINITIONS); the first name present wins.
WRITTEN = ("nexus_records_written_total",)
BACKLOG = ("nexus_recorder_queue_depth",)
SPOOLED = ("nexus_records_spooled_total",)


def parse(text):
    """{name: value} of a Prometheus text page, label sets summed per name."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match:
            try:
                values[match[1]] = values.get(match[1], 0.0) + float(match[3])
            except ValueError:
                continue
    return values


def pick(values, names):
    """The value of the first of `names` present, else None."""
    for name in names:
        if name in values:
            return values[name]
    return None


def fetch(port, timeout=2.0):
    """The parsed /metrics of the server on 127.0.0.1:port, or None."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        return parse(body) if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


class Sampler:
    """Polls /metrics in a thread; `summary()` gives writer rows/s and the largest backlog."""

    def __init__(self, port, every=0.25):
        self.port, self.every = port, every
        self.samples = []  # (monotonic seconds, parsed metrics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)

    def _run(self):
        while not self._stop.is_set():
            values = fetch(self.port)
            if values is not None:
                self.samples.append((time.monotonic(), values))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def summary(self):
        """Writer figures over the samples taken (None where the proxy has no such series)."""
        return summarize(self.samples)


def summarize(samples):
    """rows written, rows/s between the first and last write, largest backlog seen."""
    written = [(t, pick(v, WRITTEN)) for t, v in samples if pick(v, WRITTEN) is not None]
    backlog = [pick(v, BACKLOG) for _, v in samples if pick(v, BACKLOG) is not None]
    spooled = [pick(v, SPOOLED) for _, v in samples if pick(v, SPOOLED) is not None]
    out = {"rows_written": None, "rows_per_s": None, "backlog_max": max(backlog) if backlog else None,
           "spooled_max": max(spooled) if spooled else None, "samples": len(samples)}
    if len(written) >= 2:
        rows = written[-1][1] - written[0][1]
        # Time from the first sample to the last one that saw a new row: the writer's busy span.
        moving = [t for (t, n), (_, prev) in zip(written[1:], written) if n > prev]
        span = (moving[-1] - written[0][0]) if moving else 0.0
        out["rows_written"] = rows
        out["rows_per_s"] = rows / span if span > 0 else None
    return out
