"""Fixtures of the reliability suite: the fake upstream and databases of both kinds."""
import pytest

from common import db as nexus_db
from common.migrations import migrate
from tests.databases import temporary_database
from tests.fake_upstream import start_fake_upstream

from .support import PrivatePostgres, postgres_bin, require


@pytest.fixture(scope="module")
def upstream():
    """The fake Anthropic API, one per test module."""
    with start_fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def module_db_url(request, tmp_path_factory):
    """A migrated database shared by a module's tests, once on SQLite and once on PostgreSQL."""
    with temporary_database(request.param, tmp_path_factory.mktemp("db")) as url:
        database = nexus_db.open_database(url)
        migrate(database)
        database.close()
        yield url


@pytest.fixture
def private_postgres():
    """A PostgreSQL server of this test's own, which the test may stop and start."""
    require(postgres_bin() is not None, "PostgreSQL server binaries (initdb) are not installed")
    server = PrivatePostgres()
    try:
        yield server.init()
    finally:
        server.destroy()
