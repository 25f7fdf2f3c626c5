"""Totals and series for the overview and /api/stats, read from the hourly aggregates.

No page counts the raw table: HourlyUsage holds one row per hour, domain, model,
request type and account, so a month is tens of thousands of rows whatever the traffic. Two scans
of the range answer everything: one grouped by hour and model (with the latency
histograms), one by domain and request type (sums only); Python folds them into
totals, series and breakdowns. A range of daily points reads its whole days from
DailyUsage (the same sums per UTC day) and only its partial first and last days from the
hours: a month of some 280 columns is then 30 rows per key, not 720 (ADR 0093).
"""
import datetime
import decimal

import peewee as pw

from common.models import DailyUsage, HourlyUsage, histogram_columns

from ..histogram import summarise

H, D = HourlyUsage, DailyUsage
DAY = datetime.timedelta(days=1)
SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cache_creation_input_tokens",
        "cache_read_input_tokens", "cost_usd", "unpriced", "duration_ms_sum")
HISTOGRAMS = tuple(histogram_columns("latency") + histogram_columns("ttft"))


def plain(value):
    """PostgreSQL sums bigints as numeric: back to int (or float) for JSON and maths."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def day_of(field):
    """The day of a timestamp column, in SQL: date_trunc on PostgreSQL, a prefix on SQLite."""
    if isinstance(H._meta.database.obj, pw.PostgresqlDatabase):
        return pw.fn.date_trunc("day", field)
    return pw.fn.substr(field, 1, 10)  # SQLite stores 'YYYY-MM-DD HH:MM:SS'


def _segments(rng):
    """[(table, its time column, from, to)] covering the range: whole days from the daily
    table when the points are days, the hours around them from the hourly one."""
    start = rng.since.replace(minute=0, second=0, microsecond=0)
    if rng.hourly:
        return [(H, H.hour, start, rng.until)]
    first = start if start.hour == 0 else start.replace(hour=0) + DAY
    last = rng.until.replace(hour=0, minute=0, second=0, microsecond=0)
    if first >= last:
        return [(H, H.hour, start, rng.until)]
    return [(H, H.hour, start, first), (D, D.day, first, last), (H, H.hour, last, rng.until)]


def _scan(rng, group, sums):
    """Rows of `group` (a function of a table's time column and the table: the columns to
    group by) and the `sums`, over the range's segments."""
    for table, time, lower, upper in _segments(rng):
        if lower >= upper:
            continue
        fields = [pw.fn.SUM(getattr(table, c)).alias(c) for c in sums]
        columns = group(table, time)
        query = table.select(*columns, *fields).where(time >= lower, time < upper)
        if rng.domain:
            query = query.where(table.domain == rng.domain)
        yield from query.group_by(*columns).tuples()


def _fold(into, key, values):
    """Add a row's sums to `into[key]` (a list); PostgreSQL's Decimals add up as they are."""
    target = into.get(key)
    into[key] = values if target is None else [a + b for a, b in zip(target, values)]


def _dicts(groups, columns):
    return {key: {c: plain(v) for c, v in zip(columns, values)} for key, values in groups.items()}


def _finish(row):
    row = dict(row)
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


def _time(value):
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def _ranked(groups, name, limit=20):
    rows = [{name: key, **_finish(sums)} for key, sums in groups.items()]
    rows.sort(key=lambda r: (-r["cost_usd"], -r["requests"]))
    return rows[:limit]


TOP_SERIES = 8


def _split_series(cells, points, top):
    """{name: [value per point]} for the `top` names with the largest totals."""
    totals = {}
    for (name, _), value in cells.items():
        totals[name] = totals.get(name, 0) + value
    names = sorted(totals, key=lambda n: -totals[n])[:top]
    return {name: [plain(cells.get((name, point), 0)) for point in points] for name in names}


def stats(rng):
    """Everything the overview shows, as plain data (also /api/stats)."""
    columns = SUMS + HISTOGRAMS
    cost_at, requests_at = columns.index("cost_usd"), SUMS.index("requests")
    total, series, by_model, model_cost = {}, {}, {}, {}
    # Daily points are grouped in SQL: a month is then ~150 rows to fold, not ~3,500.
    def bucket(table, time):
        return (time if rng.hourly or table is D else day_of(time)).alias("point")

    for point, model, *values in _scan(rng, lambda t, time: (bucket(t, time), t.model), columns):
        values, point = [v or 0 for v in values], _time(point)
        _fold(total, "all", values)
        _fold(series, point, values)
        _fold(by_model, model, values)
        model_cost[(model, point)] = model_cost.get((model, point), 0) + values[cost_at]
    by_domain, by_type, domain_requests = {}, {}, {}
    def group(table, time):
        return bucket(table, time), table.domain, table.request_type

    for point, domain, request_type, *values in _scan(rng, group, SUMS):
        values, point = [v or 0 for v in values], _time(point)
        _fold(by_domain, domain, values)
        _fold(by_type, request_type, values)
        key = (domain, point)
        domain_requests[key] = domain_requests.get(key, 0) + values[requests_at]
    points = sorted(series)
    total = _dicts(total, columns).get("all") or dict.fromkeys(columns, 0)
    return {"since": rng.since, "until": rng.until, "domain": rng.domain,
            "granularity": "hour" if rng.hourly else "day", "totals": _finish(total),
            "series": [{"time": key, **_finish(value)}
                       for key, value in sorted(_dicts(series, columns).items())],
            "cost_by_model": _split_series(model_cost, points, TOP_SERIES),
            "requests_by_domain": _split_series(domain_requests, points, TOP_SERIES),
            "by_model": _ranked(_dicts(by_model, columns), "model"),
            "by_domain": _ranked(_dicts(by_domain, SUMS), "domain"),
            "by_type": _ranked(_dicts(by_type, SUMS), "request_type")}
