"""Hourly sums per domain, model, request type and account (`api_usage_hourly`), and per
domain, model and grouping key (`api_usage_hourly_keys`).

`api_usage_daily` holds the first's sums per UTC day: ranges of more than three days read
it for their whole days (a month of hours is 720 rows per key, each with some 280
columns; ADR 0093).

The overview, token and stats pages read the first; /api/usage the second, whose key holds
the grouping keys (project, git branch, developer, sub-agent, session; docs/analytics.md)
so that it sums hours, not rows ('' stands for none). Two tables, because a session in the
first's key tripled the rows the overview scans (ADR 0110). The writer adds to both in its
batch's transaction, one upsert statement per table (three, with the days).

Charts read these instead of raw rows, and they outlive `nexus retention`.
Latency and time to first token are histograms: `<prefix>_le_<ms>` counts the
requests above the previous bound and at most `<ms>`; `<prefix>_inf` the rest.
Buckets are not cumulative, so that a sum over hours is a sum of columns. The bounds
are log-spaced (`common.models.LATENCY_BUCKETS_MS`, ADR 0140), so that a percentile
read from them is within 5 % of the exact one. `cost_usd` sums the priced requests;
`unpriced` counts those whose model had no price (their `cost_usd` is null).
"""
import math
import datetime

import peewee as pw

from ..models import (DAILY_KEY, HOURLY_KEY, LATENCY_BUCKETS_MS, USAGE_KEY, ApiRequest, DailyUsage,
                      HourlyUsage, HourlyUsageByKey, histogram_columns)
from . import bulk

KEY = HOURLY_KEY
# The key columns read from api_requests as they are (after the hour), '' for NULL.
ROW_KEY = KEY[1:]
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                 "cache_read_input_tokens")
SUM_COLUMNS = (("requests", "errors") + TOKEN_COLUMNS + ("cost_usd", "unpriced", "duration_ms_sum")
               + tuple(histogram_columns("latency")) + tuple(histogram_columns("ttft")))
# api_usage_hourly_keys: only what /api/usage reads (no errors, no latency).
USAGE_SUM_COLUMNS = ("requests",) + TOKEN_COLUMNS + ("cost_usd",)
# Rebuilt in this order: the days are sums of the hours.
TABLES = (HourlyUsage, HourlyUsageByKey, DailyUsage)


