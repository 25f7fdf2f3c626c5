"""Migrations: applied once, idempotent, safe when several processes race."""
import datetime
import multiprocessing

import peewee as pw
import pytest
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator
from playhouse.migrate import migrate as apply_migrations

from common.recording import aggregates
from common import db as nexus_db
from common import migrations, models
from common.migrations import MIGRATIONS, current_version, migrate
from common.models import ApiRequest, HourlyUsage, SchemaVersion
from tests.conftest import DATABASE_KINDS
from tests.databases import temporary_database


def _migrate_in_child(url, results):
    database = nexus_db.open_database(url)
    results.put(migrate(database))


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_concurrent_starts_apply_each_migration_once(kind, tmp_path):
    with temporary_database(kind, tmp_path) as url:
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        procs = [ctx.Process(target=_migrate_in_child, args=(url, results)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        applied = sorted(v for _ in procs for v in results.get(timeout=5))
        assert applied == list(range(1, len(MIGRATIONS) + 1))
        database = nexus_db.open_database(url)
        with database.connection_context():
            assert current_version(database) == len(MIGRATIONS)
            assert "api_requests" in database.get_tables()


def test_migrate_twice_is_a_no_op(database):
    assert migrate(database) == []
    assert current_version(database) == len(MIGRATIONS)


def _hourly_at_version_2():
    """api_usage_hourly as version 2 made it: no account_id, unique (hour, domain, model, type)."""
    class HourlyUsage(pw.Model):  # the same name, so that the index has version 2's name
        class Meta:
            table_name = "api_usage_hourly"
            legacy_table_names = False
            indexes = ((("hour", "domain", "model", "request_type"), True),)

    for name, field in models.HourlyUsage._meta.fields.items():
        if name == "id" or name in models.HOURLY_KEY[4:]:  # account_id and later keys came later
            continue
        extra = {"max_length": field.max_length} if isinstance(field, pw.CharField) else {}
        HourlyUsage._meta.add_field(name, type(field)(default=field.default, **extra))
    return HourlyUsage


def _old_rows():
    start = datetime.datetime(2026, 11, 20, 9, 10)
    return [{"request_id": f"00000000-0000-4000-8000-{n:012d}", "domain": "shared.example",
             "timestamp": start + datetime.timedelta(minutes=25 * n), "method": "POST",
             "path": "/v1/messages", "model": "claude-sonnet-4-5", "request_type": "inference",
             "response_status": 200 if n % 5 else 529, "account_id": ("acc_a", "acc_b", None)[n % 3],
             "input_tokens": 10 + n, "output_tokens": 100 * n, "cache_read_input_tokens": 7 * n,
             "cache_creation_input_tokens": 3, "cost_usd": 0.25 * n, "duration_ms": 40.0 * n}
            for n in range(12)]


def _totals(model):
    columns = ("requests", "errors", "input_tokens", "output_tokens", "cache_read_input_tokens",
               "cost_usd", aggregates.bucket_column("latency", 250))
    query = model.select(model.hour, *[pw.fn.SUM(getattr(model, c)).alias(c) for c in columns])
    return {str(r["hour"])[:19]: tuple(round(float(r[c]), 6) for c in columns)
            for r in query.group_by(model.hour).dicts()}


def test_a_version_2_database_gets_exact_per_account_aggregates(database):
    # Rebuild this fresh database as version 2 left it, with rows and their aggregates.
    database.drop_tables([HourlyUsage])
    old = _hourly_at_version_2()
    with database.bind_ctx([old]):
        database.create_tables([old])
    SchemaVersion.delete().where(SchemaVersion.version > 2).execute()
    rows = _old_rows()
    ApiRequest.insert_many(rows).execute()
    with database.bind_ctx([old]):
        totals = {}  # what version 2's recorder summed: per hour, domain, model, type
        for row in rows:
            key, inc = aggregates.increments(row)
            into = totals.setdefault(key[:4], dict.fromkeys(aggregates.SUM_COLUMNS, 0))
            for c in aggregates.SUM_COLUMNS:
                into[c] += inc[c]
        old.insert_many([dict(zip(("hour", "domain", "model", "request_type"), k), **v)
                         for k, v in totals.items()]).execute()
        before = _totals(old)
    before_indexes = {i.name for i in database.get_indexes("api_usage_hourly")}
    assert migrate(database) == list(range(3, len(MIGRATIONS) + 1))
    assert "account_id" in {c.name for c in database.get_columns("api_usage_hourly")}
    indexes = {i.name: i for i in database.get_indexes("api_usage_hourly")}
    assert "api_usage_hourly_hour_domain_model_request_type" in before_indexes
    assert "api_usage_hourly_hour_domain_model_request_type" not in indexes
    # Later migrations widen the unique key (issue 11 adds the grouping keys).
    assert [list(i.columns) for i in indexes.values() if i.unique and "hour" in i.columns] \
        == [list(models.HOURLY_KEY)]
    assert _totals(HourlyUsage) == before
    per_account = {a or "": (HourlyUsage.select(pw.fn.SUM(HourlyUsage.output_tokens))
                             .where(HourlyUsage.account_id == (a or "")).scalar())
                   for a in ("acc_a", "acc_b", None)}
    assert per_account == {a or "": sum(r["output_tokens"] for r in rows if r["account_id"] == a)
                           for a in ("acc_a", "acc_b", None)}
    # The recorder's upsert targets the new key: a later row adds to its account's hour.
    aggregates.add([dict(rows[1], request_id="x")])
    hour = aggregates.hour_of(rows[1]["timestamp"])
    assert HourlyUsage.get(HourlyUsage.hour == hour, HourlyUsage.account_id == "acc_b").requests == 2
    assert migrate(database) == []


def test_bodies_are_compressed_with_lz4_on_postgresql(tmp_path):
    with temporary_database("postgresql", tmp_path) as url:
        database = nexus_db.open_database(url)
        try:
            migrate(database)
            methods = database.execute_sql(
                "SELECT attname, attcompression FROM pg_attribute "
                "WHERE attrelid = 'api_request_bodies'::regclass "
                "AND attname IN ('request_body', 'response_body')").fetchall()
        finally:
            database.close()
    assert dict(methods) == {"request_body": "l", "response_body": "l"}


def _as_before_issue_11(database):
    """Take this fresh database back to the schema before `_i11_request_traits`."""
    database.drop_tables([models.HourlyUsageByKey])
    for table, columns in (("api_requests", ("project", "git_branch", "developer", "subagent")),
                           ("task_invocations", ("subagent_type",))):
        for index in database.get_indexes(table):
            if set(index.columns) & set(columns):
                database.execute_sql(f'DROP INDEX "{index.name}"')
        for column in columns:
            database.execute_sql(f'ALTER TABLE {table} DROP COLUMN {column}')
    # Versions apply above the highest recorded: those after it run again (idempotent).
    SchemaVersion.delete().where(
        SchemaVersion.version >= _version(migrations._i11_request_traits)).execute()


def _version(step):
    return MIGRATIONS.index(step) + 1


def _insert_hour(database, values):
    columns = list(values)
    mark = "?" if isinstance(database, pw.SqliteDatabase) else "%s"
    database.execute_sql(f"INSERT INTO api_usage_hourly ({', '.join(columns)}) VALUES "
                         f"({', '.join(mark for _ in columns)})", list(values.values()))


def _schema(database):
    """Columns and unique keys of the two hourly tables, to compare databases by."""
    return {table: (sorted(c.name for c in database.get_columns(table)),
                    sorted(list(i.columns) for i in database.get_indexes(table) if i.unique))
            for table in ("api_usage_hourly", "api_usage_hourly_keys")}


def test_the_grouping_keys_are_added_to_an_existing_database(database):
    fresh = _schema(database)
    _as_before_issue_11(database)
    hour = datetime.datetime(2026, 11, 20, 9)
    _insert_hour(database, {"hour": hour, "domain": "a", "model": "m", "request_type": "inference",
                            "account_id": "", **{c: 3 if c == "requests" else 0
                                                 for c in aggregates.SUM_COLUMNS}})
    rows = _old_rows()
    ApiRequest.insert_many([dict(r, session_id=f"s{n % 2}") for n, r in enumerate(rows)]).execute()
    assert migrate(database) == list(range(_version(migrations._i11_request_traits),
                                           len(MIGRATIONS) + 1))
    for table, column in (("api_requests", "project"), ("api_requests", "subagent"),
                          ("task_invocations", "subagent_type")):
        assert column in {c.name for c in database.get_columns(table)}, (table, column)
    assert "api_requests_project_timestamp" in {i.name for i in database.get_indexes("api_requests")}
    assert _schema(database) == fresh
    # The overview's table is untouched; /api/usage's is filled from the rows, per session.
    assert HourlyUsage.get(HourlyUsage.hour == hour, HourlyUsage.domain == "a").requests == 3
    daily, midnight = models.DailyUsage, hour.replace(hour=0)
    assert daily.get(daily.day == midnight, daily.domain == "a").requests == 3  # days from hours
    by_key = models.HourlyUsageByKey
    sessions = dict(by_key.select(by_key.session_id, pw.fn.SUM(by_key.output_tokens))
                    .group_by(by_key.session_id).tuples())
    assert sessions == {"s0": sum(r["output_tokens"] for r in rows[::2]),
                        "s1": sum(r["output_tokens"] for r in rows[1::2])}
    assert {k.project for k in by_key.select()} == {""}  # until `nexus relink`
    row = {"timestamp": hour, "domain": "a", "model": "m", "request_type": "inference",
           "project": "/p", "output_tokens": 5}
    aggregates.add([row, dict(row)])
    assert HourlyUsage.get(HourlyUsage.hour == hour, HourlyUsage.domain == "a").requests == 5
    assert daily.get(daily.day == midnight, daily.domain == "a").requests == 5
    assert by_key.get(by_key.project == "/p").requests == 2
    assert migrate(database) == []


_OLD_BOUNDS = (100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000)


def test_old_latency_buckets_become_fine_ones_rebuilt_from_the_rows(database):
    """A database with the ten old buckets: the hours raw rows cover are rebuilt (their
    percentiles now within 5 %), an hour retention emptied keeps its counts, moved into
    the new bucket holding each old bound, and `unpriced` counts null costs."""
    version = MIGRATIONS.index(migrations._i14_unpriced_and_fine_latency_buckets) + 1
    new = [c for c in models.histogram_columns("latency") + models.histogram_columns("ttft")
           if not c.endswith("_inf")] + ["unpriced"]
    for column in new:
        database.execute_sql(f'ALTER TABLE api_usage_hourly DROP COLUMN "{column}"')
    for prefix in ("latency", "ttft"):
        for bound in _OLD_BOUNDS:
            migrations.add_integer_column_if_missing(database, "api_usage_hourly",
                                                     f"{prefix}_le_{bound}")
    migrator = (PostgresqlMigrator if isinstance(database, pw.PostgresqlDatabase)
                else SqliteMigrator)(database)
    apply_migrations(migrator.add_not_null("api_requests", "cost_usd"))  # as before
    SchemaVersion.delete().where(SchemaVersion.version >= version).execute()
    hour = datetime.datetime(2026, 11, 20, 9)
    rows = [{"request_id": f"00000000-0000-4000-8000-{n:012d}", "domain": "a.example",
             "timestamp": hour + datetime.timedelta(minutes=n), "method": "POST",
             "path": "/v1/messages", "model": "claude-sonnet-4-5", "request_type": "inference",
             "response_status": 200, "cost_usd": 0.01,
             "duration_ms": 34.0 if n < 30 else 280.0, "first_token_ms": 20.0}
            for n in range(40)]
    ApiRequest.insert_many(rows).execute()
    pruned = hour - datetime.timedelta(hours=5)  # its rows are gone, its sums stay
    database.execute_sql(
        'INSERT INTO api_usage_hourly (hour, domain, model, request_type, account_id, requests, '
        'errors, input_tokens, output_tokens, cache_creation_input_tokens, '
        'cache_read_input_tokens, cost_usd, duration_ms_sum, "latency_le_100", "latency_le_250", '
        '"ttft_le_100", latency_inf, ttft_inf) VALUES (?, ?, ?, ?, ?, 3, 0, 0, 0, 0, 0, 0.5, 400, 2, 1, 3, 0, 0)'.replace(
            "?", "%s" if isinstance(database, pw.PostgresqlDatabase) else "?"),
        (pruned, "a.example", "claude-sonnet-4-5", "inference", ""))
    assert migrate(database) == list(range(version, len(MIGRATIONS) + 1))
    columns = {c.name for c in database.get_columns("api_usage_hourly")}
    assert "latency_le_250" not in columns and set(new) <= columns
    old = HourlyUsage.get(HourlyUsage.hour == pruned)
    assert old.requests == 3 and sum(aggregates.histogram(old, "latency")) == 3
    assert getattr(old, aggregates.bucket_column("latency", 100)) == 2
    assert getattr(old, aggregates.bucket_column("ttft", 100)) == 3
    # cost_usd may now be null: an unpriced request, counted apart in the aggregates
    ApiRequest.update(cost_usd=None).where(ApiRequest.request_id == rows[0]["request_id"]).execute()
    aggregates.rebuild_aggregates(database)
    now = HourlyUsage.get(HourlyUsage.hour == hour)
    assert (now.requests, now.unpriced) == (40, 1) and now.cost_usd == pytest.approx(0.39)
    counts = aggregates.histogram(now, "latency")
    assert aggregates.percentile_from_histogram(counts, 0.5) == pytest.approx(34.0, rel=0.05)
    assert aggregates.percentile_from_histogram(counts, 0.95) == pytest.approx(280.0, rel=0.05)
    assert migrate(database) == []


LE_250 = aggregates.bucket_column("latency", 250)


def _as_widened_by_a_dev_build(database, rerun):
    """This fresh database as the unreleased `_i11_request_traits` left it: the grouping
    keys in api_usage_hourly's unique key, and no api_usage_hourly_keys; from `rerun` on,
    it has yet to run the migrations."""
    database.drop_tables([models.HourlyUsageByKey])
    for index in database.get_indexes("api_usage_hourly"):
        if index.unique and "hour" in index.columns:
            database.execute_sql(f'DROP INDEX "{index.name}"')
    for name in migrations._USAGE_TRAITS:
        migrations.add_column_if_missing(database, "api_usage_hourly", name,
                                         pw.CharField(max_length=255, default=""))
    database.execute_sql("CREATE UNIQUE INDEX api_usage_hourly_traits_key ON api_usage_hourly "
                         "(hour, domain, model, request_type, account_id, project, git_branch, "
                         "developer, subagent, session_id)")
    SchemaVersion.delete().where(SchemaVersion.version >= _version(rerun)).execute()


@pytest.mark.parametrize("rerun", [
    migrations._i11_usage_by_key,
    # Widened, then upgraded straight past issue 14, whose rebuild writes the narrow key.
    migrations._i14_unpriced_and_fine_latency_buckets],
    ids=["after-issue-14", "before-issue-14"])
def test_a_database_widened_by_a_dev_build_gets_the_narrow_key_back(database, rerun):
    fresh = _schema(database)
    _as_widened_by_a_dev_build(database, rerun)
    # An hour retention has pruned (no rows left): two sessions of one project.
    hour = datetime.datetime(2026, 10, 1, 9)
    for session, tokens in (("s1", 10), ("s2", 32)):
        _insert_hour(database, {"hour": hour, "domain": "a", "model": "m", "request_type": "inference",
                                "account_id": "acc", **dict.fromkeys(migrations._USAGE_TRAITS, ""),
                                "project": "/p", "session_id": session,
                                **dict.fromkeys(aggregates.SUM_COLUMNS, 0), "requests": 1,
                                "output_tokens": tokens, LE_250: 1, "cost_usd": 0.5})
    assert migrate(database) == list(range(_version(rerun), len(MIGRATIONS) + 1))
    assert _schema(database) == fresh
    overview = HourlyUsage.get(HourlyUsage.hour == hour)  # one row again, the sums kept
    assert (overview.requests, overview.output_tokens, getattr(overview, LE_250),
            overview.cost_usd) == (2, 42, 2, 1.0)
    by_key = models.HourlyUsageByKey
    assert sorted((k.project, k.session_id, k.output_tokens) for k in by_key.select()) == \
        [("/p", "s1", 10), ("/p", "s2", 32)]
    with database.atomic():  # once more: the same state
        migrations._i11_usage_by_key(database)
    assert _schema(database) == fresh
    assert HourlyUsage.select().count() == 1 and by_key.select().count() == 2
