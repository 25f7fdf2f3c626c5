"""Totals and series for the overview and /api/stats, read from the hourly aggregates.

No page counts the raw table: HourlyUsage holds one row per hour, domain, model and
request type, so a week is at most a few thousand rows whatever the traffic.
"""
import datetime
import decimal

import peewee as pw

from common.models import HourlyUsage, histogram_columns

from ..histogram import summarise

H = HourlyUsage
SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cache_creation_input_tokens",
        "cache_read_input_tokens", "cost_usd", "duration_ms_sum")
HISTOGRAMS = tuple(histogram_columns("latency") + histogram_columns("ttft"))


def _hour_floor(when):
    return when.replace(minute=0, second=0, microsecond=0)


def _base(rng, *group, sums=SUMS):
    fields = [pw.fn.COALESCE(pw.fn.SUM(getattr(H, c)), 0).alias(c) for c in sums]
    query = H.select(*group, *fields).where(H.hour >= _hour_floor(rng.since), H.hour < rng.until)
    if rng.domain:
        query = query.where(H.domain == rng.domain)
    return query.group_by(*group) if group else query


def plain(value):
    """PostgreSQL sums bigints as numeric: back to int (or float) for JSON and maths."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _finish(row):
    row = {k: plain(v) for k, v in row.items()}
    row["cost_usd"] = round(row.get("cost_usd") or 0.0, 6)
    requests = row.get("requests") or 0
    row["error_rate"] = (row.get("errors") or 0) / requests if requests else 0.0
    row["avg_duration_ms"] = (row.get("duration_ms_sum") or 0) / requests if requests else None
    if "latency_inf" in row:
        row["latency_ms"] = summarise(row, "latency")
        row["ttft_ms"] = summarise(row, "ttft")
        for col in HISTOGRAMS:
            row.pop(col)
    return row


def totals(rng):
    """One dict of sums over the range, with error rate and latency percentiles."""
    row = _base(rng, sums=SUMS + HISTOGRAMS).dicts().first() or {}
    return _finish(row)


def _bucket(hour, hourly):
    if isinstance(hour, str):  # SQLite may hand back text
        hour = datetime.datetime.fromisoformat(hour)
    return hour if hourly else hour.replace(hour=0)


def series(rng):
    """Points over time (hourly up to three days, daily beyond), oldest first."""
    merged = {}
    for row in _base(rng, H.hour, sums=SUMS + HISTOGRAMS).dicts():
        key = _bucket(row.pop("hour"), rng.hourly)
        into = merged.setdefault(key, dict.fromkeys(SUMS + HISTOGRAMS, 0))
        for col, value in row.items():
            into[col] += plain(value) or 0
    return [{"time": key, **_finish(value)} for key, value in sorted(merged.items())]


def breakdown(rng, column, limit=20):
    """Sums grouped by `column` ("model", "domain" or "request_type"), largest cost first."""
    field = getattr(H, column)
    rows = [_finish(r) for r in _base(rng, field, sums=SUMS + HISTOGRAMS).dicts()]
    rows.sort(key=lambda r: (-r["cost_usd"], -r["requests"]))
    return rows[:limit]


def stats(rng):
    """Everything the overview shows, as plain data (also /api/stats)."""
    return {"since": rng.since, "until": rng.until, "domain": rng.domain,
            "granularity": "hour" if rng.hourly else "day", "totals": totals(rng),
            "series": series(rng), "by_model": breakdown(rng, "model"),
            "by_domain": breakdown(rng, "domain"), "by_type": breakdown(rng, "request_type")}
