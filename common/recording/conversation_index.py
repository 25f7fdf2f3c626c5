"""Conversation links: the rule book (`link`) and the rows it consults (`LinkIndex`).

`LinkIndex.prefetch` loads, in a handful of queries per batch, every earlier row a
batch could link to; the batch's own rows join the index as they are linked, so
that a batch may hold a parent and its child. The rules are explained, with
examples, in docs/conversations.md.
"""
import datetime
from collections import defaultdict

from .. import traits
import peewee as pw

from ..models import ApiRequest, TaskInvocation
from . import linking
from .rows import COMPACTION_TOOL_ID

MAIN_BRANCH = "main"
# A sub-agent starts seconds after its Task call; a day bounds accidental matches
# of a later, unrelated conversation that happens to open with the same prompt.
TASK_WINDOW = datetime.timedelta(hours=24)
# The session fallbacks look this far back; a session idle for longer starts afresh.
SESSION_WINDOW = datetime.timedelta(hours=24)
_SIDE_BRANCHES = ("subtask_", "compact_")
_CHUNK = 500

_FIELDS = (ApiRequest.id, ApiRequest.request_id, ApiRequest.domain, ApiRequest.timestamp,
           ApiRequest.conversation_id, ApiRequest.branch_id, ApiRequest.parent_request_id,
           ApiRequest.is_subtask, ApiRequest.parent_task_request_id,
           ApiRequest.current_message_hash, ApiRequest.session_id, ApiRequest.system_hash,
           ApiRequest.response_status, ApiRequest.error, ApiRequest.request_type,
           ApiRequest.subagent, ApiRequest.project, ApiRequest.git_branch, ApiRequest.developer)
# What a request without its own says is its parent's: a sub-agent's system prompt
# carries no git status, so its branch is the one of the request that spawned it.
INHERITED = ("project", "git_branch", "developer")


def _chunks(items):
    items = list(items)
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _ok(row):
    return not row.get("error") and (row.get("response_status") or 0) < 400


