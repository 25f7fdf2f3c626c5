"""The writer's side of subscription limits: rows' unified rate-limit headers → samples.

Each response of a subscription carries the unified window headers; `add` keeps, per
credential key, a row per change of the values (utilization, status, claim, window period)
and moves the newest row's `last_seen` on while they stay the same, so that the newest row
always holds the last headers exactly. History is bounded: HISTORY back from the newest
sample, and at most MAX_SAMPLES rows per key. Readers: common/limits.py.
"""
import datetime
import json

import peewee as pw

from ..burn_rate import RESET_TOLERANCE
from ..models import ApiRequest, RateLimitSample, utcnow
from ..ratelimits import PREFIX, summarise
from . import bulk

HISTORY = datetime.timedelta(hours=26)  # the 7-day window's lookback (24 h) and some
MAX_SAMPLES = 500
FINGERPRINT = "sha256:"
COLUMNS = ("key", "timestamp", "last_seen", "request_id", "auth_hash", "headers", "status",
           "representative_claim", "five_hour_utilization", "five_hour_status",
           "seven_day_utilization", "seven_day_status", "five_hour_resets_at", "seven_day_resets_at")
VALUE_FIELDS = ("status", "representative_claim", "five_hour_utilization", "five_hour_status",
                "seven_day_utilization", "seven_day_status")
RESET_FIELDS = ("five_hour_resets_at", "seven_day_resets_at")
S = RateLimitSample


def key_of(account_id, auth_hash):
    """The account id where known, else a fingerprint of the credential's hash; or None."""
    if account_id:
        return account_id
    return FINGERPRINT + auth_hash[:16] if auth_hash else None


def sample_of(row):
    """The sample values of an api_requests row (a dict), or None without unified headers."""
    try:
        headers = json.loads(row.get("ratelimit") or "null")
    except ValueError:
        return None
    summary = summarise(headers) if isinstance(headers, dict) else None
    if not summary:
        return None
    sample = {"timestamp": row["timestamp"], "last_seen": row["timestamp"],
              "request_id": row["request_id"], "auth_hash": row.get("auth_hash"),
              "account_id": row.get("account_id"),
              "status": _short(summary["status"]),
              "representative_claim": _short(summary["representative_claim"]),
              "headers": json.dumps({k: v for k, v in headers.items() if k.startswith(PREFIX)},
                                    sort_keys=True)}
    windows = {w["window"]: w for w in summary["windows"]}
    for name in ("five_hour", "seven_day"):
        window = windows.get(name, {})
        sample[f"{name}_utilization"] = window.get("utilization")
        sample[f"{name}_resets_at"] = window.get("reset")
        sample[f"{name}_status"] = _short(window.get("status"))
    return sample


def _short(value):
    return str(value)[:32] if value is not None else None


def same_values(a, b):
    """Whether two samples say the same (reset times a few seconds apart count as equal)."""
    if any(a.get(f) != b.get(f) for f in VALUE_FIELDS):
        return False
    for field in RESET_FIELDS:
        x, y = a.get(field), b.get(field)
        if (x is None) != (y is None) or (x is not None and abs(x - y) > RESET_TOLERANCE):
            return False
    return True


def _known_accounts(samples):
    """auth_hash → account id, from this batch and from earlier samples, so that a
    credential's requests without an account (count_tokens, say) join its account's key."""
    known = {s["auth_hash"]: s["account_id"] for s in samples if s["auth_hash"] and s["account_id"]}
    wanted = {s["auth_hash"] for s in samples if s["auth_hash"] and not s["account_id"]} - set(known)
    if wanted:
        query = (S.select(S.auth_hash, S.key)
                 .where(S.auth_hash.in_(sorted(wanted)), ~S.key.startswith(FINGERPRINT))
                 .order_by(S.timestamp))
        known.update({h: k for h, k in query.tuples()})
    return known


def _newest(keys):
    """key → its newest stored row (a dict), for `keys`, in one query."""
    latest = (S.select(S.key, pw.fn.MAX(S.timestamp).alias("at"))
              .where(S.key.in_(sorted(keys))).group_by(S.key).alias("latest"))
    query = S.select().join(latest, on=((S.key == latest.c.key) & (S.timestamp == latest.c.at)))
    out = {}
    for row in query.dicts():
        if row["key"] not in out or row["last_seen"] > out[row["key"]]["last_seen"]:
            out[row["key"]] = row
    return out


