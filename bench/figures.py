"""From raw scenario results to the figures the issue asks for, and the targets met or missed.

Pure functions over the `runs` list that `bench.run` writes to the results file.
"""
from bench.stats import diff

RECORDING_ON = ("proxy-sqlite", "proxy-postgresql")

# Hand-written reasons, shown beside a target only while it is missed; they are
# the findings of docs/performance.md ("Why a target is missed"), kept short.
WHY = {
    "added_p50": "see 'Why a target is missed' in docs/performance.md",
    "added_p99": "with recording off the proxy meets it; with recording on, the writer process's "
                 "CPU shares this machine's two cores with the client, the stand-in and the worker "
                 "(a plain busy process does the same to recording off: python -m bench.neighbour)",
    "saturation": "with recording off the proxy reaches about two thirds of the relay: its own "
                  "work per request (request id, the client key's hash, the JSON check, metrics, "
                  "the record, the log line) costs about 0.1 ms of CPU over the relay's 0.28 ms",
    "ttfb_p50": "even the bare relay adds 0.6-1 ms to a stream's first byte here (its request "
                "path lands on the first byte); the proxy adds 0.2-0.3 ms over the relay",
    "rss_open": "see 'Why a target is missed' in docs/performance.md",
    "recording_cost": "see 'Why a target is missed' in docs/performance.md",
    "recording_cost_300kb": "see 'Why a target is missed' in docs/performance.md",
    "throughput_300kb": "see 'Why a target is missed' in docs/performance.md",
    "writer_keeps_up": "see 'Why a target is missed' in docs/performance.md",
}


def _index(runs):
    return {(r["target"], r["scenario"]): r for r in runs}


def _get(run, *keys):
    for key in keys:
        if run is None:
            return None
        run = run.get(key)
    return run


def _max_of(runs, name, *keys):
    values = [_get(r, *keys) for r in runs if r["target"] == name]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def _stored_share(runs, name):
    """Rows that reached the database per request answered (1.0: every request recorded)."""
    pairs = [(_get(r, "stored", "rows"), _get(r, "stored", "expected")) for r in runs
             if r["target"] == name and r.get("stored")]
    expected = sum(e or 0 for _, e in pairs)
    return sum(s or 0 for s, _ in pairs) / expected if expected else None


def per_target(runs):
    """{target: figures} for every target present in `runs`."""
    by = _index(runs)
    names = list(dict.fromkeys(r["target"] for r in runs))
    out = {}
    for name in names:
        proxy = name.startswith("proxy")

        def at(scenario, *keys, of=name):
            return _get(by.get((of, scenario)), *keys)
        rps = [v for v in (at("small_c50", "requests_per_s"), at("small_c200", "requests_per_s")) if v]
        writers = [at(s, "writer") for s in ("small_c1", "small_c50", "small_c200", "stream_200",
                                              "open_streams", "body_1mb", "body_300kb")]
        writers = [w for w in writers if w]
        out[name] = {
            "p50_c1_ms": at("small_c1", "latency_ms", "p50"),
            "p99_c1_ms": at("small_c1", "latency_ms", "p99"),
            "added_p50_c1_ms": diff(at("small_c1", "latency_ms", "p50"),
                                    at("small_c1", "latency_ms", "p50", of="straight")),
            "added_p99_c1_ms": diff(at("small_c1", "latency_ms", "p99"),
                                    at("small_c1", "latency_ms", "p99", of="straight")),
            "over_relay_p50_c1_ms": diff(at("small_c1", "latency_ms", "p50"),
                                         at("small_c1", "latency_ms", "p50", of="relay")) if proxy else None,
            "over_relay_ttfb_p50_ms": diff(at("stream_200", "ttfb_ms", "p50"),
                                           at("stream_200", "ttfb_ms", "p50", of="relay")) if proxy else None,
            "cpu_ms_per_stream": at("stream_200", "cpu_ms_per_request"),
            "added_ttfb_p50_ms": diff(at("stream_200", "ttfb_ms", "p50"),
                                      at("stream_200", "ttfb_ms", "p50", of="straight")),
            "added_ttfb_p99_ms": diff(at("stream_200", "ttfb_ms", "p99"),
                                      at("stream_200", "ttfb_ms", "p99", of="straight")),
            "gap_p99_ms": at("stream_200", "gap_ms", "p99"),
            "reported_overhead_p50_ms": at("stream_200", "reported_overhead_ms", "p50"),
            "added_p50_1mb_ms": diff(at("body_1mb", "latency_ms", "p50"),
                                     at("body_1mb", "latency_ms", "p50", of="straight")),
            "rps_saturation": max(rps) if rps else None,
            "cpu_ms_per_request": at("small_c50", "cpu_ms_per_request"),
            "helper_cpu_ms_per_request": at("small_c50", "helper_cpu_ms_per_request"),
            "rss_open_mb": at("open_streams", "rss_mb"),
            "open_ok": at("open_streams", "ok"),
            "rss_1mb_mb": at("body_1mb", "rss_mb"),
            "helper_rss_1mb_mb": at("body_1mb", "helper_rss_mb"),
            "helper_cpu_1mb_ms": at("body_1mb", "helper_cpu_ms_per_request"),
            "p50_300kb_ms": at("body_300kb", "latency_ms", "p50"),
            "p99_300kb_ms": at("body_300kb", "latency_ms", "p99"),
            "added_p50_300kb_ms": diff(at("body_300kb", "latency_ms", "p50"),
                                       at("body_300kb", "latency_ms", "p50", of="straight")),
            "rps_300kb": at("body_300kb", "requests_per_s"),
            "cpu_ms_300kb": at("body_300kb", "cpu_ms_per_request"),
            "helper_cpu_300kb_ms": at("body_300kb", "helper_cpu_ms_per_request"),
            "drain_300kb_s": at("body_300kb", "stored", "drain_s"),
            "stored_300kb": at("body_300kb", "stored", "rows"),
            "open_wanted": at("open_streams", "connections"),
            "stored_rows_per_s": _max_of(runs, name, "stored", "rows_per_s"),
            "unwritten_at_end": _max_of(runs, name, "stored", "unwritten_at_end"),
            "drain_s": _max_of(runs, name, "stored", "drain_s"),
            "stored_share": _stored_share(runs, name),
            "writer_rows_per_s": max((w["rows_per_s"] for w in writers if w.get("rows_per_s")),
                                     default=None),
            "backlog_max": max((w["backlog_max"] for w in writers if w.get("backlog_max") is not None),
                               default=None),
            "errors": sum(r.get("errors") or 0 for r in runs if r["target"] == name),
        }
    return out


