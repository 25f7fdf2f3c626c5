"""Subscription limits per credential, read from `ratelimit_samples` (never api_requests).

`latest_utilization(since)` is what alert rules read; `current_limits()` is the data of
`GET /api/limits` (shared/CONTRACT.md): per key the last headers, the burn rate and the
projected exhaustion (common/burn_rate.py). The table is small by construction
(common/recording/ratelimit_samples.py), so both read it whole for the keys they need.
"""
import datetime

import peewee as pw

from . import burn_rate
from .models import RateLimitSample

S = RateLimitSample
FIELDS = ("key", "timestamp", "last_seen", "request_id", "auth_hash", "status",
          "representative_claim", "five_hour_utilization", "five_hour_resets_at",
          "five_hour_status", "seven_day_utilization", "seven_day_resets_at", "seven_day_status",
          "headers")


def _samples(since=None):
    """key → its samples (dicts), oldest first; keys last seen before `since` left out."""
    query = S.select(*[getattr(S, f) for f in FIELDS]).order_by(S.key, S.timestamp, S.id)
    out = {}
    for row in query.dicts().iterator():
        out.setdefault(row["key"], []).append(row)
    if since is not None:
        out = {k: v for k, v in out.items() if max(s["last_seen"] for s in v) >= since}
    return out


def newest_samples(since=None):
    """key → its newest sample (a dict), through the (key, timestamp) index; keys last
    seen before `since` left out."""
    newest = (S.select(S.key, pw.fn.MAX(S.timestamp).alias("at")).group_by(S.key)
              .alias("newest"))
    query = (S.select(*[getattr(S, f) for f in FIELDS])
             .join(newest, on=((S.key == newest.c.key) & (S.timestamp == newest.c.at))))
    if since is not None:
        query = query.where(S.last_seen >= since)
    out = {}
    for row in query.dicts():
        if row["key"] not in out or row["last_seen"] > out[row["key"]]["last_seen"]:
            out[row["key"]] = row
    return out


def latest_utilization(since=None):
    """{key: {"five_hour": fraction or None, "seven_day": …}} from each key's newest sample,
    for keys seen at or after `since` (naive UTC): what alert rules compare."""
    return {key: {w: row[f"{w}_utilization"] for w in burn_rate.WINDOWS}
            for key, row in newest_samples(since).items()}


def iso(moment):
    """A naive UTC datetime as ISO 8601 with its zone, or None."""
    return moment.replace(tzinfo=datetime.timezone.utc).isoformat() if moment else None


def _window(newest, name, projection):
    rate, when = projection
    return {"utilization": newest[f"{name}_utilization"],
            "resets_at": iso(newest[f"{name}_resets_at"]),
            "status": newest[f"{name}_status"],
            "burn_rate_per_hour": _round(rate), "projected_exhausted_at": iso(when)}


def _round(rate):
    return round(rate, 6) if rate is not None else None


def limit_of(key, samples, min_span=burn_rate.MIN_SPAN):
    """One entry of /api/limits from a key's samples (oldest first)."""
    samples = sorted(samples, key=lambda s: (s["timestamp"], s["last_seen"]))
    newest = samples[-1]
    projections = {w: burn_rate.project(samples, w, min_span) for w in burn_rate.WINDOWS}
    window, rate, when = burn_rate.headline(projections, newest["representative_claim"])
    return {"key": key, "status": newest["status"],
            "representative_claim": newest["representative_claim"],
            **{w: _window(newest, w, projections[w]) for w in burn_rate.WINDOWS},
            "burn_rate_per_hour": _round(rate), "projected_exhausted_at": iso(when),
            "projection_window": window, "as_of": iso(newest["last_seen"]),
            "request_id": newest["request_id"]}


def current_limits(since=None, min_span=burn_rate.MIN_SPAN):
    """Every key's entry, the most recently seen first."""
    entries = [limit_of(key, samples, min_span) for key, samples in _samples(since).items()]
    return sorted(entries, key=lambda e: e["as_of"], reverse=True)


def usage_filter(key):
    """(column name, value) that selects a key's rows in api_requests."""
    if key.startswith("sha256:"):
        found = (S.select(S.auth_hash).where(S.key == key, S.auth_hash.is_null(False))
                 .order_by(S.timestamp.desc()).limit(1).scalar())
        return "auth_hash", found
    return "account_id", key
