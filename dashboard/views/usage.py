"""Usage by project, branch, developer, session, sub-agent or model (docs/analytics.md)."""
import datetime

from flask import Blueprint, current_app, request, url_for

from common.models import utcnow

from ..params import BadParameter, parse_int, stats_range
from ..queries import requests as rq
from ..queries import usage as uq
from . import respond

bp = Blueprint("usage", __name__)
GROUP_BY = tuple(uq.GROUP_COLUMNS)
DEFAULT_GROUP = "project"
TOP_SERIES = 8
RANGES = (("24h", "Last 24 hours"), ("3d", "Last 3 days"), ("7d", "Last 7 days"),
          ("30d", "Last 30 days"))


def group_by(args):
    """The `group_by` parameter, checked."""
    value = (args.get("group_by") or DEFAULT_GROUP).strip()
    if value not in GROUP_BY:
        raise BadParameter(f"group_by: expected one of {', '.join(GROUP_BY)}, got {value!r}")
    return value


def usage_data(args):
    """`{"group_by", "since", "until", "domain", "groups": [...], "truncated"}` (/api/usage)."""
    rng = stats_range(args)
    by = group_by(args)
    limit = parse_int("limit", args.get("limit"), 1000, 1, 100_000)
    found, truncated = uq.groups(rng, by, current_app.extensions["nexus_prices"], limit)
    return {"group_by": by, "since": rng.since, "until": rng.until, "domain": rng.domain,
            "groups": found, "truncated": truncated}


def chart_data(args, data):
    """Cost per point of the range for the top groups (uPlot columns, x in Unix seconds)."""
    keys = [g["key"] for g in data["groups"][:TOP_SERIES]]
    rng = stats_range(args)
    points, series = uq.series(rng, data["group_by"], keys)
    epoch = datetime.datetime(1970, 1, 1)
    unix = lambda moment: int((moment - epoch).total_seconds())  # noqa: E731
    return {"x": [unix(p) for p in points],
            "x_min": unix(points[0]) if points else unix(rng.since), "x_max": unix(rng.until),
            "granularity": "hour" if rng.hourly else "day",
            "cost_by_group": {_label(k): v for k, v in series.items()}}


def _label(key):
    return "(none)" if key is None else key


def requests_link(by, key, args):
    """The request list filtered to one group over the same range; None for the null key."""
    if key is None:
        return None
    kept = {k: args[k] for k in ("since", "until", "domain") if args.get(k)}
    return url_for("requests.index", **{by: key}, **kept)


@bp.get("/usage")
def index():
    """The page: a group-by switch, cost over time of the top groups, and the table."""
    data = usage_data(request.args)
    if request.args.get("format") == "json":
        return respond("usage/index.html", data)
    args = {k: v for k, v in request.args.items() if k not in ("format", "group_by")}
    switch = [(by, url_for("usage.index", group_by=by, **args)) for by in GROUP_BY]
    links = [requests_link(data["group_by"], g["key"], request.args) for g in data["groups"]]
    domains = rq.distinct_values("domain", utcnow() - datetime.timedelta(days=30))
    return respond("usage/index.html", data, charts=chart_data(request.args, data),
                   switch=switch, rows=list(zip(data["groups"], links)), ranges=RANGES,
                   domains=domains, args=request.args)
