"""Rows of api_requests: filtered lists with keyset pagination, one row, its bodies."""
import datetime
import json
import re

import peewee as pw

from common.models import CONTRACT_COLUMNS, ApiRequest, HourlyUsage
from common.recording import bodies
from common.recording.rows import shown_response
from common.redact import redact_headers

from ..params import make_cursor

COLUMNS = CONTRACT_COLUMNS
DETAIL_EXTRA = ("stop_reason", "upstream_request_id", "client_key_id", "ratelimit",
                "project", "git_branch", "developer", "subagent")
_ID_LIKE = re.compile(r"^[0-9a-fA-F-]{8,36}$")
A = ApiRequest


def _fields(names):
    return [getattr(A, name) for name in names]


def is_id_like(q):
    """True when `q` looks like (part of) a uuid: searched by exact id, through indexes."""
    return bool(_ID_LIKE.match(q))


def _search(q):
    """Ids match exactly (indexed); other text matches metadata columns by substring."""
    if is_id_like(q):
        q = q.lower()
        return (A.request_id == q) | (A.conversation_id == q) | (A.session_id == q)
    return (A.model.contains(q) | A.path.contains(q) | A.error.contains(q)
            | A.domain.contains(q) | A.account_id.contains(q))


def where(flt):
    """The WHERE conditions of a RequestFilter, as a list of peewee expressions."""
    conds = []
    for column, value in (("domain", flt.domain), ("model", flt.model),
                          ("request_type", flt.request_type), ("account_id", flt.account_id),
                          ("project", flt.project), ("git_branch", flt.branch),
                          ("developer", flt.developer), ("session_id", flt.session),
                          ("subagent", flt.subagent)):
        if value:
            conds.append(getattr(A, column) == value)
    if flt.status:
        low, high = flt.status
        conds.append(A.response_status == low if low == high else A.response_status.between(low, high))
    if flt.since:
        conds.append(A.timestamp >= flt.since)
    if flt.until:
        conds.append(A.timestamp < flt.until)
    if flt.q:
        conds.append(_search(flt.q))
    return conds


def _after_cursor(before):
    """Rows strictly older than the cursor; the first term is an index range."""
    ts, row_id = before
    return (A.timestamp <= ts) & ((A.timestamp < ts) | (A.id < row_id))


def list_requests(flt, columns=COLUMNS, up_to_id=None):
    """Up to `flt.limit` rows newest first, and the cursor of the next page (or None).

    `up_to_id` leaves out rows inserted after it, so that live updates starting there
    neither miss nor repeat a row."""
    query = A.select(A.id, *_fields(columns))
    conds = where(flt)
    if up_to_id is not None:
        conds.append(A.id <= up_to_id)
    if flt.before:
        conds.append(_after_cursor(flt.before))
    if conds:
        query = query.where(*conds)
    rows = list(query.order_by(A.timestamp.desc(), A.id.desc()).limit(flt.limit + 1).dicts())
    cursor = None
    if len(rows) > flt.limit:
        rows = rows[:flt.limit]
        cursor = make_cursor(rows[-1]["timestamp"], rows[-1]["id"])
    return rows, cursor


def iter_rows(flt, total, batch=2000):
    """Yield up to `total` rows matching `flt` as tuples in COLUMNS order, newest first,
    fetched in keyset batches (tuples, not dicts: exports spend their time here)."""
    before, sent = flt.before, 0
    ts_index = COLUMNS.index("timestamp")
    conds = where(flt)
    while sent < total:
        query = A.select(A.id, *_fields(COLUMNS))
        page_conds = conds + ([_after_cursor(before)] if before else [])
        if page_conds:
            query = query.where(*page_conds)
        size = min(batch, total - sent)
        sql, params = query.order_by(A.timestamp.desc(), A.id.desc()).limit(size).sql()
        # The driver's own values (SQLite: text times, 0/1 booleans): exporting.py
        # normalises the few columns that need it, faster than peewee's converters.
        rows = A._meta.database.execute_sql(sql, params).fetchall()
        for row in rows:
            yield row[1:]
        sent += len(rows)
        if len(rows) < size:
            return
        last = rows[-1][1 + ts_index]
        before = (datetime.datetime.fromisoformat(last) if isinstance(last, str) else last,
                  rows[-1][0])


