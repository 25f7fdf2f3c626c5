"""The upstream's rate-limit utilization per credential, from the stored headers.

`latest_utilization(since)` is the one function alert rules read utilization through: today
it parses `api_requests.ratelimit` (the anthropic-ratelimit-* headers of each response);
a table of rate-limit samples can take its place without the rules noticing.
"""
import json

import peewee as pw

from ..models import ApiRequest as A
from ..ratelimits import summarise


def credential_key(account_id, auth_hash):
    """How a credential is named: its account id, else a short fingerprint of its hash."""
    if account_id:
        return account_id
    return f"sha256:{auth_hash[:12]}" if auth_hash else None


def latest_utilization(since):
    """{credential key: {"five_hour": 0..1 or None, "seven_day": …, "at": timestamp}} from
    each credential's newest response at or after `since` that carried the headers."""
    key = pw.fn.COALESCE(A.account_id, A.auth_hash)
    newest = (A.select(key.alias("key"), pw.fn.MAX(A.timestamp).alias("at"))
              .where(A.timestamp >= since, A.ratelimit.is_null(False), key.is_null(False))
              .group_by(key).tuples())
    out = {}
    for raw_key, at in newest:
        row = (A.select(A.account_id, A.auth_hash, A.ratelimit)
               .where(key == raw_key, A.timestamp == at, A.ratelimit.is_null(False))
               .order_by(A.id.desc()).limit(1).first())
        if row is None:
            continue
        windows = _windows(row.ratelimit)
        out[credential_key(row.account_id, row.auth_hash)] = {
            "five_hour": windows.get("five_hour"), "seven_day": windows.get("seven_day"),
            "at": at}
    return out


def _windows(text):
    try:
        headers = json.loads(text)
    except (TypeError, ValueError):
        return {}
    summary = summarise(headers if isinstance(headers, dict) else {}) or {}
    return {w["window"]: w["utilization"] for w in summary.get("windows", ())}
