"""Multi-row INSERTs whose SQL is built once per table, columns and row count.

peewee builds an INSERT's SQL value by value; for the recorder's batches that was
most of the cost of a small row (docs/recording-performance.md). Here the statement
text is cached and the rows go in as parameters, through `database.execute_sql` as
peewee's own queries do, with the values each field's `db_value` gives: the stored
values are the ones peewee stored.
"""
import functools

import peewee as pw

CHUNK = 200


def _real(database):
    return getattr(database, "obj", None) or database


def is_postgres(database):
    """True for PostgreSQL (also behind peewee's DatabaseProxy)."""
    return isinstance(_real(database), pw.PostgresqlDatabase)


def _quote(name):
    return f'"{name}"'


@functools.lru_cache(maxsize=256)
def insert_sql(table, columns, rows, param, postgres, ignore=False, upsert=None, returning=None):
    """The INSERT text for `rows` rows of `columns`.

    `ignore` skips rows whose unique key exists (SQLite's `OR IGNORE`, PostgreSQL's
    `ON CONFLICT DO NOTHING`, as peewee's `on_conflict_ignore`); `upsert`, a pair
    (key columns, summed columns), adds the summed columns to an existing row.
    """
    one = "(" + ", ".join([param] * len(columns)) + ")"
    verb = "INSERT OR IGNORE INTO" if ignore and not postgres else "INSERT INTO"
    sql = (f"{verb} {_quote(table)} ({', '.join(map(_quote, columns))}) VALUES "
           + ", ".join([one] * rows))
    if ignore and postgres:
        sql += " ON CONFLICT DO NOTHING"
    if upsert:
        key, summed = upsert
        sets = ", ".join(f"{_quote(c)} = ({_quote(table)}.{_quote(c)} + EXCLUDED.{_quote(c)})"
                         for c in summed)
        sql += f" ON CONFLICT ({', '.join(map(_quote, key))}) DO UPDATE SET {sets}"
    if returning and postgres:
        sql += f" RETURNING {_quote(returning)}"
    return sql


def insert(database, model, rows, ignore=False, upsert=None, returning=None, chunk=CHUNK):
    """Insert `rows` (dicts with the same keys, named as the model's fields) in chunks.

    One statement per chunk, its text cached (`insert_sql`), inside the caller's transaction.

    With `returning` (a column) on PostgreSQL, return the set of its values in the rows
    actually inserted; elsewhere return None.
    """
    if not rows:
        return set() if returning and is_postgres(database) else None
    fields = model._meta.fields
    columns = tuple(rows[0])
    # Fields the rows leave out take their Python-side defaults, as with peewee's insert_many.
    given = set(columns)
    defaults = {name: f.default for name, f in fields.items()
                if name not in given and f.default is not None}
    if defaults:
        rows = [dict(row, **{n: d() if callable(d) else d for n, d in defaults.items()})
                for row in rows]
        columns += tuple(defaults)
    converters = [fields[c].db_value for c in columns]
    names = tuple(fields[c].column_name for c in columns)
    postgres = is_postgres(database)
    found = set() if returning and postgres else None
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        sql = insert_sql(model._meta.table_name, names, len(part), _real(database).param,
                         postgres, ignore, upsert, returning)
        params = [convert(row[c]) for row in part for c, convert in zip(columns, converters)]
        cursor = database.execute_sql(sql, params)
        if found is not None:
            found.update(r for (r,) in cursor.fetchall())
    return found
