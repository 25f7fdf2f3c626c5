"""Migrations: applied once, idempotent, safe when several processes race."""
import multiprocessing

import pytest

from common import db as nexus_db
from common.migrations import MIGRATIONS, current_version, migrate
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
