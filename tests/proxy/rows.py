"""Read what the proxy recorded, from outside the proxy, on SQLite or PostgreSQL."""
import time

from common.db import open_database


def fetch_rows(db_url, where="", params=()):
    """Every api_requests row (as dicts), oldest first."""
    database = open_database(db_url)
    try:
        cursor = database.execute_sql(f"SELECT * FROM api_requests {where} ORDER BY id", params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        database.close()


def wait_for_rows(db_url, count, timeout=15.0, where="", params=()):
    """Poll until at least `count` rows exist; return them (fewer if the time ran out)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = fetch_rows(db_url, where, params)
        except Exception:  # the table may not exist yet, or the database is still down
            rows = []
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def row_for(db_url, request_id, timeout=15.0):
    """The row of one request, waiting for the recorder to write it."""
    rows = wait_for_rows(db_url, 1, timeout, "WHERE request_id = %s" if "postgres" in db_url
                         else "WHERE request_id = ?", (request_id,))
    return rows[0] if rows else None
