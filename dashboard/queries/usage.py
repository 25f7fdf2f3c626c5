"""Usage grouped by project, branch, developer, session, sub-agent or model (/api/usage).

Read from the hourly aggregates, whose key holds each of these (common/recording/
aggregates.py): one scan of the range grouped by the key and the model, since the
cache savings need each model's prices. '' in the aggregates is a request without the
trait; it is reported as the key null.
"""
import datetime
from decimal import Decimal

import peewee as pw

from common.models import HourlyUsage

from .stats import day_of, plain

H = HourlyUsage
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


def _add(into, values, savings):
    for name, value in zip(SUMS, values):
        value = plain(value)
        if name == "cost_usd":  # None: unpriced (nothing known), kept apart from 0
            into[name] = value if into[name] is None else into[name] + (value or 0)
        else:
            into[name] += value or 0
    if savings is not None:
        into["cache_savings_usd"] = (into["cache_savings_usd"] or 0) + savings


def _finish(key, sums):
    prompt = (sums["input_tokens"] + sums["cache_read_input_tokens"]
              + sums["cache_creation_input_tokens"])
    out = {"key": key or None, **sums}
    out["cost_usd"] = round(sums["cost_usd"], 6) if sums["cost_usd"] is not None else None
    out["cache_hit_rate"] = sums["cache_read_input_tokens"] / prompt if prompt else None
    savings = sums["cache_savings_usd"]
    out["cache_savings_usd"] = round(savings, 6) if savings is not None else None
    return out


def groups(rng, group_by, prices):
    """Every group of the range, biggest cost first (then most requests)."""
    column = getattr(H, GROUP_COLUMNS[group_by])
    fields = (column, H.model)
    query = _range(H.select(*fields, *_sums()), rng).group_by(*fields)
    return fold(query.tuples(), prices)


def fold(rows, prices):
    """Groups from (key, model, *SUMS) rows: pure. A cost of None (an unpriced model,
    where costs are kept null) adds nothing and stays None when nothing is known."""
    found = {}
    for key, model, *values in rows:
        into = found.setdefault(key or "", dict.fromkeys(SUMS, 0) | {"cost_usd": None,
                                                                     "cache_savings_usd": None})
        cache_read = plain(values[SUMS.index("cache_read_input_tokens")]) or 0
        _add(into, values, cache_savings(prices, model, cache_read) if cache_read else None)
    out = [_finish(key, sums) for key, sums in found.items()]
    out.sort(key=lambda g: (-(g["cost_usd"] or 0), -g["requests"], g["key"] or ""))
    return out


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
