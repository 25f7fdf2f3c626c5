"""The scenarios: what load each one sends and what it reads back from the worker.

Every scenario takes a running `Target` and returns one result dict: latency or
time-to-first-byte percentiles (ms), requests, errors, requests/s, the worker's
CPU time per request and resident memory, and, for the proxy, the recording
writer's figures from /metrics (sampled during the load and until the backlog drains).
"""
import asyncio
import time
from dataclasses import dataclass, field

from bench import metrics, procs, stats, streams, wrk

SCENARIOS = ("small_c1", "small_c50", "small_c200", "stream_200", "open_streams", "body_1mb",
             "body_300kb")
PATH = "/v1/messages"


@dataclass(frozen=True)
class Settings:
    """How long and how hard each scenario runs."""
    duration: float = 1.0          # seconds of load per round of a timed scenario (wrk: whole s)
    rounds: int = 5                # rounds, the targets taking turns, so noise hits all alike
    warmup: float = 1.0            # seconds of c=50 load before a target's first scenario
    open_streams: int = 1000
    open_interval_ms: float = 500.0
    open_events: int = 10          # 10 events 500 ms apart: streams stay open ~4.5 s
    stream_events: int = 200
    stream_first_ms: float = 2.0
    stream_interval_ms: float = 1.0  # asyncio's timers round to whole milliseconds anyway
    drain_timeout: float = 30.0
    long_duration: float = 10.0    # seconds of the one-round 300 KB load (does the writer keep up?)


@dataclass
class Target:
    """Something to measure, already started: a baseline or the proxy."""
    name: str
    port: int
    worker_pid: int
    recording: str | None = None   # None for baselines; "off", "sqlite" or "postgresql"
    has_metrics: bool = False
    count_rows: object = None       # () -> rows in api_requests, for recording targets
    notes: dict = field(default_factory=dict)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{PATH}"


@dataclass(frozen=True)
class Files:
    """Request bodies on disk (wrk reads its body from a file)."""
    small: str
    small_stream: bytes
    big: str
    claude_code: str = ""          # a 300 KB Claude Code-shaped body


def run(name, target, settings, files):
    """Run scenario `name` against `target`; the result dict."""
    load = {"small_c1": lambda: _wrk(target, files.small, 1, settings),
            "small_c50": lambda: _wrk(target, files.small, 50, settings),
            "small_c200": lambda: _wrk(target, files.small, 200, settings),
            "stream_200": lambda: _stream(target, files.small_stream, settings),
            "open_streams": lambda: _open(target, files.small_stream, settings),
            "body_1mb": lambda: _wrk(target, files.big, 1, settings),
            "body_300kb": lambda: _wrk(target, files.claude_code, 1, settings,
                                       settings.long_duration)}[name]
    return {"scenario": name, "target": target.name, "recording": target.recording,
            **_measured(target, load, settings)}


def warm_up(target, files, settings):
    """A short burst so pools, caches and the database are warm before timing."""
    if settings.warmup > 0:
        wrk.run(target.url, files.small, 50, settings.warmup)


def _helpers_cpu(target):
    """{pid: CPU seconds} of the worker's child processes (the proxy's record writer)."""
    found = {}
    for pid in procs.children(target.worker_pid):
        try:
            found[pid] = procs.cpu_seconds(pid)
        except OSError:
            continue
    return found


def settle(count_rows, timeout, expected=None, quiet=6.0):
    """(rows, monotonic time of the last new row) once `expected` rows are there, or no
    row arrived for `quiet` seconds (a writer commits a batch of 1 MB records at once)."""
    started = time.monotonic()
    rows, changed = count_rows(), started
    while (expected is None or rows < expected) and time.monotonic() - changed < quiet \
            and time.monotonic() - started < timeout:
        time.sleep(0.1)
        now_rows = count_rows()
        if now_rows != rows:
            rows, changed = now_rows, time.monotonic()
    return rows, changed


def _stored(target, rows_before, started, ended, requests, settings):
    """What reached the database: rows/s from the load's start to the last row, the
    records still unwritten when the load ended, and how long they took to land."""
    rows_at_end = target.count_rows()
    rows, last = settle(target.count_rows, settings.drain_timeout, rows_before + requests)
    stored = rows - rows_before
    return {"rows": stored, "expected": requests,
            "rows_per_s": stored / (last - started) if last > started else None,
            "unwritten_at_end": max(0, stored - (rows_at_end - rows_before)),
            "drain_s": max(0.0, last - ended)}


def _measured(target, load, settings):
    helpers_before = _helpers_cpu(target)
    cpu_before = procs.cpu_seconds(target.worker_pid)
    rows_before = target.count_rows() if target.count_rows else None
    sampler = metrics.Sampler(target.port) if target.has_metrics else None
    started = time.monotonic()
    if sampler:
        sampler.__enter__()
    try:
        result = load()
        ended = time.monotonic()
        elapsed = ended - started
        if target.count_rows:
            result["stored"] = _stored(target, rows_before, started, ended,
                                       result.get("requests") or 0, settings)
        if sampler:
            result["drain_s"] = _drain(target.port, settings.drain_timeout)
    finally:
        if sampler:
            sampler.__exit__(None, None, None)
    cpu = procs.cpu_seconds(target.worker_pid) - cpu_before
    helpers = _helpers_cpu(target)
    count = result.get("requests") or 0
    result.update(load_s=elapsed, cpu_s=cpu, cpu_ms_per_request=cpu * 1000 / count if count else None,
                  rss_mb=result.get("rss_mb") or procs.rss_bytes(target.worker_pid) / 2**20)
    if helpers:  # work the worker hands to its own processes still costs the machine
        helper_cpu = sum(t - helpers_before.get(p, 0.0) for p, t in helpers.items())
        result.update(helper_cpu_s=helper_cpu,
                      helper_cpu_ms_per_request=helper_cpu * 1000 / count if count else None,
                      helper_rss_mb=sum(procs.rss_bytes(p) for p in helpers) / 2**20)
    if sampler:
        result["writer"] = sampler.summary()
    return result