def hour_of(moment):
    """The start of the hour holding `moment`."""
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment):
    """Midnight (UTC) of the day holding `moment`."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_column(prefix, ms):
    """The histogram column a duration of `ms` milliseconds is counted in."""
    for bound in LATENCY_BUCKETS_MS:
        if ms <= bound:
            return f"{prefix}_le_{bound}"
    return f"{prefix}_inf"


def is_error(row):
    """An error for the charts: a status of 400 or more, or an error the proxy saw."""
    return bool(row.get("error")) or (row.get("response_status") or 0) >= 400


def _increments(row):
    """(key, {column: increment}) of one row, naming only the columns it adds to: a row
    touches a dozen of the some 280 columns."""
    key = (hour_of(row["timestamp"]), *(row.get(name) or "" for name in ROW_KEY))
    inc = {"requests": 1, "errors": int(is_error(row)), "cost_usd": row.get("cost_usd") or 0.0,
           "unpriced": int(row.get("cost_usd") is None),
           "duration_ms_sum": row.get("duration_ms") or 0.0}
    for name in TOKEN_COLUMNS:
        inc[name] = row.get(name) or 0
    if row.get("duration_ms") is not None:
        inc[bucket_column("latency", row["duration_ms"])] = 1
    if row.get("first_token_ms") is not None:
        inc[bucket_column("ttft", row["first_token_ms"])] = 1
    return key, inc


def increments(row):
    """(key, {column: increment}) of one api_requests row (a dict), every column named."""
    key, inc = _increments(row)
    return key, {**dict.fromkeys(SUM_COLUMNS, 0), **inc}


def usage_increments(row):
    """(key, {column: increment}) of one api_requests row (a dict) in api_usage_hourly_keys."""
    key = (hour_of(row["timestamp"]), *(row.get(name) or "" for name in USAGE_KEY[1:]))
    inc = {name: row.get(name) or 0 for name in TOKEN_COLUMNS}
    inc.update(requests=1, cost_usd=row.get("cost_usd") or 0.0)
    return key, inc


def _totals(rows, increments_of, key_columns, sum_columns):
    totals = {}
    for row in rows:
        key, inc = increments_of(row)
        target = totals.get(key)
        if target is None:
            target = totals[key] = dict.fromkeys(sum_columns, 0)
        for name, value in inc.items():
            target[name] += value
    return [dict(zip(key_columns, key), **inc) for key, inc in totals.items()]


def add(rows, database=None):
    """Add rows (dicts) to their hours in both tables: one upsert per touched key, in
    statements of up to 100 keys (a writer's batch touches fewer: one statement a table)."""
    database = database or HourlyUsage._meta.database
    # Up to 100 keys a statement, fewer when the columns would pass SQLite's 32,766
    # parameters (there are some 280 columns with the histograms).
    chunk = max(1, min(100, 20_000 // (len(KEY) + len(SUM_COLUMNS))))
    totals = _totals(rows, _increments, KEY, SUM_COLUMNS)
    bulk.insert(database, HourlyUsage, totals, upsert=(KEY, touched(totals, SUM_COLUMNS)),
                chunk=chunk)
    days = _days(totals)
    bulk.insert(database, DailyUsage, days, upsert=(DAILY_KEY, touched(days, SUM_COLUMNS)),
                chunk=chunk)
    totals = _totals(rows, usage_increments, USAGE_KEY, USAGE_SUM_COLUMNS)
    bulk.insert(database, HourlyUsageByKey, totals,
                upsert=(USAGE_KEY, touched(totals, USAGE_SUM_COLUMNS)), chunk=100)


def _days(hour_totals):
    """The hourly totals folded into their days (api_usage_daily's rows)."""
    days = {}
    for total in hour_totals:
        key = (day_of(total["hour"]),) + tuple(total[c] for c in KEY[1:])
        target = days.get(key)
        if target is None:
            days[key] = {**dict(zip(DAILY_KEY, key)), **{c: total[c] for c in SUM_COLUMNS}}
        else:
            for c in SUM_COLUMNS:
                target[c] += total[c]
    return list(days.values())


def touched(totals, sum_columns):
    """The sum columns some total adds to. An existing hour's row is updated in only these:
    on PostgreSQL, setting all 280 columns of api_usage_hourly (most to themselves plus
    zero) took twice as long as the dozen a batch touches (docs/recording-performance.md)."""
    return tuple(c for c in sum_columns if any(total[c] for total in totals)) or sum_columns[:1]


def _hour_expression(database):
    if isinstance(getattr(database, "obj", None) or database, pw.PostgresqlDatabase):
        return pw.fn.date_trunc("hour", ApiRequest.timestamp)
    return pw.fn.strftime("%Y-%m-%d %H:00:00", ApiRequest.timestamp)


def _count_if(condition):
    return pw.fn.SUM(pw.Case(None, [(condition, 1)], 0))


def _histogram_sums(prefix, column):
    sums, lower = [], None
    for bound in LATENCY_BUCKETS_MS:
        condition = column <= bound if lower is None else ((column > lower) & (column <= bound))
        sums.append(_count_if(condition))
        lower = bound
    sums.append(_count_if(column > lower))
    return [s.alias(name) for s, name in zip(sums, histogram_columns(prefix))]


def _start(since, table=HourlyUsage):
    """Where a full rebuild starts: skip a first hour that retention already thinned."""
    if since is not None:
        return hour_of(since)
    first = ApiRequest.select(pw.fn.MIN(ApiRequest.timestamp)).scalar()
    if first is None:
        return None
    if isinstance(first, str):
        first = datetime.datetime.fromisoformat(first)
    start = hour_of(first)
    stored = (table.select(pw.fn.SUM(table.requests))
              .where(table.hour == start).scalar() or 0)
    present = (ApiRequest.select(pw.fn.COUNT(ApiRequest.id))
               .where(ApiRequest.timestamp >= start,
                      ApiRequest.timestamp < start + datetime.timedelta(hours=1)).scalar())
    return start + datetime.timedelta(hours=1) if stored > present else start


def _hourly_sums():
    return [
        pw.fn.COUNT(ApiRequest.id).alias("requests"),
        _count_if((ApiRequest.response_status >= 400) | ApiRequest.error.is_null(False)).alias("errors"),
        *[pw.fn.SUM(getattr(ApiRequest, c)).alias(c) for c in TOKEN_COLUMNS],
        pw.fn.COALESCE(pw.fn.SUM(ApiRequest.cost_usd), 0).alias("cost_usd"),
        _count_if(ApiRequest.cost_usd.is_null()).alias("unpriced"),
        pw.fn.COALESCE(pw.fn.SUM(ApiRequest.duration_ms), 0).alias("duration_ms_sum"),
        *_histogram_sums("latency", ApiRequest.duration_ms),
        *_histogram_sums("ttft", ApiRequest.first_token_ms)]


def _usage_sums():
    return [pw.fn.COUNT(ApiRequest.id).alias("requests"),
            *[pw.fn.COALESCE(pw.fn.SUM(getattr(ApiRequest, c)), 0).alias(c)
              for c in TOKEN_COLUMNS],
            pw.fn.COALESCE(pw.fn.SUM(ApiRequest.cost_usd), 0).alias("cost_usd")]


# table -> (its key, the sums it keeps, the SELECT expressions of those sums)
_SHAPES = {HourlyUsage: (KEY, SUM_COLUMNS, _hourly_sums),
           HourlyUsageByKey: (USAGE_KEY, USAGE_SUM_COLUMNS, _usage_sums)}


def _day_expression(database):
    if isinstance(getattr(database, "obj", None) or database, pw.PostgresqlDatabase):
        return pw.fn.date_trunc("day", HourlyUsage.hour)
    return pw.fn.strftime("%Y-%m-%d 00:00:00", HourlyUsage.hour)


def rebuild_days(database, since=None):
    """Recompute api_usage_daily from api_usage_hourly, the days from `since`'s on (default:
    every day). The hours are the source: they outlive retention, so every day is exact."""
    H = HourlyUsage
    day = _day_expression(database)
    select = H.select(day.alias("day"), *[getattr(H, c) for c in KEY[1:]],
                      *[pw.fn.SUM(getattr(H, c)).alias(c) for c in SUM_COLUMNS])
    delete = DailyUsage.delete()
    if since is not None:
        start = day_of(since)
        select, delete = select.where(H.hour >= start), delete.where(DailyUsage.day >= start)
    select = select.group_by(day, *[getattr(H, c) for c in KEY[1:]])
    fields = [getattr(DailyUsage, c) for c in DAILY_KEY + SUM_COLUMNS]
    with database.atomic():
        delete.execute()
        return DailyUsage.insert_from(select, fields).execute()


def rebuild_table(database, table, since=None):
    """Recompute one table's hours from `since` (default: all hours raw rows still cover);
    api_usage_daily's days from the hours."""
    if table is DailyUsage:
        return rebuild_days(database, since)
    start = _start(since, table)
    if start is None:
        return 0
    key, sums, expressions = _SHAPES[table]
    hour = _hour_expression(database)
    columns = key[1:]
    grouped = [pw.fn.COALESCE(getattr(ApiRequest, c), "") for c in columns]
    select = (ApiRequest.select(hour.alias("hour"), *[g.alias(c) for g, c in zip(grouped, columns)],
                                *expressions())
              .where(ApiRequest.timestamp >= start)
              .group_by(hour, *grouped))
    fields = [getattr(table, c) for c in key + sums]
    with database.atomic():
        table.delete().where(table.hour >= start).execute()
        return table.insert_from(select, fields).execute()


def rebuild(database, since=None, tables=TABLES):
    """Recompute both tables' hours from `since` (default: all hours raw rows still
    cover); return the rows written to the first. `tables`: a migration that runs before
    the later table exists names the ones its schema has."""
    with database.atomic():
        return [rebuild_table(database, table, since) for table in tables][0]


def histogram(row, prefix):
    """The bucket counts of one histogram from an HourlyUsage row or dict, in order."""
    get = row.get if isinstance(row, dict) else (lambda name: getattr(row, name))
    return [get(name) or 0 for name in histogram_columns(prefix)]


def percentile_from_histogram(counts, q):
    """The q-quantile (0 <= q <= 1) in ms, or None if empty: the geometric middle of the
    bucket that holds it, within 5 % of any value in the bucket above 10 ms (and half a
    millisecond below). One in the open last bucket is reported as the last bound.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be between 0 and 1, got {q}")
    total = sum(counts)
    if not total:
        return None
    # The rank of the quantile, as the nearest-rank definition counts it.
    target, seen, lower = max(1, math.ceil(q * total)), 0, 0.0
    for bound, count in zip(LATENCY_BUCKETS_MS, counts):
        if count and seen + count >= target:
            return math.sqrt(lower * bound) if lower else bound / 2
        seen += count
        lower = float(bound)
    return float(LATENCY_BUCKETS_MS[-1])


def rebuild_aggregates(database):
    """Recompute every hour the raw rows still cover, for a migration that changes the
    aggregates' columns or key (each such migration calls this once, last), in the
    hourly tables its schema has (a migration before `_i11_usage_by_key` has one)."""
    return rebuild(database, tables=[t for t in TABLES
                                     if database.table_exists(t._meta.table_name)])
