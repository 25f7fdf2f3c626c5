"""Subscription limits per credential: the windows' last headers, burn rate, projection,
and the sessions that used the five-hour window most."""
import datetime

from flask import Blueprint

from common import limits
from common.models import utcnow

from ..queries import limits as lq
from . import respond

bp = Blueprint("limits", __name__)
FIVE_HOURS = datetime.timedelta(hours=5)


def api_data():
    """`{"limits": [...]}` of the contract."""
    return {"limits": limits.current_limits()}


def _window_start(entry, now):
    resets = entry["five_hour"]["resets_at"]
    if resets:
        start = datetime.datetime.fromisoformat(resets).replace(tzinfo=None) - FIVE_HOURS
        if start <= now:
            return start
    return now - FIVE_HOURS


def page_data(now=None):
    """The API's entries, each with the sessions that used its five-hour window most."""
    now = now or utcnow()
    data = api_data()
    for entry in data["limits"]:
        start = _window_start(entry, now)
        sessions, total = lq.top_sessions(*limits.usage_filter(entry["key"]), start)
        entry["window_usage"] = {"since": limits.iso(start), "sessions": sessions, "total": total}
    data["now"] = limits.iso(now)
    return data


@bp.get("/limits")
def index():
    """The page (JSON with ?format=json)."""
    return respond("limits/index.html", page_data())
