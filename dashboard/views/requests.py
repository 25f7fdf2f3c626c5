"""Requests: the filtered list with live updates, one request in detail, exports."""
import dataclasses
import datetime
import json
import re
import time

from flask import Blueprint, abort, current_app, render_template, request, url_for

from common.models import utcnow

from .. import render
from ..exporting import csv_chunks, download, json_chunks
from ..params import parse_int, request_filter
from ..queries import requests as q
from . import respond

bp = Blueprint("requests", __name__)
_REQUEST_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
EXPORT_DEFAULT, EXPORT_MAX = 10_000, 1_000_000


TEXT_SEARCH_DAYS = 7
MENU_TTL_S = 60


def _public(row):
    return {c: row.get(c) for c in q.COLUMNS}


def bounded(flt):
    """A text search scans rows, so without `since` it covers the last TEXT_SEARCH_DAYS."""
    if flt.q and not q.is_id_like(flt.q) and flt.since is None:
        return dataclasses.replace(flt, since=utcnow() - datetime.timedelta(days=TEXT_SEARCH_DAYS))
    return flt


def list_data(args, up_to_id=None):
    """The rows of one page of the requests list and the cursor of the next page."""
    flt = bounded(request_filter(args))
    rows, cursor = q.list_requests(flt, up_to_id=up_to_id)
    data = {"requests": [_public(r) for r in rows], "next": cursor}
    if flt.since and "since" not in flt.raw:
        data["searched_since"] = flt.since
    return flt, rows, data


def _menus():
    """Domains and models seen in the last 30 days, cached for a minute per process."""
    cache = current_app.extensions.setdefault("nexus_menus", {})
    now = time.monotonic()
    if cache.get("expires", 0) > now:
        return cache["menus"]
    since = utcnow() - datetime.timedelta(days=30)
    cache["menus"] = {"domains": q.distinct_values("domain", since),
                      "models": q.distinct_values("model", since)}
    cache["expires"] = now + MENU_TTL_S
    return cache["menus"]


@bp.get("/requests")
def index():
    """Newest first, filtered by query parameters, with a `before` cursor for older pages."""
    newest = q.max_id()  # read first: a row inserted meanwhile comes with the first poll
    flt, rows, data = list_data(request.args, up_to_id=newest)
    live_url = None if flt.before else url_for("requests.live", after=newest, **flt.raw)
    next_url = url_for("requests.index", before=data["next"], **flt.raw) if data["next"] else None
    return respond("requests/list.html", data, rows=data["requests"], filters=flt.raw,
                   searched_since=data.get("searched_since"),
                   live_url=live_url, next_url=next_url, menus=_menus(),
                   export_csv=url_for("requests.export", fmt="csv", **flt.raw),
                   export_json=url_for("requests.export", fmt="json", **flt.raw))


@bp.get("/requests/live")
def live():
    """Rows newer than `after` (htmx polls this), and a poller that continues from them."""
    flt = bounded(request_filter(request.args))
    if not request.args.get("after"):
        abort(400, description="after: the id of the last row seen is required")
    after = parse_int("after", request.args.get("after"), 0, 0, 2**63 - 1)
    rows = q.newer_requests(flt, after)
    if not rows:
        return "", 204
    live_url = url_for("requests.live", after=rows[0]["id"], **flt.raw)
    return render_template("requests/_live.html", rows=[_public(r) for r in rows], live_url=live_url)


@bp.get("/requests/export.<fmt>")
def export(fmt):
    """Every row of the current filter (up to `limit`), as a CSV or JSON download."""
    if fmt not in ("csv", "json"):
        abort(404)
    limit = parse_int("limit", request.args.get("limit"), EXPORT_DEFAULT, 1, EXPORT_MAX)
    flt = bounded(request_filter({k: v for k, v in request.args.items() if k != "limit"}))
    rows = q.iter_rows(flt, limit)
    chunks = csv_chunks(rows, q.COLUMNS) if fmt == "csv" else json_chunks(rows, q.COLUMNS)
    return download(chunks, fmt, f"requests-{utcnow():%Y%m%d-%H%M%S}")


def detail_row(request_id):
    """The row of `request_id`; 404 when unknown."""
    if not _REQUEST_ID.match(request_id):
        abort(404, description="No request has this id.")
    row = q.get_request(request_id)
    if row is None:
        abort(404, description="No request has this id.")
    row.pop("id", None)
    return row


def detail_data(request_id):
    """The row, its bodies and headers (redacted); 404 when unknown."""
    row = detail_row(request_id)
    return {**row, **q.get_bodies(request_id, row["stream"])}


@bp.get("/requests/<request_id>")
def detail(request_id):
    """One request shown for a person: conversation, response, tokens, cost, timings."""
    data = detail_data(request_id)
    message = render.response_message(data["response_body"])
    view = render.conversation(data["request_body"], message)
    usage = _usage(data)
    prices = current_app.extensions["nexus_prices"]
    cost = prices.price(data["model"], usage) if usage else None
    return respond("requests/detail.html", data, row=data, view=view, message=message, cost=cost,
                   related=q.related(data), raw_request=render.pretty(data["request_body"]),
                   raw_response=render.pretty(data["response_body"]),
                   usage=usage)


def _usage(row):
    try:
        usage = json.loads(row["usage_data"]) if row.get("usage_data") else None
    except ValueError:
        return None
    return usage if isinstance(usage, dict) else None
