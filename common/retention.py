"""`nexus retention`: delete rows older than NEXUS_RETENTION_DAYS, keeping the aggregates.

Rows go in batches, each in its own short transaction, so that the proxy's writer and
the dashboard are never blocked for long. A row's bodies, task invocations and search
entries go with it. Then the body pieces no remaining request can use, with their
search entries: a piece's `last_seen` is the newest request that used it (to within `bodies.PIECE_TOUCH`), so a piece last seen
before the cutoff belongs to deleted requests only; pieces that later requests share
stay. `api_usage_hourly` is left as it is, so the charts still cover the pruned days.

SQLite gives the freed pages back to the file system when the database is in
incremental auto-vacuum mode (new databases are; `nexus migrate` converts old ones).
PostgreSQL's autovacuum reuses the space.
"""
import datetime
from dataclasses import dataclass

import peewee as pw

from .models import ApiRequest, BodyPiece, RequestBody, TaskInvocation, utcnow
from .recording import search_index
from .recording.bodies import PIECE_TOUCH


@dataclass
class Pruned:
    """What a prune removed."""

    requests: int = 0
    pieces: int = 0
    bytes_freed: int = 0   # stored bytes of the bodies and pieces removed


def cutoff_for(days, now=None):
    """The moment before which rows are pruned."""
    return (now or utcnow()) - datetime.timedelta(days=days)


def _body_bytes(request_ids):
    size = (pw.fn.COALESCE(pw.fn.LENGTH(RequestBody.request_recipe), 0)
            + pw.fn.COALESCE(pw.fn.LENGTH(RequestBody.response_data), 0)
            + pw.fn.COALESCE(pw.fn.LENGTH(RequestBody.request_body), 0)
            + pw.fn.COALESCE(pw.fn.LENGTH(RequestBody.response_body), 0))
    return (RequestBody.select(pw.fn.SUM(size))
            .where(RequestBody.request_id.in_(request_ids)).scalar() or 0)


def prune(database, cutoff, batch_size=5000):
    """Delete rows older than `cutoff` (a naive UTC datetime), then the pieces only they
    used; return a Pruned."""
    done = Pruned()
    while True:
        batch = list(ApiRequest.select(ApiRequest.id, ApiRequest.request_id)
                     .where(ApiRequest.timestamp < cutoff)
                     .order_by(ApiRequest.timestamp, ApiRequest.id).limit(batch_size).tuples())
        if not batch:
            break
        ids = [i for i, _ in batch]
        request_ids = [r for _, r in batch]
        with database.atomic():
            done.bytes_freed += int(_body_bytes(request_ids))
            RequestBody.delete().where(RequestBody.request_id.in_(request_ids)).execute()
            TaskInvocation.delete().where(TaskInvocation.request_id.in_(request_ids)).execute()
            # Search entries found these requests: their answers, and the pieces they
            # carried first (a piece a later request shares is no longer found).
            search_index.remove(database, "request_id", request_ids)
            done.requests += ApiRequest.delete().where(ApiRequest.id.in_(ids)).execute()
    _prune_pieces(database, cutoff - PIECE_TOUCH, batch_size, done)
    reclaim(database)
    return done


def _prune_pieces(database, before, batch_size, done):
    while True:
        batch = list(BodyPiece.select(BodyPiece.id, BodyPiece.stored)
                     .where(BodyPiece.last_seen < before).limit(batch_size).tuples())
        if not batch:
            return
        ids = [i for i, _ in batch]
        with database.atomic():
            # The writer refreshes last_seen when it reuses a piece: check again as we delete.
            deleted = (BodyPiece.delete()
                       .where(BodyPiece.id.in_(ids), BodyPiece.last_seen < before).execute())
            kept = set()
            if deleted < len(batch):
                kept = {i for (i,) in BodyPiece.select(BodyPiece.id)
                        .where(BodyPiece.id.in_(ids)).tuples()}
            search_index.remove(database, "piece_id", [i for i in ids if i not in kept])
        done.pieces += deleted
        done.bytes_freed += sum(size for i, size in batch if i not in kept)


def reclaim(database):
    """SQLite: give free pages back to the file system (in incremental auto-vacuum mode)."""
    real = getattr(database, "obj", None) or database
    if isinstance(real, pw.SqliteDatabase):
        if database.execute_sql("PRAGMA auto_vacuum").fetchone()[0] == 2:
            # executescript steps the pragma to its end (execute() frees one page only).
            database.connection().executescript("PRAGMA incremental_vacuum;")


def cmd_retention(args, config):
    """Prune rows older than --days (default NEXUS_RETENTION_DAYS); 0 keeps everything."""
    from .db import connect
    days = args.days if args.days is not None else config.retention_days
    if days <= 0:
        print("retention is off (NEXUS_RETENTION_DAYS=0): nothing deleted")
        return 0
    database = connect(config.database_url)
    cutoff = cutoff_for(days)
    try:
        done = prune(database, cutoff, batch_size=args.batch_size)
    finally:
        database.close()
    print(f"deleted {done.requests} requests older than {cutoff.isoformat(timespec='seconds')} "
          f"UTC ({days} days) and {done.pieces} body pieces no remaining request uses; "
          f"freed {done.bytes_freed} bytes; hourly aggregates kept")
    return 0
