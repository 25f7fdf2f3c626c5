"""Token usage per account: the rolling window (5 hours by default), 7 and 30 days,
daily totals, and the upstream's rate-limit status."""
import datetime

from flask import Blueprint, request

from common import ratelimits
from common.models import utcnow
from common.recording.aggregates import hour_of

from ..params import parse_int
from ..queries import tokens as tq
from . import respond

bp = Blueprint("tokens", __name__)
EMPTY = dict.fromkeys(tq.TOKEN_COLUMNS + ("requests", "cost_usd", "total_tokens"), 0)


def _add(into, sums):
    for key, value in sums.items():
        into[key] = into.get(key, 0) + (value or 0)


def usage_data(args, now=None):
    """Per account: window sums (raw rows), 7/30-day sums and daily totals (aggregates),
    all exact per account."""
    now = now or utcnow()
    hours = parse_int("window_hours", args.get("window_hours"), 5, 1, 24 * 7)
    only = (args.get("account_id") or "").strip() or None
    window = tq.raw_window(now - datetime.timedelta(hours=hours), only)
    # 7 and 30 days start at the top of the hour 7 (30) days ago: the aggregates' grain.
    start = hour_of(now - datetime.timedelta(days=30))
    accounts = {}
    for (day, account), sums in sorted(tq.daily_by_account(start, only).items()):
        entry = accounts.setdefault(account, {"days": {}, "last_7d": {}, "last_30d": {}})
        _add(entry["days"].setdefault(day, {}), sums)
        _add(entry["last_30d"], sums)
    for account, sums in tq.hours_by_account(hour_of(now - datetime.timedelta(days=7)), only).items():
        _add(accounts.setdefault(account, {"days": {}, "last_7d": {}, "last_30d": {}})["last_7d"], sums)
    # Every day of the range, so that the chart's gaps are days without traffic.
    days = [start.date() + datetime.timedelta(days=n) for n in range((now.date() - start.date()).days + 1)]
    out = []
    for account in sorted(set(accounts) | set(window)):
        entry = accounts.get(account, {"days": {}, "last_7d": {}, "last_30d": {}})
        latest = tq.latest_ratelimit(account, now - datetime.timedelta(days=7))
        out.append({
            "account_id": account, "window": window.get(account, dict(EMPTY)),
            "last_7d": _finish(entry["last_7d"]), "last_30d": _finish(entry["last_30d"]),
            "daily": [{"date": day.isoformat(), **_finish(entry["days"].get(day, {}))}
                      for day in days],
            "ratelimit": ({"timestamp": latest["timestamp"],
                           **(ratelimits.summarise(latest["headers"]) or {}),
                           "headers": latest["headers"]} if latest else None),
        })
    return {"now": now, "window_hours": hours, "accounts": out}


def _finish(sums):
    out = {**EMPTY, **sums}
    out["total_tokens"] = sum(out[c] for c in tq.TOKEN_COLUMNS)
    out["cost_usd"] = round(out["cost_usd"], 6)
    return out


def daily_chart(account):
    """The daily chart's columns: one bar per day of the 30 (empty days 0), x in Unix seconds."""
    days = [datetime.datetime.fromisoformat(d["date"]) for d in account["daily"]]
    epoch = datetime.datetime(1970, 1, 1)
    x = [int((day - epoch).total_seconds()) for day in days]
    return {"x": x, "x_min": x[0] if x else None,
            "x_max": x[-1] + 86400 if x else None, "granularity": "day",
            "tokens": [d["total_tokens"] for d in account["daily"]],
            "cost": [d["cost_usd"] for d in account["daily"]]}


@bp.get("/token-usage")
def index():
    """The page."""
    data = usage_data(request.args)
    charts = [daily_chart(a) for a in data["accounts"]]
    return respond("tokens/index.html", data, charts=charts)
