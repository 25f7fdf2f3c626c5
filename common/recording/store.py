"""The recorder's I/O edge: records in, rows out, linked to the rows before them.

`save_records` writes one batch in one transaction: it skips request ids already
stored (a replayed spool never makes a second row), derives each row
(`common.recording.rows`), links it (`common.recording.conversation_index`), then inserts
rows, bodies (pieces stored once, `common.recording.bodies`), task invocations, the
hourly aggregates and the subscription-window samples together.
"""
import logging
import weakref

import peewee as pw

from ..models import ApiRequest, ClientKey, TaskInvocation
from . import aggregates, bulk, ratelimit_samples
from .bodies import BodyWriter
from .conversation_index import LinkIndex, inherit, link
from .rows import derive, kept_body, timestamp, whole

log = logging.getLogger("nexus.store")

CHUNK = 200
LINK_COLUMNS = ("conversation_id", "branch_id", "parent_request_id", "is_subtask",
                "parent_task_request_id", "subagent")
# One per database in a process: each remembers which pieces its database holds.
_BODY_WRITERS = weakref.WeakKeyDictionary()


def body_writer_for(database):
    """The BodyWriter of `database` (made on first use)."""
    real = _real(database)
    writer = _BODY_WRITERS.get(real)
    if writer is None:
        writer = _BODY_WRITERS[real] = BodyWriter()
    return writer


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
            plain.body = kept_body(plain.row, record, whole(record))
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
             "timestamp": d.row["timestamp"],
             "subagent_type": d.features.subagent_types.get(tool_use_id)}
            for d in derived for tool_use_id, prompt_hash in d.features.invocations]


def key_names(key_ids):
    """{client key id: its name} for the ids given (keys without a name left out)."""
    ids = sorted({k for k in key_ids if k})
    names = {}
    for chunk in _chunks(ids, 500):
        query = ClientKey.select(ClientKey.key_id, ClientKey.name).where(ClientKey.key_id.in_(chunk))
        names.update((key_id, name) for key_id, name in query.tuples() if name)
    return names


def name_developers(rows):
    """A client key's name is the developer of the requests made with it (it names a
    person or a team where metadata only names a device): in place."""
    names = key_names(row.get("client_key_id") for row in rows)
    for row in rows:
        name = names.get(row.get("client_key_id"))
        if name:
            row["developer"] = name[:255]


def save_records(database, records, prices, config, body_writer=None):
    """Store a batch of records in one transaction; return the number of new rows."""
    records = _fresh(records)
    if not records:
        return 0
    derived = [_derive(r, prices, config) for r in records]
    body_writer = body_writer or body_writer_for(database)
    try:
        saved = _save(database, derived, body_writer)
    except BaseException:
        body_writer.rollback()
        raise
    body_writer.commit()
    return saved


def _save(database, derived, body_writer):
    with _transaction(database):
        known = _existing(d.row["request_id"] for d in derived)
        derived = [d for d in derived if d.row["request_id"] not in known]
        if not derived:
            return 0
        index = LinkIndex()
        index.prefetch([(d.row, d.features) for d in derived])
        name_developers([d.row for d in derived])
        for d in derived:
            d.row.update(link(d.row, d.features, index))
            inherit(d.row, index)
            index.add(d.row, d.features)
        inserted = _insert_rows(database, [d.row for d in derived])
        derived = [d for d in derived if d.row["request_id"] in inserted]
        body_writer.save(database, [d.body for d in derived if d.body])
        bulk.insert(database, TaskInvocation, _task_rows(derived))
        aggregates.add([d.row for d in derived], database)
        ratelimit_samples.add([d.row for d in derived], database)
    return len(derived)
