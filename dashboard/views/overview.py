"""The overview: cards and charts from the hourly aggregates."""
import datetime

from flask import Blueprint, render_template, request, url_for

from common.models import utcnow

from ..params import stats_range
from ..queries import requests as rq
from ..queries import stats as sq
from ..queries.storage import storage
from . import respond

bp = Blueprint("overview", __name__)
RANGES = (("24h", "Last 24 hours"), ("3d", "Last 3 days"), ("7d", "Last 7 days"),
          ("30d", "Last 30 days"))


EPOCH = datetime.datetime(1970, 1, 1)


def unix(moment):
    """A naive UTC datetime as Unix seconds, the x of uPlot."""
    return int((moment - EPOCH).total_seconds())


def buckets(rng):
    """Every point of the range, oldest first: each hour, or each UTC day beyond three days."""
    if rng.hourly:
        step, moment = datetime.timedelta(hours=1), rng.since.replace(minute=0, second=0, microsecond=0)
    else:
        step, moment = datetime.timedelta(days=1), datetime.datetime.combine(rng.since.date(), datetime.time())
    out = []
    while moment < rng.until:
        out.append(moment)
        moment += step
    return out


def _spread(values_by_name, data_times, times):
    """{name: values at `data_times`} → {name: values at every time}, 0 where none."""
    out = {}
    for name, values in values_by_name.items():
        found = dict(zip(data_times, values))
        out[name] = [found.get(t, 0) for t in times]
    return out


def chart_data(data, rng):
    """Columns for the charts (uPlot wants one array per series, x in Unix seconds): every
    hour or day of the selected range, empty ones as zero (latency as a gap), and the x
    range the axis must show whatever the data holds."""
    points = {p["time"]: p for p in data["series"]}
    times = buckets(rng)

    def column(name, empty=0, pick=None):
        return [(pick or (lambda p: p[name]))(points[t]) if t in points else empty for t in times]

    data_times = [p["time"] for p in data["series"]]
    return {
        "x": [unix(t) for t in times],
        "x_min": unix(times[0]) if times else unix(rng.since), "x_max": unix(rng.until),
        "granularity": data["granularity"],
        "requests": column("requests"), "errors": column("errors"),
        "input": column("input_tokens"), "output": column("output_tokens"),
        "cache_read": column("cache_read_input_tokens"),
        "cache_write": column("cache_creation_input_tokens"),
        "cost": column("cost_usd"),
        "latency_p50": column(None, None, lambda p: p["latency_ms"]["p50"]),
        "latency_p95": column(None, None, lambda p: p["latency_ms"]["p95"]),
        "ttft_p50": column(None, None, lambda p: p["ttft_ms"]["p50"]),
        "ttft_p95": column(None, None, lambda p: p["ttft_ms"]["p95"]),
        "cost_by_model": _spread(data["cost_by_model"], data_times, times),
        "requests_by_domain": _spread(data["requests_by_domain"], data_times, times),
    }


@bp.get("/")
def index():
    """Totals, series by hour or day, and breakdowns by model, domain and type."""
    rng = stats_range(request.args)
    data = sq.stats(rng)
    data["storage"] = storage(rng)
    args = {k: v for k, v in request.args.items() if k not in ("fragment", "format")}
    cards_url = url_for("overview.index", fragment="cards", **args)
    if request.args.get("fragment") == "cards":  # htmx refreshes the cards every 30 s
        return render_template("overview/_cards.html", data=data, cards_url=cards_url)
    domains = rq.distinct_values("domain", utcnow() - datetime.timedelta(days=30))
    return respond("overview/index.html", data, charts=chart_data(data, rng), ranges=RANGES,
                   domains=domains, args=request.args, cards_url=cards_url)
