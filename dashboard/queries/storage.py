"""What recording bodies costs: bytes received and stored over a range, the database's size.

Both are cheap at any size: `body_storage_daily` holds a row per day and domain, and the
database's size comes from its own bookkeeping (SQLite's page count, PostgreSQL's
`pg_database_size`), never from scanning rows.
"""
import peewee as pw

from common.models import BodyStorageDaily

from .stats import plain

D = BodyStorageDaily


def database_bytes():
    """The database's size on disk, in bytes (None if it cannot say)."""
    database = D._meta.database
    real = getattr(database, "obj", None) or database
    try:
        if isinstance(real, pw.PostgresqlDatabase):
            return database.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]
        pages = database.execute_sql("PRAGMA page_count").fetchone()[0]
        free = database.execute_sql("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * database.execute_sql("PRAGMA page_size").fetchone()[0]
    except pw.DatabaseError:
        return None


def storage(rng):
    """{"requests", "received_bytes", "stored_bytes", "stored_share", "database_bytes"} for the
    days of the range (and its domain)."""
    query = D.select(pw.fn.SUM(D.requests), pw.fn.SUM(D.received_bytes), pw.fn.SUM(D.stored_bytes)).where(
        D.day >= rng.since.date(), D.day <= rng.until.date())
    if rng.domain:
        query = query.where(D.domain == rng.domain)
    requests, received, stored = (plain(v) or 0 for v in query.tuples().get())
    return {"requests": requests, "received_bytes": received, "stored_bytes": stored,
            "stored_share": stored / received if received else None,
            "database_bytes": database_bytes()}
