"""Versioned schema migrations, safe when several processes start at once.

Each migration is a function of the database, numbered by its position in
`MIGRATIONS`. `migrate()` takes a database-wide lock (an advisory lock on
PostgreSQL, a write transaction on SQLite), applies what is pending, and
records each version in `nexus_schema_version`. Migrations are idempotent so
that a half-applied one can be run again: add a column with
`add_column_if_missing`, which looks before it adds.
"""
import logging
import re
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
    # Only this table: later ones come with later migrations.
    from .models import HourlyUsage
    aggregates.rebuild(db, tables=(HourlyUsage,))


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


def _i12a_alert_state(db):
    # Alerts (docs/alerts.md): per rule+group whether it fires, claimed atomically so that
    # every replica's writers post a crossing once; and the history of firings.
    from .alerts.state import MODELS
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS, safe=True)


def _i11l_ratelimit_samples(db):
    # Subscription windows per credential (docs/limits.md): the table the writer keeps,
    # filled from the last day of recorded headers so that an upgrade starts with a history.
    from .models import RateLimitSample
    from .recording import ratelimit_samples
    db.create_tables([RateLimitSample], safe=True)
    ratelimit_samples.backfill(db)


_TRAIT_COLUMNS = (("project", 512), ("git_branch", 255), ("developer", 255), ("subagent", 128))


def _i11_request_traits(db):
    # Grouping keys of /api/usage (docs/analytics.md, ADR 0110): on each row, indexed with
    # the timestamp. Rows recorded before stay without them until `nexus relink`
    # backfills them; nothing here reads bodies, so starting a proxy stays quick.
    # (An unreleased build of this migration also widened api_usage_hourly's key;
    # `_i11_usage_by_key` puts such a database right.)
    for name, length in _TRAIT_COLUMNS:
        add_column_if_missing(db, "api_requests", name, pw.CharField(max_length=length, null=True))
        db.execute_sql(f"CREATE INDEX IF NOT EXISTS api_requests_{name}_timestamp "
                       f"ON api_requests ({name}, timestamp)")
    add_column_if_missing(db, "task_invocations", "subagent_type",
                          pw.CharField(max_length=128, null=True))


_USAGE_TRAITS = tuple(name for name, _ in _TRAIT_COLUMNS) + ("session_id",)


def _i11_usage_by_key(db):
    # /api/usage's sums in a table of their own, keyed by hour, domain, model and the
    # grouping keys (ADR 0110), so that api_usage_hourly keeps its narrow key and the
    # overview scans hours, not hours times sessions. Filled from the rows (keys that
    # `nexus relink` has not backfilled yet are ''); where a dev build of
    # `_i11_request_traits` widened api_usage_hourly, from it instead (its hours outlive
    # retention) before it is summed back to the narrow key. Idempotent.
    from .models import HourlyUsageByKey
    from .recording import aggregates
    if _split_wide_hours(db) or db.table_exists("api_usage_hourly_keys"):
        return
    db.create_tables([HourlyUsageByKey], safe=True)
    aggregates.rebuild(db, tables=(HourlyUsageByKey,))


def _split_wide_hours(db):
    """Where api_usage_hourly has the grouping keys in its key (an unreleased build of
    `_i11_request_traits`): copy its hours to api_usage_hourly_keys and sum it back to the
    narrow key. Return whether it did. Runs before anything that writes the narrow key."""
    from .models import HourlyUsageByKey
    present = {c.name for c in db.get_columns("api_usage_hourly")}
    wide = [c for c in _USAGE_TRAITS if c in present]
    if not wide:
        return False
    db.create_tables([HourlyUsageByKey], safe=True)
    if len(wide) == len(_USAGE_TRAITS):
        _copy_wide_hours(db)
    _narrow_hourly_key(db, wide)
    return True


def _copy_wide_hours(db):
    from .models import USAGE_KEY
    from .recording.aggregates import USAGE_SUM_COLUMNS
    key, sums = ", ".join(USAGE_KEY), ", ".join(f"SUM({c})" for c in USAGE_SUM_COLUMNS)
    db.execute_sql("DELETE FROM api_usage_hourly_keys")
    db.execute_sql(f"INSERT INTO api_usage_hourly_keys ({key}, {', '.join(USAGE_SUM_COLUMNS)}) "
                   f"SELECT {key}, {sums} FROM api_usage_hourly GROUP BY {key}")


