"""Fill a database with realistic synthetic traffic, fast, then rebuild the aggregates.

    python -m bench.seed --database-url sqlite:///data/bench.db --rows 1000000

Rows come from `bench.synthetic` (conversations with branches, sub-agents, side calls,
errors, streams, cache tokens) spread over `--days` days ending now, inserted in time
order with bulk statements: executemany on SQLite, execute_values on PostgreSQL.
"""
import argparse
import datetime
import random
import sys
import time

import peewee

from common import db as nexus_db
from common.migrations import migrate
from common.models import ApiRequest, RequestBody, utcnow

from . import synthetic

ROW_COLUMNS = tuple(f.column_name for f in ApiRequest._meta.sorted_fields if f.name != "id")
BODY_COLUMNS = tuple(f.column_name for f in RequestBody._meta.sorted_fields)
BATCH = 2000


def _values(rows, columns, sqlite):
    out = []
    for row in rows:
        values = []
        for col in columns:
            value = row.get(col)
            if sqlite and isinstance(value, datetime.datetime):
                value = value.isoformat(" ", "microseconds")
            values.append(value)
        out.append(tuple(values))
    return out


def _insert(database, table, columns, rows):
    """Insert `rows` (dicts) into `table` in batches, in one transaction."""
    sqlite = isinstance(database, peewee.SqliteDatabase)
    names = ", ".join(columns)
    with database.atomic():
        cursor = database.cursor()
        for start in range(0, len(rows), BATCH):
            values = _values(rows[start:start + BATCH], columns, sqlite)
            if sqlite:
                marks = ", ".join("?" for _ in columns)
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)
            else:
                from psycopg2.extras import execute_values
                execute_values(cursor, f"INSERT INTO {table} ({names}) VALUES %s", values,
                               page_size=BATCH)


def rebuild_aggregates(database):
    """Rebuild the hourly aggregates with common.aggregates (helper B's module)."""
    from common import aggregates
    return aggregates.rebuild(database)


def seed(database, rows, days=30, seed_value=1, body_fraction=0.05, end=None, progress=None):
    """Insert about `rows` rows over `days` days ending at `end`; return the count inserted."""
    rng = random.Random(seed_value)
    end = end or utcnow()
    first_day = end.date() - datetime.timedelta(days=days - 1)
    per_day = max(1, rows // days)
    inserted = 0
    for n in range(days):
        want = min(per_day, rows - inserted) if n < days - 1 else rows - inserted
        if want <= 0:
            break
        day_rows, bodies = synthetic.day_of_traffic(rng, first_day + datetime.timedelta(days=n),
                                                    want, body_fraction)
        day_rows = [r for r in day_rows if r["timestamp"] <= end][:want]
        kept = {r["request_id"] for r in day_rows}
        _insert(database, "api_requests", ROW_COLUMNS, day_rows)
        _insert(database, "api_request_bodies", BODY_COLUMNS,
                [b for b in bodies if b["request_id"] in kept])
        inserted += len(day_rows)
        if progress:
            progress(inserted)
    while inserted < rows:  # today is cut at `end`: top up on earlier days
        day = first_day + datetime.timedelta(days=rng.randrange(max(1, days - 1)))
        extra, bodies = synthetic.day_of_traffic(rng, day, rows - inserted, body_fraction)
        extra = extra[:rows - inserted]
        kept = {r["request_id"] for r in extra}
        _insert(database, "api_requests", ROW_COLUMNS, extra)
        _insert(database, "api_request_bodies", BODY_COLUMNS,
                [b for b in bodies if b["request_id"] in kept])
        inserted += len(extra)
    return inserted


def main(argv=None):
    """Entry point: parse arguments, migrate, seed, rebuild aggregates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--body-fraction", type=float, default=0.05,
                        help="share of rows that get stored bodies and headers")
    args = parser.parse_args(argv)
    database = nexus_db.connect(args.database_url)
    migrate(database)
    started = time.monotonic()
    with database.connection_context():
        count = seed(database, args.rows, args.days, args.seed, args.body_fraction,
                     progress=lambda n: print(f"\r{n} rows", end="", file=sys.stderr))
        print(f"\ninserted {count} rows in {time.monotonic() - started:.0f} s", file=sys.stderr)
        started = time.monotonic()
        rebuild_aggregates(database)
        print(f"aggregates rebuilt in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