def max_id():
    """The id of the newest row inserted (0 for an empty table): where live updates start."""
    return A.select(pw.fn.MAX(A.id)).scalar() or 0


def newer_requests(flt, after_id, limit=50):
    """Rows inserted after row `after_id` (live updates), newest insertion first.

    By insertion, not by timestamp: a long stream is recorded when it ends, with the
    time it began, and must still show up.
    """
    query = A.select(A.id, *_fields(COLUMNS)).where(A.id > after_id, *where(flt))
    return list(query.order_by(A.id.desc()).limit(limit).dicts())


def get_request(request_id):
    """The row (contract columns and a few more) for `request_id`, or None."""
    query = A.select(A.id, *_fields(COLUMNS + DETAIL_EXTRA)).where(A.request_id == request_id)
    return query.dicts().first()


MAX_SHOWN_DEPTH = 64  # deeper JSON is shown as text: rendering it would recurse past the stack


def _json_or_text(data):
    if data is None:
        return None
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to show as JSON
        return data
    return data if _deeper_than(value, MAX_SHOWN_DEPTH) else value


def _deeper_than(value, limit):
    """True when `value` nests lists and objects more than `limit` deep (no recursion)."""
    level = [value]
    for _ in range(limit + 1):
        level = [child for item in level if isinstance(item, (list, dict))
                 for child in (item.values() if isinstance(item, dict) else item)
                 if isinstance(child, (list, dict))]
        if not level:
            return False
    return True


def get_bodies(request_id, stream=False):
    """Bodies and headers (secrets redacted again, in case an old row kept one).

    A stream's `response_body` is the message rebuilt from its events; the bytes as the
    client received them are `raw_body(request_id, "response")`.
    """
    stored = bodies.load_one(request_id)
    if stored is None:
        return {"request_body": None, "response_body": None,
                "request_headers": {}, "response_headers": {}}
    headers = {}
    for name in ("request_headers", "response_headers"):
        value = _json_or_text(getattr(stored, name))
        headers[name] = redact_headers(value) if isinstance(value, dict) else {}
    if stream and stored.raw_response:
        response = shown_response(stored.response)
    else:
        response = _json_or_text(stored.response)
    return {"request_body": _json_or_text(stored.request), "response_body": response, **headers}


def raw_body(request_id, which, stream=False):
    """(bytes, content type, exact) of a request's body as sent or its response as
    received; None where it was not kept."""
    stored = bodies.load_one(request_id)
    if stored is None:
        return None
    if which == "request":
        data, headers, exact = stored.request, stored.request_headers, stored.exact
    else:
        # A stream stored before raw capture kept its rebuilt message, not its events.
        if stream and not stored.raw_response:
            return None
        data, headers, exact = stored.response, stored.response_headers, stored.raw_response
    if data is None:
        return None
    headers = _json_or_text(headers)
    kind = headers.get("content-type") if isinstance(headers, dict) else None
    return data, kind or "application/octet-stream", exact


def related(row):
    """Requests linked to `row`: its parent, its children and the sub-tasks it spawned."""
    rid = row["request_id"]
    small = (A.request_id, A.timestamp, A.model, A.request_type, A.response_status,
             A.conversation_id, A.branch_id)
    # parent_request_id has no index; within the conversation (indexed) it needs none.
    children = list(A.select(*small)
                    .where(A.conversation_id == row["conversation_id"], A.parent_request_id == rid)
                    .order_by(A.timestamp).limit(50).dicts()) if row["conversation_id"] else []
    subtasks = list(A.select(*small).where(A.parent_task_request_id == rid)
                    .order_by(A.timestamp).limit(50).dicts())
    return {"children": children, "subtasks": subtasks}


def distinct_values(column, since, limit=200):
    """Values of a low-cardinality column seen since `since`, from the hourly aggregates."""
    field = getattr(HourlyUsage, column)
    query = (HourlyUsage.select(field).where(HourlyUsage.hour >= since, field != "")
             .distinct().order_by(field).limit(limit))
    return [value for (value,) in query.tuples()]


def is_postgres():
    """True when the bound database is PostgreSQL."""
    return isinstance(A._meta.database.obj, pw.PostgresqlDatabase)
