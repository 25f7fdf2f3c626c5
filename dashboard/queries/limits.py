"""Which sessions used a subscription window: api_requests of one key since the window began.

A key's rows are found through the (account_id, timestamp) index, or for a credential
fingerprint by the timestamp index and its auth_hash: a five-hour slice either way.
"""
import peewee as pw

from common.models import ApiRequest

from .stats import plain

A = ApiRequest
TOKENS = (A.input_tokens + A.output_tokens + A.cache_creation_input_tokens
          + A.cache_read_input_tokens)


def top_sessions(column, value, since, limit=5):
    """[{session_id, requests, tokens, cost_usd}] of the key's rows from `since`, biggest
    cost first (what the unified windows weigh), with the window's totals."""
    if not value:
        return [], {"requests": 0, "tokens": 0, "cost_usd": 0.0}
    session = pw.fn.COALESCE(A.session_id, "")
    query = (A.select(session.alias("session_id"), pw.fn.COUNT(A.id).alias("requests"),
                      pw.fn.SUM(TOKENS).alias("tokens"), pw.fn.SUM(A.cost_usd).alias("cost_usd"))
             .where(getattr(A, column) == value, A.timestamp >= since).group_by(session))
    rows = [{"session_id": r["session_id"] or None, "requests": plain(r["requests"]) or 0,
             "tokens": plain(r["tokens"]) or 0, "cost_usd": round(plain(r["cost_usd"]) or 0.0, 6)}
            for r in query.dicts()]
    total = {"requests": sum(r["requests"] for r in rows), "tokens": sum(r["tokens"] for r in rows),
             "cost_usd": round(sum(r["cost_usd"] for r in rows), 6)}
    rows.sort(key=lambda r: (-r["cost_usd"], -r["tokens"]))
    for row in rows:
        row["share"] = row["cost_usd"] / total["cost_usd"] if total["cost_usd"] else (
            row["tokens"] / total["tokens"] if total["tokens"] else 0.0)
    return rows[:limit], total
