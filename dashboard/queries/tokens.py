"""Token windows per account: rolling 5 hours, 7 and 30 days, daily totals, rate limits.

The 5-hour window sums raw rows through the (account_id, timestamp) index: it is
small and must be exact. Seven and thirty days and the daily totals come from the
hourly aggregates, which carry the account in their key: they are exact sums over
the rows from the start of the hour 7 (or 30) days ago (ADR 0053).
"""
import datetime
import json

import peewee as pw

from common.recording.aggregates import TOKEN_COLUMNS
from common.models import ApiRequest, HourlyUsage

from .stats import day_of, plain

A, H = ApiRequest, HourlyUsage
NO_ACCOUNT = "(no account)"


def _sums(model, *group):
    return [*group, pw.fn.COUNT(model.id).alias("requests") if model is A
            else pw.fn.SUM(H.requests).alias("requests"),
            *[pw.fn.SUM(getattr(model, c)).alias(c) for c in TOKEN_COLUMNS],
            pw.fn.SUM(model.cost_usd).alias("cost_usd")]


def _clean(row):
    out = {k: (plain(v) or 0) for k, v in row.items() if k in TOKEN_COLUMNS + ("requests", "cost_usd")}
    out["cost_usd"] = round(out["cost_usd"], 6)
    out["total_tokens"] = sum(out[c] for c in TOKEN_COLUMNS)
    return out


def raw_window(since, account_id=None):
    """Exact sums per account over rows at or after `since`."""
    # Grouping by an expression keeps SQLite on the timestamp range instead of walking
    # the whole (account_id, timestamp) index to avoid a sort.
    account = pw.fn.COALESCE(A.account_id, "")
    query = A.select(*_sums(A, account.alias("account_id"))).where(A.timestamp >= since)
    if account_id:
        query = query.where(A.account_id == account_id)
    return {row["account_id"] or NO_ACCOUNT: _clean(row)
            for row in query.group_by(account).dicts()}


def _account_filter(query, account_id):
    if account_id:
        query = query.where(H.account_id == ("" if account_id == NO_ACCOUNT else account_id))
    return query


def daily_by_account(since, account_id=None):
    """(date, account) → sums over the hours from `since`, from the aggregates, by day in SQL."""
    out = {}
    day = day_of(H.hour)
    query = _account_filter(H.select(*_sums(H, day.alias("day"), H.account_id))
                            .where(H.hour >= since), account_id)
    for row in query.group_by(day, H.account_id).dicts():
        value = row["day"]
        value = datetime.date.fromisoformat(value[:10]) if isinstance(value, str) else value.date()
        out[(value, row["account_id"] or NO_ACCOUNT)] = {
            c: plain(row[c]) or 0 for c in TOKEN_COLUMNS + ("requests", "cost_usd")}
    return out


def hours_by_account(since, account_id=None):
    """account → sums over the hours from `since` (an hour start), from the aggregates."""
    query = _account_filter(H.select(*_sums(H, H.account_id)).where(H.hour >= since), account_id)
    return {row["account_id"] or NO_ACCOUNT: {c: plain(row[c]) or 0
                                             for c in TOKEN_COLUMNS + ("requests", "cost_usd")}
            for row in query.group_by(H.account_id).dicts()}


def latest_ratelimit(account_id, since):
    """The newest stored anthropic-ratelimit-* headers of `account_id`, parsed, or None."""
    cond = A.account_id.is_null() if account_id == NO_ACCOUNT else A.account_id == account_id
    row = (A.select(A.timestamp, A.ratelimit)
           .where(cond, A.timestamp >= since, A.ratelimit.is_null(False))
           .order_by(A.timestamp.desc()).limit(1).tuples().first())
    if not row:
        return None
    try:
        headers = json.loads(row[1])
    except ValueError:
        return None
    return {"timestamp": row[0], "headers": headers if isinstance(headers, dict) else {}}
