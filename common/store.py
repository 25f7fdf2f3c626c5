"""The recorder's I/O edge: records in, rows out, linked to the rows before them.

`save_records` writes one batch in one transaction: it skips request ids already
stored (a replayed spool never makes a second row), derives each row
(`common.rows`), links it (`common.conversation_index`), then inserts rows,
bodies, task invocations and the hourly aggregates together.
"""
import logging
import sys

import peewee as pw

from . import aggregates, bulk
from .conversation_index import LinkIndex, link
from .models import ApiRequest, RequestBody, TaskInvocation
from .rows import derive, features, parse_body, parse_json, text, timestamp

log = logging.getLogger("nexus.store")

CHUNK = 200
LINK_COLUMNS = ("conversation_id", "branch_id", "parent_request_id", "is_subtask",
                "parent_task_request_id")


def _real(database):
    return getattr(database, "obj", None) or database


def _transaction(database):
    # On SQLite, take the write lock first: the existence check and the links
    # then see every row another worker committed before us.
    if isinstance(_real(database), pw.SqliteDatabase):
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


def _chunks(items, size=CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _existing(request_ids):
    found = set()
    for chunk in _chunks(list(request_ids), 500):
        query = ApiRequest.select(ApiRequest.request_id).where(ApiRequest.request_id.in_(chunk))
        found.update(r for (r,) in query.tuples())
    return found


def _fresh(records):
    """Records not seen before in this batch, oldest first."""
    unique = {}
    for record in records:
        unique.setdefault(record["request_id"], record)
    return sorted(unique.values(), key=lambda r: timestamp(r["timestamp"]))


def _derive(record, prices, config):
    """Row values of a record; a body no rule can read still makes a plain row.

    A record that made derivation fail must not block the batch (the writer would
    retry it forever), so it is stored without links, its bodies kept as text.
    """
    try:
        return derive(record, prices, config)
    except Exception:
        log.exception("could not derive request %s; storing it unlinked", record.get("request_id"))
        plain = derive(dict(record, request_body=None, response_body=None, stream=False),
                       prices, config)
        if plain.body is not None:
            plain.body.update(request_body=text(record.get("request_body")),
                              response_body=text(record.get("response_body")))
        return plain


def _insert_rows(database, rows):
    """Insert rows, ignoring request ids already present; return the ids inserted."""
    inserted = bulk.insert(database, ApiRequest, rows, ignore=True, returning="request_id",
                           chunk=CHUNK)
    # SQLite: the write lock taken before the existence check keeps out concurrent twins.
    return inserted if inserted is not None else {r["request_id"] for r in rows}


def _task_rows(derived):
    return [{"request_id": d.row["request_id"], "domain": d.row["domain"],
             "tool_use_id": tool_use_id, "prompt_hash": prompt_hash,
             "timestamp": d.row["timestamp"]}
            for d in derived for tool_use_id, prompt_hash in d.features.invocations]


def save_records(database, records, prices, config):
    """Store a batch of records in one transaction; return the number of new rows."""
    records = _fresh(records)
    if not records:
        return 0
    derived = [_derive(r, prices, config) for r in records]
    with _transaction(database):
        known = _existing(d.row["request_id"] for d in derived)
        derived = [d for d in derived if d.row["request_id"] not in known]
        if not derived:
            return 0
        index = LinkIndex()
        index.prefetch([(d.row, d.features) for d in derived])
        for d in derived:
            d.row.update(link(d.row, d.features, index))
            index.add(d.row, d.features)
        inserted = _insert_rows(database, [d.row for d in derived])
        derived = [d for d in derived if d.row["request_id"] in inserted]
        bulk.insert(database, RequestBody, [d.body for d in derived if d.body], ignore=True,
                    chunk=100)
        bulk.insert(database, TaskInvocation, _task_rows(derived))
        aggregates.add([d.row for d in derived], database)
    return len(derived)


# --- nexus relink ------------------------------------------------------------------

_RELINK_FIELDS = (ApiRequest.id, ApiRequest.request_id, ApiRequest.domain, ApiRequest.timestamp,
                  ApiRequest.request_type, ApiRequest.message_count, ApiRequest.session_id,
                  ApiRequest.system_hash, ApiRequest.response_status, ApiRequest.error,
                  ApiRequest.current_message_hash, ApiRequest.parent_message_hash,
                  ApiRequest.conversation_id, ApiRequest.branch_id, ApiRequest.parent_request_id,
                  ApiRequest.is_subtask, ApiRequest.parent_task_request_id,
                  RequestBody.request_body, RequestBody.response_body)


def _stored_features(row, config):
    """Linking inputs from the stored bodies, or from the stored hashes without them."""
    body, raw = parse_body(row.pop("request_body"))
    message = parse_json(row.pop("response_body"))
    message = message if isinstance(message, dict) and message.get("type") == "message" else None
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        return features(body, message, config, raw), message is not None, True
    found = features(None, None, config)
    found.hashes = [None, row["parent_message_hash"], None, row["current_message_hash"]]
    return found, False, False


def _relink_batch(rows, config):
    """Relink one batch of rows (oldest first); return how many rows changed."""
    prepared = [(row, *_stored_features(row, config)) for row in rows]
    index = LinkIndex()
    index.prefetch([(row, found) for row, found, *_ in prepared])
    changed, rebuilt = [], []
    for row, found, has_response, has_body in prepared:
        links = link(row, found, index)
        if not has_body and row["parent_request_id"] and not links["parent_request_id"]:
            # Without its body a compaction or sub-agent link cannot be re-derived: keep it.
            links = {k: row[k] for k in LINK_COLUMNS}
        if any(row[k] != v for k, v in links.items()):
            changed.append(ApiRequest(id=row["id"], **links))
        row.update(links)
        index.add(row, found)
        if has_response:
            rebuilt.append((row, found))
    if changed:
        ApiRequest.bulk_update(changed, fields=list(LINK_COLUMNS), batch_size=100)
    if rebuilt:
        ids = [row["request_id"] for row, _ in rebuilt]
        TaskInvocation.delete().where(TaskInvocation.request_id.in_(ids)).execute()
        tasks = [{"request_id": row["request_id"], "domain": row["domain"], "tool_use_id": t,
                  "prompt_hash": h, "timestamp": row["timestamp"]}
                 for row, found in rebuilt for t, h in found.invocations]
        for chunk in _chunks(tasks):
            TaskInvocation.insert_many(chunk).execute()
    return len(changed)


def relink(database, config, batch_size=1000):
    """Rebuild every link in timestamp order; return (changed, linked, inference)."""
    changed = linked = total = 0
    last = None
    while True:
        query = (ApiRequest.select(*_RELINK_FIELDS)
                 .join(RequestBody, pw.JOIN.LEFT_OUTER,
                       on=(RequestBody.request_id == ApiRequest.request_id))
                 .order_by(ApiRequest.timestamp, ApiRequest.id).limit(batch_size))
        if last:  # a row-value comparison, so that the (timestamp, id) index serves it
            query = query.where(pw.Tuple(ApiRequest.timestamp, ApiRequest.id) > pw.Tuple(*last))
        rows = list(query.dicts())
        if not rows:
            return changed, linked, total
        with _transaction(database):
            changed += _relink_batch(rows, config)
        inference = [r for r in rows if r["request_type"] == "inference"]
        total += len(inference)
        linked += sum(1 for r in inference if r["parent_request_id"])
        last = (rows[-1]["timestamp"], rows[-1]["id"])


def cmd_relink(args, config):
    """`nexus relink`: rebuild links and print the share of requests linked to a parent."""
    from .db import connect
    database = connect(config.database_url)
    try:
        changed, linked, total = relink(database, config, batch_size=args.batch_size)
    finally:
        database.close()
    share = 100.0 * linked / total if total else 0.0
    print(f"inference requests: {total}, linked to a parent: {linked} ({share:.1f}%), "
          f"rows changed: {changed}")
    return 0


# --- nexus reprice ---------------------------------------------------------------

def reprice(database, prices, since=None, batch_size=1000):
    """Recompute cost_usd from usage_data; rebuild the aggregates; return rows changed."""
    changed, last_id = 0, 0
    while True:
        query = (ApiRequest.select(ApiRequest.id, ApiRequest.model, ApiRequest.usage_data,
                                   ApiRequest.cost_usd)
                 .where(ApiRequest.id > last_id).order_by(ApiRequest.id).limit(batch_size))
        if since:
            query = query.where(ApiRequest.timestamp >= since)
        rows = list(query)
        if not rows:
            break
        updates = []
        for row in rows:
            usage = parse_json(row.usage_data)
            cost = prices.cost(row.model, usage) if usage and row.model else 0.0
            if abs(cost - (row.cost_usd or 0.0)) > 1e-12:
                row.cost_usd = cost
                updates.append(row)
        with _transaction(database):
            if updates:
                ApiRequest.bulk_update(updates, fields=[ApiRequest.cost_usd], batch_size=100)
        changed += len(updates)
        last_id = rows[-1].id
    aggregates.rebuild(database, since=since)
    return changed


def cmd_reprice(args, config):
    """`nexus reprice`: recompute costs with the current price table."""
    from .db import connect
    from .pricing import load_prices
    from .export import parse_when
    try:
        since = parse_when(args.since) if args.since else None
    except ValueError as error:
        print(f"nexus reprice: {error}", file=sys.stderr)
        return 2
    database = connect(config.database_url)
    try:
        changed = reprice(database, load_prices(config.pricing_file), since=since)
    finally:
        database.close()
    print(f"repriced rows: {changed}")
    return 0
