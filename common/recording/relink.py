"""`nexus relink`: rebuild every conversation link from the stored bodies.

Rows are read oldest first, a batch at a time, and linked with the same rules
as fresh traffic (`conversation_index.link`).
"""
import peewee as pw

from ..models import ApiRequest, TaskInvocation
from . import bodies
from .conversation_index import LinkIndex, link
from .rows import features, split_request
from .store import LINK_COLUMNS, _chunks, _transaction

_RELINK_FIELDS = (ApiRequest.id, ApiRequest.request_id, ApiRequest.domain, ApiRequest.timestamp,
                  ApiRequest.request_type, ApiRequest.message_count, ApiRequest.session_id,
                  ApiRequest.system_hash, ApiRequest.response_status, ApiRequest.error,
                  ApiRequest.current_message_hash, ApiRequest.parent_message_hash,
                  ApiRequest.conversation_id, ApiRequest.branch_id, ApiRequest.parent_request_id,
                  ApiRequest.is_subtask, ApiRequest.parent_task_request_id, ApiRequest.stream)


def _stored_features(row, stored, config):
    """Linking inputs from the stored bodies, or from the stored hashes without them."""
    split = split_request(stored.request) if stored is not None else None
    body = split.fields if split is not None else None
    message = stored.answer(row["stream"]) if stored is not None else None
    if isinstance(body, dict) and body.get("messages") is not None:
        return features(body, message, config), message is not None, True
    found = features(None, None, config)
    found.hashes = [None, row["parent_message_hash"], None, row["current_message_hash"]]
    return found, False, False


def _relink_batch(rows, config, cache=None, horizon=()):
    """Relink one batch of rows (oldest first); return how many rows changed.

    `horizon` is the (timestamp, id) of the last row relinked by earlier batches: only
    rows up to it are consulted, so no link the table held before is ever reused.
    """
    stored = bodies.load([row["request_id"] for row in rows], cache)
    prepared = [(row, *_stored_features(row, stored.get(row["request_id"]), config))
                for row in rows]
    index = LinkIndex(horizon=horizon)
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
    last, cache = (), bodies.PieceCache()
    while True:
        query = (ApiRequest.select(*_RELINK_FIELDS)
                 .order_by(ApiRequest.timestamp, ApiRequest.id).limit(batch_size))
        if last:  # a row-value comparison, so that the (timestamp, id) index serves it
            query = query.where(pw.Tuple(ApiRequest.timestamp, ApiRequest.id) > pw.Tuple(*last))
        rows = list(query.dicts())
        if not rows:
            return changed, linked, total
        with _transaction(database):
            changed += _relink_batch(rows, config, cache, last)
        inference = [r for r in rows if r["request_type"] == "inference"]
        total += len(inference)
        linked += sum(1 for r in inference if r["parent_request_id"])
        last = (rows[-1]["timestamp"], rows[-1]["id"])


def cmd_relink(args, config):
    """`nexus relink`: rebuild links and print the share of requests linked to a parent."""
    from ..db import connect
    database = connect(config.database_url)
    try:
        changed, linked, total = relink(database, config, batch_size=args.batch_size)
    finally:
        database.close()
    share = 100.0 * linked / total if total else 0.0
    print(f"inference requests: {total}, linked to a parent: {linked} ({share:.1f}%), "
          f"rows changed: {changed}")
    return 0