def _narrow_hourly_key(db, wide):
    """Sum api_usage_hourly back to (hour, domain, model, request_type, account_id) and
    drop the `wide` key columns, whatever other columns (histograms) the table has."""
    from .models import HOURLY_KEY
    key = ", ".join(HOURLY_KEY)
    for index in db.get_indexes("api_usage_hourly"):
        if index.unique and "hour" in index.columns and list(index.columns) != list(HOURLY_KEY):
            db.execute_sql(f'DROP INDEX IF EXISTS "{index.name}"')
    if wide:
        sums = [c.name for c in db.get_columns("api_usage_hourly")
                if c.name not in ("id", *HOURLY_KEY, *wide)]
        db.execute_sql(f"CREATE TEMPORARY TABLE nexus_hourly_narrow AS SELECT {key}, "
                       + ", ".join(f'SUM("{c}") AS "{c}"' for c in sums)
                       + f" FROM api_usage_hourly GROUP BY {key}")
        db.execute_sql("DELETE FROM api_usage_hourly")
        for name in wide:  # on an empty table: quick, also where SQLite copies the table
            db.execute_sql(f'ALTER TABLE api_usage_hourly DROP COLUMN "{name}"')
        columns = key + ", " + ", ".join(f'"{c}"' for c in sums)
        db.execute_sql(f"INSERT INTO api_usage_hourly ({columns}) "
                       f"SELECT {columns} FROM nexus_hourly_narrow")
        db.execute_sql("DROP TABLE nexus_hourly_narrow")
    if not any(i.unique and list(i.columns) == list(HOURLY_KEY)
               for i in db.get_indexes("api_usage_hourly")):
        db.execute_sql(f"CREATE UNIQUE INDEX IF NOT EXISTS {_HOURLY_KEY} ON api_usage_hourly "
                       f"({key})")


_HISTOGRAM_COLUMN = re.compile(r"^(latency|ttft)_le_(\d+)$")


def _i14_unpriced_and_fine_latency_buckets(db):
    # Log-spaced histogram bounds (ADR 0140): percentiles within 5 % of the exact ones,
    # where the old ten buckets were off by a factor of two. And `unpriced`, the count
    # of requests whose cost is null. Counts of old buckets move to the new bucket that
    # holds their bound (hours retention has thinned keep them so), then every hour raw
    # rows still cover is rebuilt from the rows.
    # A model without a price stores cost_usd null ("unpriced", CONTRACT), not 0. On
    # SQLite, dropping NOT NULL copies the table once (ALTER TABLE cannot do it before 3.53).
    from .models import histogram_columns
    from .recording import aggregates
    _split_wide_hours(db)  # a dev database of issue 11: its rebuild below writes the narrow key
    if not {c.name: c for c in db.get_columns("api_requests")}["cost_usd"].null:
        migrator = (PostgresqlMigrator if isinstance(db, pw.PostgresqlDatabase) else SqliteMigrator)(db)
        _apply(migrator.drop_not_null("api_requests", "cost_usd"))
    table = "api_usage_hourly"
    wanted = set(histogram_columns("latency") + histogram_columns("ttft"))
    for name in ["unpriced"] + histogram_columns("latency") + histogram_columns("ttft"):
        add_integer_column_if_missing(db, table, name)
    for column in [c.name for c in db.get_columns(table)]:
        match = _HISTOGRAM_COLUMN.match(column)
        if not match or column in wanted:
            continue
        into = aggregates.bucket_column(match[1], int(match[2]))
        db.execute_sql(f'UPDATE {table} SET "{into}" = "{into}" + "{column}"')
        db.execute_sql(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    aggregates.rebuild_aggregates(db)


def _i13_revoked_sessions(db):
    # Logout ends a dashboard session for good, in every worker and replica (issue 13).
    from .models import RevokedSession
    db.create_tables([RevokedSession], safe=True)


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


def _i16_daily_usage(db):
    # The hours summed per day (ADR 0093): the 30-day overview scanned 720 hours of some
    # 280 columns per key. Filled from the hours in one INSERT ... SELECT.
    from .models import DailyUsage
    from .recording import aggregates
    with db.bind_ctx([DailyUsage]):
        db.create_tables([DailyUsage], safe=True)
        aggregates.rebuild_days(db)


MIGRATIONS = (
    _initial_schema,
    _client_key_spend_index,
    _hourly_usage_per_account,
    _bodies_compressed_with_lz4,
    _bodies_as_pieces,
    _i12a_alert_state,
    _i11l_ratelimit_samples,
    _i11_request_traits,
    _i14_unpriced_and_fine_latency_buckets,
    _i13_revoked_sessions,
    _i11_usage_by_key,
    _i12s_search_index,
    _i16_daily_usage,
)


def add_integer_column_if_missing(db, table, name):
    """Add an integer column `name`, NOT NULL DEFAULT 0, unless it is there already.

    One plain ALTER TABLE on both databases (peewee's SQLite migrator copies the table
    to add NOT NULL, once per column)."""
    if name in {c.name for c in db.get_columns(table)}:
        return
    db.execute_sql(f'ALTER TABLE {table} ADD COLUMN "{name}" INTEGER NOT NULL DEFAULT 0')


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
