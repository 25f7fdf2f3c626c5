"""Full-text search over what was said: prompts, tool results, answers, tool inputs."""
from flask import Blueprint, request

from common.recording.search_text import query_words, snippet_parts

from ..params import BadParameter, parse_int, parse_time
from ..queries import search as sq
from . import respond

bp = Blueprint("search", __name__)
MAX_LIMIT = 100


def search_data(args):
    """`{"results": [...]}` for the query arguments q, limit, domain, since and until."""
    q = (args.get("q") or "").strip()
    if len(q) > 500:
        raise BadParameter("q: at most 500 characters")
    limit = parse_int("limit", args.get("limit"), 20, 1, MAX_LIMIT)
    since, until = parse_time("since", args.get("since")), parse_time("until", args.get("until"))
    if since and until and since >= until:
        raise BadParameter("since must be earlier than until")
    domain = (args.get("domain") or "").strip() or None
    return {"results": sq.search(query_words(q), limit, domain, since, until)}


@bp.get("/search")
def index():
    """The page: a search box and the matching requests, newest first."""
    data = search_data(request.args)
    hits = [dict(r, parts=snippet_parts(r["snippet"])) for r in data["results"]]
    return respond("search/index.html", data, hits=hits, words=query_words(request.args.get("q")))