def _drain(port, timeout):
    """Seconds until the recording backlog is empty (None if it never empties)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        values = metrics.fetch(port)
        if values is None or not metrics.pick(values, metrics.BACKLOG):
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def _wrk(target, body_file, connections, settings, duration=None):
    summary = wrk.run(target.url, body_file, connections, duration or settings.duration)
    errors = sum(summary["errors"].values())
    return {"load": "wrk", "connections": connections, "requests": summary["requests"],
            "errors": errors, "requests_per_s": summary["requests_per_s"],
            "latency_ms": stats.wrk_latency_ms(summary)}


def _stream_headers(settings, events, interval_ms, first_ms):
    return {"x-bench-events": events, "x-bench-interval-ms": interval_ms, "x-bench-first-ms": first_ms}


def _stream(target, body, settings):
    headers = _stream_headers(settings, settings.stream_events, settings.stream_interval_ms,
                              settings.stream_first_ms)
    request = streams.request_bytes("127.0.0.1", target.port, PATH, body, headers)
    results = asyncio.run(streams.closed_loop("127.0.0.1", target.port, request, 1, settings.duration))
    summary = stats.stream_summary(results)
    return {"load": "streams", "connections": 1, "requests": summary["streams"],
            "errors": summary["errors"], "requests_per_s": summary["streams"] / settings.duration,
            **summary}


def _open(target, body, settings):
    headers = _stream_headers(settings, settings.open_events, settings.open_interval_ms, 20)
    request = streams.request_bytes("127.0.0.1", target.port, PATH, body, headers)
    idle_rss = procs.rss_bytes(target.worker_pid)

    async def observe():
        peak = 0
        for _ in range(5):
            peak = max(peak, procs.rss_bytes(target.worker_pid))
            await asyncio.sleep(0.2)
        return peak

    results, open_after, peak = asyncio.run(
        streams.hold_open("127.0.0.1", target.port, request, settings.open_streams, observe))
    summary = stats.stream_summary(results)
    return {"load": "open streams", "connections": settings.open_streams,
            "requests": summary["streams"], "errors": summary["errors"],
            "all_open_after_s": open_after, "idle_rss_mb": idle_rss / 2**20, "rss_mb": peak / 2**20,
            **summary}


_SUMMED = ("requests", "errors", "cpu_s", "helper_cpu_s", "load_s", "streams", "ok")
_MEDIAN_DICTS = ("latency_ms", "ttfb_ms", "gap_ms", "total_ms", "reported_overhead_ms")


def merge_rounds(rounds):
    """One result from the rounds of one scenario on one target.

    Counts and CPU time add up; requests/s and every percentile are the median
    over the rounds (a noisy round moves a median little); memory and the
    writer's figures are the largest seen.
    """
    if len(rounds) == 1:
        return {**rounds[0], "rounds": 1}
    merged = {**rounds[0], "rounds": len(rounds)}
    for key in _SUMMED:
        if key in merged:
            merged[key] = sum(r.get(key) or 0 for r in rounds)
    merged["requests_per_s"] = _median([r.get("requests_per_s") for r in rounds])
    for key in _MEDIAN_DICTS:
        if key in merged:
            merged[key] = {k: (sum(r[key].get(k) or 0 for r in rounds) if k == "n"
                               else _median([r[key].get(k) for r in rounds])) for k in merged[key]}
    merged["rss_mb"] = max(r.get("rss_mb") or 0 for r in rounds)
    count = merged.get("requests") or 0
    merged["cpu_ms_per_request"] = merged["cpu_s"] * 1000 / count if count else None
    if "helper_cpu_s" in merged:
        merged["helper_cpu_ms_per_request"] = merged["helper_cpu_s"] * 1000 / count if count else None
        merged["helper_rss_mb"] = max(r.get("helper_rss_mb") or 0 for r in rounds)
    stores = [r["stored"] for r in rounds if r.get("stored")]
    if stores:
        merged["stored"] = {k: (sum(x[k] or 0 for x in stores) if k in ("rows", "expected")
                                else _max([x.get(k) for x in stores])) for k in stores[0]}
    writers = [r["writer"] for r in rounds if r.get("writer")]
    if writers:
        merged["writer"] = {k: _max([w.get(k) for w in writers]) for k in writers[0]}
    merged["per_round"] = [{"requests_per_s": r.get("requests_per_s"),
                            "p50": (r.get("latency_ms") or r.get("ttfb_ms") or {}).get("p50"),
                            "p99": (r.get("latency_ms") or r.get("ttfb_ms") or {}).get("p99")}
                           for r in rounds]
    return merged


def _median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None