def _goal(goal_id, text, limit, compare, values):
    checked = {}
    for target, value in values.items():
        met = None if value is None else compare(value, limit)
        checked[target] = {"value": value, "met": met}
    known = [c["met"] for c in checked.values() if c["met"] is not None]
    met = all(known) if known else None
    return {"id": goal_id, "text": text, "limit": limit, "per_target": checked, "met": met,
            "why": None if met in (True, None) else WHY.get(goal_id)}


def goals(figures):
    """The issue's targets, each with the measured values and met / missed."""
    on = [t for t in RECORDING_ON if t in figures]
    proxies = [t for t in ("proxy-off", *RECORDING_ON) if t in figures]
    relay_rps = figures.get("relay", {}).get("rps_saturation")
    le = lambda v, lim: v <= lim  # noqa: E731
    off = figures.get("proxy-off", {})
    return [
        _goal("added_p50", "added latency p50 at concurrency 1, recording on (ms)", 0.5, le,
              {t: figures[t]["added_p50_c1_ms"] for t in on}),
        _goal("added_p99", "added latency p99 at concurrency 1, recording on (ms)", 1.5, le,
              {t: figures[t]["added_p99_c1_ms"] for t in on}),
        _goal("saturation", "requests/s per worker at saturation, recording on, share of the bare relay's",
              0.8, lambda v, lim: v >= lim,
              {t: (figures[t]["rps_saturation"] / relay_rps
                   if relay_rps and figures[t]["rps_saturation"] else None) for t in on}),
        _goal("ttfb_p50", "added time to first byte p50, 200-event stream, concurrency 1 (ms)", 0.5, le,
              {t: figures[t]["added_ttfb_p50_ms"] for t in proxies}),
        _goal("rss_open", "resident memory of the worker with the open streams held (MB)", 150, lambda v, lim: v < lim,
              {t: figures[t]["rss_open_mb"] for t in proxies}),
        _goal("recording_cost", "recording on minus recording off, latency p50 at concurrency 1 (ms)",
              0.1, le, {t: diff(figures[t]["p50_c1_ms"], off.get("p50_c1_ms")) for t in on}),
        _goal("recording_cost_300kb", "recording on minus recording off, latency p50 of a 300 KB "
              "Claude Code body at concurrency 1 (ms)", 0.3, le,
              {t: diff(figures[t]["p50_300kb_ms"], off.get("p50_300kb_ms")) for t in on}),
        _goal("throughput_300kb", "requests/s of a 300 KB body at concurrency 1, recording on, "
              "share of recording off's", 0.7, lambda v, lim: v >= lim,
              {t: (figures[t]["rps_300kb"] / off["rps_300kb"]
                   if off.get("rps_300kb") and figures[t]["rps_300kb"] else None) for t in on}),
        _goal("writer_keeps_up", "seconds from the end of the 10 s 300 KB load to its last row",
              2.0, le, {t: figures[t]["drain_300kb_s"] for t in on}),
    ]