class LinkIndex:
    """Earlier rows by message hash, by parent, and Task calls by prompt hash."""

    def __init__(self, stored=True, horizon=None):
        # stored=False: link against the rows added here only (bench.seed links a whole
        # synthetic day in memory, with the same rules, before inserting it).
        # horizon: relink's (timestamp, id) of the last row it has relinked; a stored row
        # past it still holds the links relink is replacing, so it is not consulted (a
        # stale parent would hand its old conversation to its child). () means none yet.
        self._stored = stored
        self._horizon = horizon
        self._rows = {}
        self._by_hash = defaultdict(list)
        self._children = defaultdict(list)
        self._tasks = defaultdict(list)
        self._types = {}  # (request_id, tool_use_id) -> the Task call's subagent_type

    def _keep(self, row):
        if row["request_id"] in self._rows:
            return
        self._rows[row["request_id"]] = row
        if row.get("conversation_id"):
            self._by_hash[(row["domain"], row["current_message_hash"])].append(row)
            if row.get("parent_request_id"):
                self._children[row["parent_request_id"]].append(row)

    def _forget(self, row):
        for rows in (self._by_hash.get((row["domain"], row.get("current_message_hash"))),
                     self._children.get(row.get("parent_request_id"))):
            if rows:
                rows[:] = [r for r in rows if r is not row]

    def add(self, row, found):
        """Make a just-linked row (and the Task calls in its answer) visible to later rows."""
        stale = self._rows.pop(row["request_id"], None)
        if stale is not None and stale is not row:
            self._forget(stale)  # its stored copy (relink): the parent of later rows is this one
        self._keep(row)
        for tool_use_id, key in found.invocations:
            self._tasks[(row["domain"], key)].append(
                (row["timestamp"], row["request_id"], tool_use_id))
        for tool_use_id, kind in found.subagent_types.items():
            self._types[(row["request_id"], tool_use_id)] = kind

    def _visible(self, query):
        """The query limited to stored rows whose links can be trusted."""
        if self._horizon is None:
            return query
        if not self._horizon:
            return query.where(False)
        return query.where(pw.Tuple(ApiRequest.timestamp, ApiRequest.id) <= pw.Tuple(*self._horizon))

    def _fetch(self, *conditions):
        query = self._visible(ApiRequest.select(*_FIELDS))
        for condition in conditions:
            query = query.where(condition)
        for row in query.dicts():
            self._keep(row)

    def prefetch(self, items):
        """Load the stored rows that the (row, Features) pairs of a batch may link to."""
        if not self._stored:
            return
        domains = sorted({row["domain"] for row, _ in items})
        hashes = {h for row, found in items if row["request_type"] == "inference"
                  for h in linking.ancestor_hashes(found.hashes) if h}
        for chunk in _chunks(hashes):
            self._fetch(ApiRequest.current_message_hash.in_(chunk),
                        ApiRequest.conversation_id.is_null(False), ApiRequest.domain.in_(domains))
        parents = list(self._rows.values())
        for chunk in _chunks(parents):
            self._fetch(ApiRequest.conversation_id.in_({r["conversation_id"] for r in chunk}),
                        ApiRequest.parent_request_id.in_([r["request_id"] for r in chunk]))
        keys = {k for _, found in items for k in found.prompt_hashes + [found.continuation] if k}
        for chunk in _chunks(keys):
            query = TaskInvocation.select().where(TaskInvocation.prompt_hash.in_(chunk),
                                                  TaskInvocation.domain.in_(domains))
            for task in query:
                self._tasks[(task.domain, task.prompt_hash)].append(
                    (task.timestamp, task.request_id, task.tool_use_id))
                if task.subagent_type:
                    self._types.setdefault((task.request_id, task.tool_use_id), task.subagent_type)
        wanted = {rid for tasks in self._tasks.values() for _, rid, _ in tasks} - set(self._rows)
        for chunk in _chunks(wanted):
            self._fetch(ApiRequest.request_id.in_(chunk))

    def parent(self, row, hashes):
        """(request this one continues, how many requests back), nearest ancestor first."""
        for depth, key in enumerate(hashes):
            found = [r for r in self._by_hash.get((row["domain"], key), ())
                     if r["timestamp"] <= row["timestamp"] and r["request_id"] != row["request_id"]]
            if found:
                session = row.get("session_id")
                return max(found, key=lambda r: (
                    _ok(r), session is not None and r.get("session_id") == session,
                    r.get("system_hash") == row.get("system_hash"), r["timestamp"])), depth
        return None, None

    def branch(self, parent, row):
        """The parent's branch for its first child (or a retry of it); a new one otherwise."""
        siblings = [k for k in self._children.get(parent["request_id"], ())
                    if k["request_id"] != row["request_id"] and k["timestamp"] <= row["timestamp"]
                    and not (k["branch_id"] != parent["branch_id"]
                             and k["branch_id"].startswith(_SIDE_BRANCHES))]
        if not siblings:
            return parent["branch_id"]
        for sibling in siblings:
            if sibling["current_message_hash"] == row["current_message_hash"]:
                return sibling["branch_id"]
        return f"branch_{row['request_id'][:8]}"

    def task(self, row, keys, compaction=False):
        """The request whose answer made the Task call (or summary) matching `keys`."""
        return self.task_call(row, keys, compaction)[0]

    def subagent_type(self, request_id, tool_use_id):
        """The subagent_type of a Task call, when its answer was seen (else None)."""
        return self._types.get((request_id, tool_use_id))

    def row(self, request_id):
        """A row the index holds, or None."""
        return self._rows.get(request_id)

    def task_call(self, row, keys, compaction=False):
        """(request, tool_use_id) of the Task call (or summary) matching `keys`, or (None, None)."""
        found = []
        for key in keys:
            for at, request_id, tool_use_id in self._tasks.get((row["domain"], key), ()):
                if (tool_use_id == COMPACTION_TOOL_ID) != compaction or at > row["timestamp"]:
                    continue
                if at < row["timestamp"] - TASK_WINDOW or request_id not in self._rows:
                    continue
                if request_id != row["request_id"]:
                    found.append((self._rows[request_id], tool_use_id))
        session = row.get("session_id")
        # Two sessions may hand out the same prompt; the caller's own session wins.
        return max(found, key=lambda f: (session is not None and f[0].get("session_id") == session,
                                         f[0]["timestamp"]), default=(None, None))

    def same_session(self, row, system_hash=None, subtasks=True):
        """The latest earlier inference row of the same session (and system prompt)."""
        if not row.get("session_id"):
            return None

        def fits(r):
            return (r.get("session_id") == row["session_id"] and r["domain"] == row["domain"]
                    and r.get("conversation_id") and r["request_type"] == "inference"
                    and row["timestamp"] - SESSION_WINDOW <= r["timestamp"] <= row["timestamp"]
                    and r["request_id"] != row["request_id"]
                    and (not system_hash or r.get("system_hash") == system_hash)
                    and (subtasks or not r.get("is_subtask")))

        query = (self._visible(ApiRequest.select(*_FIELDS))
                 .where(ApiRequest.session_id == row["session_id"],
                        ApiRequest.timestamp <= row["timestamp"],
                        ApiRequest.timestamp >= row["timestamp"] - SESSION_WINDOW,
                        ApiRequest.domain == row["domain"],
                        ApiRequest.request_id != row["request_id"],
                        ApiRequest.request_type == "inference",
                        ApiRequest.conversation_id.is_null(False))
                 .order_by(ApiRequest.timestamp.desc()).limit(1))
        if system_hash:
            query = query.where(ApiRequest.system_hash == system_hash)
        if not subtasks:
            query = query.where(ApiRequest.is_subtask == False)  # noqa: E712 (SQL, not Python)
        # The batch's own rows, already linked, win over their stale stored copies.
        stored = [self._rows.get(r["request_id"], r) for r in query.dicts()] if self._stored else []
        candidates = [r for r in stored if fits(r)]
        candidates += [r for r in self._rows.values() if fits(r)]
        return max(candidates, key=lambda r: r["timestamp"]) if candidates else None


