"""Summaries of samples: percentiles in milliseconds, pure functions."""
import math


def percentile(values, q):
    """The q-th percentile (0-100) of `values`, nearest-rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds):
    """n, p50, p90, p99, max and mean of durations in seconds, given in milliseconds."""
    if not seconds:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90),
            "p99": percentile(ms, 99), "max": max(ms), "mean": sum(ms) / len(ms)}


def wrk_latency_ms(summary):
    """wrk's latency percentiles (microseconds) as the same shape as `summary_ms`."""
    lat = summary["latency_us"]
    return {"n": summary["requests"], "p50": lat["p50"] / 1000, "p90": lat["p90"] / 1000,
            "p99": lat["p99"] / 1000, "max": lat["max"] / 1000, "mean": lat["mean"] / 1000}


def stream_summary(results):
    """TTFB, per-event gaps and totals of stream exchanges, with failures counted."""
    good = [r for r in results if r.get("status") == 200 and r.get("ttfb") is not None]
    gaps = [g for r in good for g in r["gaps"]]
    # The proxy's own account of its cost (x-nexus-overhead-ms), to set beside ours.
    reported = [float(r["headers"]["x-nexus-overhead-ms"]) / 1000 for r in good
                if "x-nexus-overhead-ms" in r.get("headers", {})]
    return {"streams": len(results), "ok": len(good), "errors": len(results) - len(good),
            "events_per_stream": min((r["events"] for r in good), default=0),
            "ttfb_ms": summary_ms([r["ttfb"] for r in good]),
            "gap_ms": summary_ms(gaps),
            "total_ms": summary_ms([r["total"] for r in good]),
            "reported_overhead_ms": summary_ms(reported)}


def diff(a, b):
    """a - b, or None when either is missing."""
    return None if a is None or b is None else a - b
