"""`nexus relink`: rebuild every conversation link and grouping key from the stored bodies.

Rows are read oldest first, a batch at a time, and linked with the same rules
as fresh traffic (`conversation_index.link`). The grouping keys (docs/analytics.md) are
derived again from the same bodies, so that rows recorded before they existed get
them; the hourly aggregates are then rebuilt from the oldest row that changed.
"""
import peewee as pw

from .. import traits
from ..models import ApiRequest, TaskInvocation
from . import aggregates, bodies
from .conversation_index import LinkIndex, inherit, link
from .rows import features, fit_columns, split_request
from .store import LINK_COLUMNS, _chunks, _transaction, name_developers

TRAIT_COLUMNS = ("project", "git_branch", "developer")

_RELINK_FIELDS = (ApiRequest.id, ApiRequest.request_id, ApiRequest.domain, ApiRequest.timestamp,
                  ApiRequest.request_type, ApiRequest.message_count, ApiRequest.session_id,
                  ApiRequest.system_hash, ApiRequest.response_status, ApiRequest.error,
                  ApiRequest.current_message_hash, ApiRequest.parent_message_hash,
                  ApiRequest.conversation_id, ApiRequest.branch_id, ApiRequest.parent_request_id,
                  ApiRequest.is_subtask, ApiRequest.parent_task_request_id, ApiRequest.stream,
                  ApiRequest.subagent, ApiRequest.project, ApiRequest.git_branch,
                  ApiRequest.developer, ApiRequest.client_key_id)


def _stored_features(row, stored, config):
    """Linking inputs from the stored bodies, or from the stored hashes without them."""
    split = split_request(stored.request) if stored is not None else None
    body = split.fields if split is not None else None
    message = stored.answer(row["stream"]) if stored is not None else None
    if body is not None and stored.request is not None:
        # The grouping keys from the body as the writer derives them (a body without
        # them says so: the keys become None); rows without a body keep theirs.
        row_traits = fit_columns(traits.body_traits(body))
        row.update({k: row_traits[k] for k in TRAIT_COLUMNS})
    if isinstance(body, dict) and body.get("messages") is not None:
        return features(body, message, config), message is not None, True
    found = features(None, None, config)
    found.hashes = [None, row["parent_message_hash"], None, row["current_message_hash"]]
    return found, False, False


def _relink_batch(rows, config, cache=None, horizon=()):
    """Relink one batch of rows (oldest first); return the rows that changed.

    `horizon` is the (timestamp, id) of the last row relinked by earlier batches: only
    rows up to it are consulted, so no link the table held before is ever reused.
    """
    stored = bodies.load([row["request_id"] for row in rows], cache)
    before = [{k: row[k] for k in LINK_COLUMNS + TRAIT_COLUMNS} for row in rows]
    prepared = [(row, *_stored_features(row, stored.get(row["request_id"]), config))
                for row in rows]
    name_developers(rows)
    index = LinkIndex(horizon=horizon)
    index.prefetch([(row, found) for row, found, *_ in prepared])
    changed, rebuilt = [], []
    for (row, found, has_response, has_body), old in zip(prepared, before):
        links = link(row, found, index)
        if not has_body and row["parent_request_id"] and not links["parent_request_id"]:
            # Without its body a compaction or sub-agent link cannot be re-derived: keep it.
            links = {k: row[k] for k in LINK_COLUMNS}
        row.update(links)
        inherit(row, index)
        now = {k: row[k] for k in LINK_COLUMNS + TRAIT_COLUMNS}
        if now != old:
            changed.append(row)
        index.add(row, found)
        if has_response:
            rebuilt.append((row, found))
    if changed:
        ApiRequest.bulk_update([ApiRequest(id=row["id"], **{k: row[k] for k in LINK_COLUMNS
                                                            + TRAIT_COLUMNS}) for row in changed],
                               fields=list(LINK_COLUMNS + TRAIT_COLUMNS), batch_size=100)
    if rebuilt:
        ids = [row["request_id"] for row, _ in rebuilt]
        TaskInvocation.delete().where(TaskInvocation.request_id.in_(ids)).execute()
        tasks = [{"request_id": row["request_id"], "domain": row["domain"], "tool_use_id": t,
                  "prompt_hash": h, "timestamp": row["timestamp"],
                  "subagent_type": found.subagent_types.get(t)}
                 for row, found in rebuilt for t, h in found.invocations]
        for chunk in _chunks(tasks):
            TaskInvocation.insert_many(chunk).execute()
    return changed


def relink(database, config, batch_size=1000):
    """Rebuild every link and grouping key in timestamp order, then the aggregates of the
    hours that changed; return (changed, linked, inference)."""
    changed = linked = total = 0
    last, cache, first_changed = (), bodies.PieceCache(), None
    while True:
        query = (ApiRequest.select(*_RELINK_FIELDS)
                 .order_by(ApiRequest.timestamp, ApiRequest.id).limit(batch_size))
        if last:  # a row-value comparison, so that the (timestamp, id) index serves it
            query = query.where(pw.Tuple(ApiRequest.timestamp, ApiRequest.id) > pw.Tuple(*last))
        rows = list(query.dicts())
        if not rows:
            if first_changed is not None:
                aggregates.rebuild(database, since=first_changed)
            return changed, linked, total
        with _transaction(database):
            done = _relink_batch(rows, config, cache, last)
        changed += len(done)
        if done and first_changed is None:
            first_changed = min(row["timestamp"] for row in done)
        inference = [r for r in rows if r["request_type"] == "inference"]
        total += len(inference)
        linked += sum(1 for r in inference if r["parent_request_id"])
        last = (rows[-1]["timestamp"], rows[-1]["id"])


def cmd_relink(args, config):
    """`nexus relink`: rebuild links and grouping keys (and the aggregates they change);
    print the share of requests linked to a parent."""
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
