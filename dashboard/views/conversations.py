"""Conversations: the most recently active, and one as a tree of branches and tasks."""
import re

from flask import Blueprint, abort, request, url_for

from .. import tree
from ..params import parse_int, parse_time
from ..queries import conversations as cq
from . import respond

bp = Blueprint("conversations", __name__)
_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
MAX_TASKS = 50


def list_data(args):
    """Conversations with their sums, newest activity first, and the next page's cursor."""
    limit = parse_int("limit", args.get("limit"), 50, 1, 200)
    before = parse_time("before", args.get("before"))
    domain = (args.get("domain") or "").strip() or None
    rows, cursor = cq.list_conversations(domain, limit, before)
    return {"conversations": rows, "next": cursor.isoformat() if cursor else None}


@bp.get("/conversations")
def index():
    """The list."""
    data = list_data(request.args)
    domain = request.args.get("domain") or None
    next_url = (url_for("conversations.index", before=data["next"], domain=domain)
                if data["next"] else None)
    return respond("conversations/list.html", data, domain=domain, next_url=next_url)


def _branches(requests):
    found = {}
    for row in requests:
        branch = found.setdefault(row["branch_id"] or "main", {
            "branch_id": row["branch_id"] or "main", "request_count": 0,
            "first_timestamp": row["timestamp"], "last_timestamp": row["timestamp"],
            "cost_usd": 0.0})
        branch["request_count"] += 1
        branch["last_timestamp"] = row["timestamp"]
        branch["cost_usd"] = round(branch["cost_usd"] + (row["cost_usd"] or 0), 6)
    return list(found.values())


def detail_data(conversation_id):
    """Its requests (oldest first), branches, and sub-agent tasks; 404 when unknown."""
    if not _ID.match(conversation_id):
        abort(404, description="No conversation has this id.")
    requests = cq.conversation_requests(conversation_id)
    if not requests:
        abort(404, description="No conversation has this id.")
    return {"conversation_id": conversation_id, "requests": requests,
            "branches": _branches(requests), "subtasks": _tasks(conversation_id, requests)}


def _tasks(conversation_id, requests):
    """Sub-agent tasks spawned from this conversation, one per sub-agent branch.

    The recorder files a sub-agent under its caller's conversation (branch
    `subtask_…`, docs/conversations.md); a task stored as a conversation of its own
    (older data) is listed with all of its requests.
    """
    own = {r["request_id"] for r in requests}
    groups = {}
    for row in requests:
        if row["is_subtask"] and row["parent_task_request_id"] in own:
            groups.setdefault((conversation_id, row["branch_id"]), []).append(row)
    for row in cq.subtask_requests(list(own)):
        if row["request_id"] not in own and row["conversation_id"]:
            groups.setdefault((row["conversation_id"], None), None)
    tasks = []
    for (task_id, branch), rows in list(groups.items())[:MAX_TASKS]:
        rows = rows if rows is not None else cq.conversation_requests(task_id, limit=200)
        tasks.append({"conversation_id": task_id, "branch_id": branch or rows[0]["branch_id"],
                      "parent_task_request_id": rows[0]["parent_task_request_id"],
                      "request_count": len(rows), "requests": rows})
    return tasks


@bp.get("/conversations/<conversation_id>")
def detail(conversation_id):
    """The tree, the timeline and the list of requests."""
    data = detail_data(conversation_id)
    nodes = data["requests"] + [r for t in data["subtasks"] for r in t["requests"]
                                if t["conversation_id"] != conversation_id]
    totals = {k: sum(r[k] or 0 for r in data["requests"])
              for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                        "cache_creation_input_tokens", "cost_usd")}
    return respond("conversations/detail.html", data, tree=tree.tree(nodes),
                   timeline=tree.timeline(nodes), totals=totals)
