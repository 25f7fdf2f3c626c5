"""Conversations: the most recently active ones, and one with its requests and sub-tasks.

Listing never groups the whole table: it walks the newest rows through the
timestamp index until it has seen enough distinct conversations, then sums only
those conversations through the conversation_id index.
"""
import datetime

import peewee as pw

from common.models import ApiRequest

A = ApiRequest
_SCAN_CHUNK = 2000
_MAX_SCAN = 200_000
NODE_COLUMNS = ("request_id", "timestamp", "model", "request_type", "response_status",
                "branch_id", "parent_request_id", "is_subtask", "parent_task_request_id",
                "conversation_id", "input_tokens", "output_tokens", "cache_read_input_tokens",
                "cache_creation_input_tokens", "cost_usd", "duration_ms", "message_count",
                "domain", "error")


def _candidates(domain, before, want):
    """Distinct conversation ids in newest-first order of their rows, up to `want`."""
    seen, scanned, cursor = {}, 0, before
    while len(seen) < want and scanned < _MAX_SCAN:
        query = A.select(A.timestamp, A.conversation_id).where(A.conversation_id.is_null(False))
        if domain:
            query = query.where(A.domain == domain)
        if cursor:
            query = query.where(A.timestamp < cursor)
        rows = list(query.order_by(A.timestamp.desc()).limit(_SCAN_CHUNK).tuples())
        for ts, cid in rows:
            seen.setdefault(cid, ts)
        scanned += len(rows)
        if len(rows) < _SCAN_CHUNK:
            break
        cursor = rows[-1][0]
    return list(seen)[:want]


def summaries(ids):
    """Per conversation: branches, request count, first/last time, tokens, cost."""
    if not ids:
        return {}
    query = (A.select(A.conversation_id,
                      pw.fn.COUNT(A.id).alias("request_count"),
                      pw.fn.COUNT(A.branch_id.distinct()).alias("branches"),
                      pw.fn.MIN(A.timestamp).alias("first_timestamp"),
                      pw.fn.MAX(A.timestamp).alias("last_timestamp"),
                      pw.fn.SUM(A.input_tokens).alias("input_tokens"),
                      pw.fn.SUM(A.output_tokens).alias("output_tokens"),
                      pw.fn.SUM(A.cost_usd).alias("cost_usd"),
                      pw.fn.MAX(A.domain).alias("domain"),
                      pw.fn.MAX(A.model).alias("model"),
                      pw.fn.MAX(pw.Case(None, [(A.is_subtask == True, 1)], 0)).alias("is_subtask"))  # noqa: E712
             .where(A.conversation_id.in_(ids)).group_by(A.conversation_id))
    return {row["conversation_id"]: row for row in query.dicts()}


def list_conversations(domain=None, limit=50, before=None):
    """The `limit` most recently active conversations (last activity before `before`)."""
    ids = _candidates(domain, before, limit)
    found = summaries(ids)
    rows = [found[cid] for cid in ids if cid in found]
    if before:
        rows = [r for r in rows if _ts(r["last_timestamp"]) < before]
    for row in rows:
        row["cost_usd"] = round(row["cost_usd"] or 0.0, 6)
        row["is_subtask"] = bool(row["is_subtask"])
        row["first_timestamp"] = _ts(row["first_timestamp"])
        row["last_timestamp"] = _ts(row["last_timestamp"])
    cursor = rows[-1]["last_timestamp"] if len(rows) == limit else None
    return rows, cursor


def _ts(value):
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def conversation_requests(conversation_id, limit=2000):
    """The requests of one conversation, oldest first."""
    fields = [getattr(A, c) for c in NODE_COLUMNS]
    return list(A.select(*fields).where(A.conversation_id == conversation_id)
                .order_by(A.timestamp, A.id).limit(limit).dicts())


def subtask_requests(request_ids, limit=2000):
    """Requests of sub-agent tasks spawned by any of `request_ids`, oldest first."""
    if not request_ids:
        return []
    fields = [getattr(A, c) for c in NODE_COLUMNS]
    found = []
    ids = list(request_ids)
    for start in range(0, len(ids), 500):
        found.extend(A.select(*fields).where(A.parent_task_request_id.in_(ids[start:start + 500]))
                     .order_by(A.timestamp).limit(limit).dicts())
    found.sort(key=lambda r: _ts(r["timestamp"]))
    return found[:limit]