def _columns(sample, key):
    out = {f: sample.get(f) for f in COLUMNS if f != "key"}
    out["key"] = key
    return out


def merge(current, samples, key):
    """(the stored newest row moved on, or None; the rows to insert) for one key. `current`
    is the stored newest row (a dict with its `id`) or None; samples are oldest first. Pure."""
    update, inserts = None, []
    for sample in samples:
        if current and sample["timestamp"] >= current["timestamp"] and same_values(current, sample):
            if sample["last_seen"] >= current["last_seen"]:
                # The latest values exactly (reset times included); the first-seen time stays.
                current = dict(current, **{k: v for k, v in _columns(sample, key).items()
                                           if k != "timestamp"})
                if current.get("id") is not None:
                    update = current
            continue
        if current and sample["timestamp"] < current["timestamp"]:
            inserts.append(_columns(sample, key))  # a late record: history only
            continue
        if current and current.get("id") is None:
            inserts.append(_columns(current, key))
        current = _columns(sample, key)
    if current and current.get("id") is None:
        inserts.append(_columns(current, key))
    return update, inserts


def _update(row):
    """Move the stored newest row on, unless another writer saw later headers already."""
    values = {k: row[k] for k in COLUMNS if k not in ("key", "timestamp")}
    S.update(**values).where(S.id == row["id"], S.last_seen <= row["last_seen"]).execute()


def _prune(database, keys, newest):
    """Keep HISTORY back from the batch's newest sample and at most MAX_SAMPLES rows a key:
    one statement (a window function ranks each key's rows), so a batch's cost does not
    grow with the keys it touched."""
    keys = sorted(keys)
    p = database.param
    marks = ", ".join([p] * len(keys))
    database.execute_sql(
        f"DELETE FROM ratelimit_samples WHERE key IN ({marks}) AND (timestamp < {p} OR id IN ("
        "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY key ORDER BY timestamp DESC, "
        f"id DESC) AS n FROM ratelimit_samples WHERE key IN ({marks})) AS ranked WHERE n > {p}))",
        [*keys, S.timestamp.db_value(newest - HISTORY), *keys, MAX_SAMPLES])


def add(rows, database=None):
    """Record the unified headers of api_requests rows (dicts); called in the writer's
    transaction. Rows without unified headers or without any credential key are skipped.
    A batch costs one read, one insert, one update per key whose newest row moved on,
    and the pruning of keys that gained rows."""
    samples = [s for s in map(sample_of, rows) if s]
    if not samples:
        return 0
    database = database or S._meta.database
    with S.bind_ctx(database):
        accounts = _known_accounts(samples)
        by_key = {}
        for sample in sorted(samples, key=lambda s: s["timestamp"]):
            key = key_of(sample["account_id"] or accounts.get(sample["auth_hash"]), sample["auth_hash"])
            if key:
                by_key.setdefault(key[:255], []).append(sample)
        if not by_key:
            return 0
        stored = _newest(by_key)
        inserts, grown = [], set()
        for key, items in by_key.items():
            update, new_rows = merge(stored.get(key), items, key)
            if update:
                _update(update)
            if new_rows:
                inserts += new_rows
                grown.add(key)
        if inserts:
            bulk.insert(database, S, inserts, chunk=200)
            _prune(database, grown, max(s["timestamp"] for s in samples))
    return len(inserts)


def backfill(database, since=None, chunk=1000):
    """Fill an empty table from the rows of the last HISTORY that carry unified headers."""
    A = ApiRequest
    with database.bind_ctx((S, A)):
        if S.select().limit(1).exists():
            return 0
        query = (A.select(A.request_id, A.timestamp, A.account_id, A.auth_hash, A.ratelimit)
                 .where(A.timestamp >= (since or utcnow() - HISTORY),
                        A.ratelimit.contains("unified"))
                 .order_by(A.timestamp))
        batch, added = [], 0
        for row in query.dicts().iterator():
            batch.append(row)
            if len(batch) >= chunk:
                added, batch = added + add(batch, database), []
        return added + add(batch, database)
