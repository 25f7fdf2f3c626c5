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


def chart_data(data):
    """Columns for the charts (uPlot wants one array per series, x in Unix seconds)."""
    epoch = datetime.datetime(1970, 1, 1)
    points = data["series"]
    return {
        "x": [int((p["time"] - epoch).total_seconds()) for p in points],
        "requests": [p["requests"] for p in points],
        "errors": [p["errors"] for p in points],
        "input": [p["input_tokens"] for p in points],
        "output": [p["output_tokens"] for p in points],
        "cache_read": [p["cache_read_input_tokens"] for p in points],
        "cache_write": [p["cache_creation_input_tokens"] for p in points],
        "cost": [p["cost_usd"] for p in points],
        "latency_p50": [p["latency_ms"]["p50"] for p in points],
        "latency_p95": [p["latency_ms"]["p95"] for p in points],
        "ttft_p50": [p["ttft_ms"]["p50"] for p in points],
        "ttft_p95": [p["ttft_ms"]["p95"] for p in points],
        "cost_by_model": data["cost_by_model"],
        "requests_by_domain": data["requests_by_domain"],
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
    return respond("overview/index.html", data, charts=chart_data(data), ranges=RANGES,
                   domains=domains, args=request.args, cards_url=cards_url)
