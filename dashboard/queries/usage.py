"""Usage grouped by project, branch, developer, session, sub-agent or model (/api/usage).

Read from `api_usage_hourly_keys` (HourlyUsageByKey), whose key holds each of these
(common/recording/aggregates.py; the overview's narrower table does not): one scan of
the range grouped by the key and the model, since the cache savings need each model's
prices. '' in the aggregates is a request without the
trait; it is reported as the key null.
"""
import datetime
from decimal import Decimal

import peewee as pw

from common.models import HourlyUsageByKey

from .stats import day_of, plain

H = HourlyUsageByKey
# group_by value -> the aggregate (and api_requests) column holding it
GROUP_COLUMNS = {"project": "project", "branch": "git_branch", "developer": "developer",
                 "session": "session_id", "subagent": "subagent", "model": "model"}
TOKENS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
          "cache_read_input_tokens")
SUMS = ("requests",) + TOKENS + ("cost_usd",)
MILLION = Decimal(1_000_000)


def _range(query, rng):
    query = query.where(H.hour >= rng.since.replace(minute=0, second=0, microsecond=0),
                        H.hour < rng.until)
    return query.where(H.domain == rng.domain) if rng.domain else query


def _sums():
    return [pw.fn.SUM(getattr(H, c)).alias(c) for c in SUMS]


def cache_savings(prices, model, cache_read):
    """What `cache_read` tokens would have cost as input minus what they cost as cache
    reads; None for a model without a known price."""
    _, row = prices.lookup(model)
    if row is None:
        return None
    rate = Decimal(str(row.get("input") or 0)) - Decimal(str(row.get("cache_read") or 0))
    return float(cache_read * rate / MILLION)


def _finish(key, values, savings):
    sums = {name: plain(value) for name, value in zip(SUMS, values)}
    for name in SUMS[:-1]:
        sums[name] = sums[name] or 0
    prompt = (sums["input_tokens"] + sums["cache_read_input_tokens"]
              + sums["cache_creation_input_tokens"])
    cost = sums["cost_usd"]  # None: only unpriced requests (where costs are kept null)
    return {"key": key or None, **sums,
            "cost_usd": round(cost, 6) if cost is not None else None,
            "cache_hit_rate": sums["cache_read_input_tokens"] / prompt if prompt else None,
            "cache_savings_usd": round(savings, 6) if savings is not None else None}


def fold(rows, reads, prices):
    """Groups from (key, *SUMS) rows, in their order, and {key: [(model, cache reads)]}:
    pure. The savings of a group add up what its priced models saved; None when none
    of its models has a price."""
    out = []
    for key, *values in rows:
        parts = [cache_savings(prices, model, plain(count) or 0)
                 for model, count in reads.get(key or "", ()) if count]
        known = [p for p in parts if p is not None]
        out.append(_finish(key, values, sum(known) if known else None))
    return out


def groups(rng, group_by, prices, limit=1000):
    """(the `limit` groups of the range with the biggest cost, then most requests;
    whether more were left out). Sorted and cut in SQL, so that a month of sessions
    costs one grouped scan, and the per-model cache reads the savings need are read for
    the groups returned only."""
    column = getattr(H, GROUP_COLUMNS[group_by])
    order = (pw.fn.COALESCE(pw.fn.SUM(H.cost_usd), 0).desc(), pw.fn.SUM(H.requests).desc(), column)
    query = _range(H.select(column, *_sums()), rng).group_by(column).order_by(*order)
    rows = list(query.limit(limit + 1).tuples())
    truncated, rows = len(rows) > limit, rows[:limit]
    keys = [row[0] for row in rows]
    if group_by == "model":
        return fold(rows, {r[0]: [(r[0], r[1 + SUMS.index("cache_read_input_tokens")])]
                           for r in rows}, prices), truncated
    reads = {}
    for start in range(0, len(keys), 500):
        query = (_range(H.select(column, H.model, pw.fn.SUM(H.cache_read_input_tokens)), rng)
                 .where(column.in_(keys[start:start + 500])).group_by(column, H.model))
        for key, model, count in query.tuples():
            reads.setdefault(key, []).append((model, count))
    return fold(rows, reads, prices), truncated


def series(rng, group_by, keys):
    """{key: cost per point} for `keys` (a few groups), every point of the range present
    (hours up to three days, else days; a point without traffic is 0)."""
    if not keys:
        return [], {}
    column = getattr(H, GROUP_COLUMNS[group_by])
    bucket = H.hour if rng.hourly else day_of(H.hour)
    wanted = [k or "" for k in keys]
    query = (_range(H.select(column, bucket.alias("point"), pw.fn.SUM(H.cost_usd)), rng)
             .where(column.in_(wanted)).group_by(column, bucket))
    cells = {}
    for key, point, cost in query.tuples():
        point = datetime.datetime.fromisoformat(point) if isinstance(point, str) else point
        cells[(key or "", point.replace(tzinfo=None))] = plain(cost) or 0
    points = _points(rng)
    return points, {key: [cells.get((key or "", p), 0) for p in points] for key in keys}


def _points(rng):
    step = datetime.timedelta(hours=1) if rng.hourly else datetime.timedelta(days=1)
    start = rng.since.replace(minute=0, second=0, microsecond=0)
    if not rng.hourly:
        start = start.replace(hour=0)
    points = []
    while start < rng.until:
        points.append(start)
        start += step
    return points
