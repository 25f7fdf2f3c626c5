"""The JSON API of the contract: the pages' data builders, behind the same auth."""
from flask import Blueprint, Response, abort, jsonify, request

from ..exporting import csv_chunks, download
from ..params import stats_range
from ..queries import requests as rq
from ..queries import stats as sq
from ..queries.storage import storage
from . import alerts, conversations, limits, requests, tokens
from . import search as search_view
from . import usage as usage_view

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/requests")
def list_requests():
    """`{"requests": [...], "next": cursor}`, or the same rows as CSV with format=csv."""
    _, _, data = requests.list_data(request.args)
    if request.args.get("format") == "csv":
        rows = ([r[c] for c in rq.COLUMNS] for r in data["requests"])
        return download(csv_chunks(rows, rq.COLUMNS), "csv", "requests")
    return jsonify(data)


@bp.get("/requests/<request_id>")
def request_detail(request_id):
    """The row plus bodies and redacted headers."""
    return jsonify(requests.detail_data(request_id))


@bp.get("/requests/<request_id>/raw/<any(request, response):which>")
def raw(request_id, which):
    """The request body exactly as the client sent it, or the response as it received it."""
    row = requests.detail_row(request_id)
    found = rq.raw_body(request_id, which, row["stream"])
    if found is None:
        abort(404, description=f"The {which} body of this request was not kept.")
    data, content_type, exact = found
    response = Response(data, content_type=content_type)
    # The bytes are the client's, type included: never let a browser run them here.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = f'inline; filename="{request_id}-{which}"'
    if not exact:
        response.headers["X-Nexus-Exact"] = "false"  # stored as text before pieces existed
    return response


@bp.get("/conversations")
def list_conversations():
    """Recently active conversations with their sums."""
    return jsonify(conversations.list_data(request.args))


@bp.get("/conversations/<conversation_id>")
def conversation_detail(conversation_id):
    """Requests, branches and sub-tasks of one conversation."""
    return jsonify(conversations.detail_data(conversation_id))


@bp.get("/stats")
def stats():
    """Totals, per-model, per-domain and per-hour-or-day series for a range."""
    rng = stats_range(request.args)
    return jsonify({**sq.stats(rng), "storage": storage(rng)})


@bp.get("/token-usage")
def token_usage():
    """Per-account token windows and rate-limit status."""
    return jsonify(tokens.usage_data(request.args))


@bp.get("/alerts")
def list_alerts():
    """`{"alerts_file", "error", "rules": [...], "firings": [...]}`: rules and recent firings."""
    return jsonify(alerts.alerts_data(request.args))


@bp.get("/limits")
def limits_():
    """Per credential: status, windows, burn rate and projected exhaustion."""
    return jsonify(limits.api_data())


@bp.get("/usage")
def usage():
    """Sums per project, branch, developer, session, sub-agent or model, biggest cost first."""
    return jsonify(usage_view.usage_data(request.args))


@bp.get("/search")
def search():
    """`{"results": [{"request_id", "conversation_id", "timestamp", "snippet"}]}`, newest first."""
    return jsonify(search_view.search_data(request.args))
