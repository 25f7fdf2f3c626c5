"""How fast a subscription window fills, and when it will be full. Pure.

The API sends each window's utilization as a 0-1 fraction, rounded, on every response
(`anthropic-ratelimit-unified-5h-utilization`, `-7d-…`). The burn rate is the
least-squares slope of the recent samples of the window's current period (the samples
whose reset time is the newest one's: a reset starts the count again). A single step of
the API's rounding over a few minutes says little, so until the samples span
MIN_SPAN, three distinct values are needed before there is a rate (docs/limits.md).
"""
import datetime

WINDOWS = ("five_hour", "seven_day")
# How far back the burn rate looks: the recent past, in proportion to the window.
LOOKBACK = {"five_hour": datetime.timedelta(hours=1), "seven_day": datetime.timedelta(hours=24)}
# Reset times of one period can differ by a few seconds between responses.
RESET_TOLERANCE = datetime.timedelta(minutes=5)
MIN_SPAN = datetime.timedelta(minutes=10)
HOUR = datetime.timedelta(hours=1)


def _same_period(reset, newest_reset):
    if reset is None or newest_reset is None:
        return reset is newest_reset
    return abs(reset - newest_reset) <= RESET_TOLERANCE


def window_points(samples, window, lookback=None):
    """[(time, utilization)] of `window`'s current period within its lookback, oldest first.

    `samples` are dicts (oldest first) with `timestamp` (first seen), `last_seen` and the
    window's `<window>_utilization` and `<window>_resets_at`; the newest sample also counts
    at its `last_seen`, so that a flat spell since the last change slows the rate.
    """
    usable = [s for s in samples if s.get(f"{window}_utilization") is not None]
    if not usable:
        return []
    newest = usable[-1]
    start = newest["last_seen"] - (lookback or LOOKBACK[window])
    reset = newest.get(f"{window}_resets_at")
    points = [(s["timestamp"], s[f"{window}_utilization"]) for s in usable
              if s["timestamp"] >= start and _same_period(s.get(f"{window}_resets_at"), reset)]
    if newest["last_seen"] > newest["timestamp"]:
        points.append((newest["last_seen"], newest[f"{window}_utilization"]))
    return sorted(points)


def burn_rate_per_hour(points, min_span=MIN_SPAN):
    """Utilization per hour (>= 0) fitted to `points`, or None when there is too little data."""
    if len(points) < 2:
        return None
    span = points[-1][0] - points[0][0]
    if span <= datetime.timedelta(0):
        return None
    if len({u for _, u in points}) < 3 and span < min_span:
        return None
    origin = points[0][0]
    xs = [(t - origin) / HOUR for t, _ in points]
    ys = [u for _, u in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
    return max(0.0, slope)


def exhaustion_at(utilization, rate, at, resets_at):
    """When a window at `utilization` at time `at` reaches 100 % burning `rate` per hour;
    `at` itself when it is full already; None when it resets first or does not rise."""
    if utilization is None:
        return None
    if utilization >= 1.0:
        return at
    if not rate or rate <= 0:
        return None
    when = at + datetime.timedelta(hours=(1.0 - utilization) / rate)
    if resets_at is not None and when >= resets_at:
        return None
    return when


def project(samples, window, min_span=MIN_SPAN):
    """(burn rate per hour, projected exhaustion) of `window` from its samples."""
    points = window_points(samples, window)
    if not points:
        return None, None
    newest = [s for s in samples if s.get(f"{window}_utilization") is not None][-1]
    rate = burn_rate_per_hour(points, min_span)
    utilization = newest[f"{window}_utilization"]
    # A full window ran out when the value was first seen; a filling one from the last sight.
    at = newest["timestamp"] if utilization >= 1.0 else newest["last_seen"]
    return rate, exhaustion_at(utilization, rate, at, newest.get(f"{window}_resets_at"))


def headline(projections, claim):
    """(window, rate, projection) the summary shows: the window that runs out first, else
    the one the API names as binding (`representative_claim`), else the five-hour one."""
    running_out = [(p[1], w) for w, p in projections.items() if p[1] is not None]
    if running_out:
        window = min(running_out)[1]
    else:
        window = claim if claim in projections else "five_hour"
    rate, when = projections.get(window, (None, None))
    return window, rate, when
