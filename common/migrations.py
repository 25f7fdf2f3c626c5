"""Versioned schema migrations, safe when several processes start at once.

Each migration is a function of the database, numbered by its position in
`MIGRATIONS`. `migrate()` takes a database-wide lock (an advisory lock on
PostgreSQL, a write transaction on SQLite), applies what is pending, and
records each version in `nexus_schema_version`. Migrations are idempotent so
that a half-applied one can be run again: add a column with
`add_column_if_missing`, which looks before it adds.
"""
import logging
from contextlib import contextmanager

import peewee as pw
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as _apply

from .models import ALL_MODELS, LATER_MODELS, SchemaVersion

log = logging.getLogger("nexus.migrations")

# Any fixed 64-bit number, the same in every process of every version.
_ADVISORY_LOCK_KEY = 0x6E657875735F6D67  # "nexus_mg"


def _initial_schema(db):
    db.create_tables(ALL_MODELS, safe=True)


def _client_key_spend_index(db):
    # The proxy sums a client key's spend today on every budget check (cached briefly).
    db.execute_sql("CREATE INDEX IF NOT EXISTS api_requests_client_key_id_timestamp "
                   "ON api_requests (client_key_id, timestamp)")


_OLD_HOURLY_KEY = ["hour", "domain", "model", "request_type"]
_HOURLY_KEY = "api_usage_hourly_hour_domain_model_request_type_account_id"


def _hourly_usage_per_account(db):
    # The token page's 7/30-day columns need the account in the aggregates' key (ADR 0053).
    from .recording import aggregates
    add_column_if_missing(db, "api_usage_hourly", "account_id",
                          pw.CharField(max_length=255, default=""))
    for index in db.get_indexes("api_usage_hourly"):  # by its columns, whatever its name
        if index.unique and list(index.columns) == _OLD_HOURLY_KEY:
            db.execute_sql(f'DROP INDEX IF EXISTS "{index.name}"')
    db.execute_sql(f"CREATE UNIQUE INDEX IF NOT EXISTS {_HOURLY_KEY} ON api_usage_hourly "
                   "(hour, domain, model, request_type, account_id)")
    # Existing hours were summed across accounts: recompute every hour raw rows still
    # cover. Hours retention already thinned keep account_id '' (their rows are gone).
    aggregates.rebuild(db)


def _bodies_compressed_with_lz4(db):
    # PostgreSQL compresses large text with pglz by default: 21 ms per 1 MB body on the
    # server against 6 ms with lz4 (docs/recording-performance.md). Values are unchanged;
    # older ones stay pglz, and a server built without lz4 keeps pglz.
    if not isinstance(getattr(db, "obj", None) or db, pw.PostgresqlDatabase):
        return
    supported = db.execute_sql("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                               "WHERE name = 'default_toast_compression'").fetchone()
    if supported and supported[0]:
        db.execute_sql("ALTER TABLE api_request_bodies ALTER COLUMN request_body SET COMPRESSION "
                       "lz4, ALTER COLUMN response_body SET COMPRESSION lz4")


def _bodies_as_pieces(db):
    # Request bodies stored once per piece (docs/adr/0090): the pieces table, the per-day
    # storage figures, and the new columns of api_request_bodies. Existing bodies stay in
    # the legacy text columns until `nexus migrate` converts them in batches.
    from .models import BodyPiece, BodyStorageDaily
    db.create_tables([BodyPiece, BodyStorageDaily], safe=True)
    for name, field in (("request_recipe", pw.BlobField(null=True)),
                        ("request_size", pw.IntegerField(null=True)),
                        ("response_data", pw.BlobField(null=True)),
                        ("response_size", pw.IntegerField(null=True)),
                        ("response_headers_data", pw.BlobField(null=True))):
        add_column_if_missing(db, "api_request_bodies", name, field)
    if isinstance(getattr(db, "obj", None) or db, pw.PostgresqlDatabase):
        # The blobs are compressed already: TOAST should store them out of line without
        # trying to compress them again.
        db.execute_sql("ALTER TABLE body_pieces ALTER COLUMN data SET STORAGE EXTERNAL")
        db.execute_sql("ALTER TABLE api_request_bodies ALTER COLUMN request_recipe SET STORAGE "
                       "EXTERNAL, ALTER COLUMN response_data SET STORAGE EXTERNAL, "
                       "ALTER COLUMN response_headers_data SET STORAGE EXTERNAL")


def _i12s_search_index(db):
    # Full-text search (docs/search.md, ADR 0120): the entries, and their words indexed
    # by FTS5 on SQLite (contentless: the text is in search_entries, compressed) or by a
    # GIN index over a tsvector on PostgreSQL. Existing traffic is indexed by
    # `nexus search-index --rebuild`, not here: a migration runs at every proxy start.
    from .models import SearchEntry
    with db.bind_ctx([SearchEntry]):
        db.create_tables([SearchEntry], safe=True)
    if isinstance(getattr(db, "obj", None) or db, pw.PostgresqlDatabase):
        db.execute_sql("ALTER TABLE search_entries ADD COLUMN IF NOT EXISTS tsv tsvector")
        db.execute_sql("CREATE INDEX IF NOT EXISTS search_entries_tsv ON search_entries "
                       "USING gin (tsv)")
    else:
        db.execute_sql("CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(words, "
                       "content='', detail=none, tokenize='unicode61 remove_diacritics 0')")


MIGRATIONS = (
    _initial_schema,
    _client_key_spend_index,
    _hourly_usage_per_account,
    _bodies_compressed_with_lz4,
    _bodies_as_pieces,
    _i12s_search_index,
)


def add_column_if_missing(db, table, name, field):
    """Add `name` to `table` unless it is there already."""
    if name in {c.name for c in db.get_columns(table)}:
        return
    migrator = (PostgresqlMigrator if isinstance(db, pw.PostgresqlDatabase) else SqliteMigrator)(db)
    _apply(migrator.add_column(table, name, field))


@contextmanager
def _schema_lock(db):
    """Hold a database-wide lock for the duration, inside one transaction."""
    if isinstance(db, pw.PostgresqlDatabase):
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
            yield
    elif isinstance(db, pw.SqliteDatabase):
        # BEGIN IMMEDIATE takes the write lock up front; a second process
        # waits on busy_timeout instead of failing half-way.
        with db.atomic(lock_type="IMMEDIATE"):
            yield
    else:
        with db.atomic():
            yield


def current_version(db):
    """The highest applied version, 0 for an empty database."""
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    with db.bind_ctx([SchemaVersion]):
        return SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar() or 0


def migrate(db):
    """Apply pending migrations; return the versions applied (often none)."""
    with db.bind_ctx((SchemaVersion,) + ALL_MODELS + LATER_MODELS), db.connection_context(), _schema_lock(db):
        db.create_tables([SchemaVersion], safe=True)
        done = current_version(db)
        applied = []
        for version, step in enumerate(MIGRATIONS, start=1):
            if version > done:
                step(db)
                SchemaVersion.create(version=version)
                applied.append(version)
                log.info("applied migration %d (%s)", version, step.__name__)
        return applied