def _unlinked(row=None):
    if row is None:
        return {"conversation_id": None, "branch_id": None, "parent_request_id": None,
                "is_subtask": False, "parent_task_request_id": None, "subagent": None}
    return {"conversation_id": row["request_id"], "branch_id": MAIN_BRANCH,
            "parent_request_id": None, "is_subtask": False, "parent_task_request_id": None,
            "subagent": None}


def _child(parent, branch):
    return {"conversation_id": parent["conversation_id"] or parent["request_id"],
            "branch_id": branch, "parent_request_id": parent["request_id"],
            "is_subtask": bool(parent.get("is_subtask")),
            "parent_task_request_id": parent.get("parent_task_request_id"),
            "subagent": parent.get("subagent")}


def inherit(row, index):
    """Fill the traits `row` lacks (INHERITED) from its parent, in place; the names filled."""
    parent = index.row(row["parent_request_id"]) if row.get("parent_request_id") else None
    filled = []
    for name in INHERITED if parent else ():
        if not row.get(name) and parent.get(name):
            row[name] = parent[name]
            filled.append(name)
    return filled


def link(row, found, index):
    """The link columns of `row`, given its linking Features and the earlier rows."""
    if row["request_type"] != "inference" or not row["message_count"]:
        return _unlinked()
    rid = row["request_id"]
    parent, depth = index.parent(row, linking.ancestor_hashes(found.hashes))
    if parent and depth == 0:
        return _child(parent, index.branch(parent, row))
    if parent:
        # The requests in between were never stored, or no longer hash alike (Claude
        # Code clears old tool results): the session's latest turn of the same agent
        # is a better parent when it belongs to the same conversation.
        near = index.same_session(row, system_hash=row.get("system_hash"))
        if (near and near["conversation_id"] == parent["conversation_id"]
                and near["timestamp"] > parent["timestamp"]):
            parent = near
        return _child(parent, parent["branch_id"])
    if found.continuation:
        summarised = (index.task(row, [found.continuation], compaction=True)
                      or index.same_session(row, subtasks=False))
        if summarised:
            return _child(summarised, f"compact_{rid[:8]}")
    if (row["message_count"] == 1 or found.opening) and found.prompt_hashes:
        spawner, tool_use_id = index.task_call(row, found.prompt_hashes)
        if spawner:
            links = _child(spawner, f"subtask_{rid[:8]}")
            links.update(is_subtask=True, parent_task_request_id=spawner["request_id"],
                         subagent=index.subagent_type(spawner["request_id"], tool_use_id)
                         or traits.DEFAULT_SUBAGENT)
            return links
    if row["message_count"] >= 3:
        near = index.same_session(row, system_hash=row.get("system_hash"))
        if near:
            return _child(near, near["branch_id"])
    return _unlinked(row)
