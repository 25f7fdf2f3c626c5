"""Fixtures every test package shares: databases on SQLite and on PostgreSQL."""
import pytest

from common import db as nexus_db
from common.migrations import migrate
from tests.databases import temporary_database

DATABASE_KINDS = ("sqlite", "postgresql")


@pytest.fixture(autouse=True)
def _close_every_database(monkeypatch):
    """Close, after each test, every database it opened through common.db.

    A command under test (`nexus migrate`, `reprice`, ...) binds the models to a
    database of its own, which a later query of the test reopens; Python 3.13+ warns
    of such an unclosed sqlite3 connection in whichever test the collector runs next.
    """
    opened = []
    original = nexus_db.open_database

    def tracked(*args, **kwargs):
        database = original(*args, **kwargs)
        opened.append(database)
        return database

    monkeypatch.setattr(nexus_db, "open_database", tracked)
    yield
    for database in opened:
        database.close()


@pytest.fixture(params=DATABASE_KINDS)
def db_url(request, tmp_path):
    """The URL of an empty, migrated database; every test using it runs on both kinds."""
    with temporary_database(request.param, tmp_path) as url:
        database = nexus_db.open_database(url)
        migrate(database)
        database.close()
        yield url


@pytest.fixture
def database(db_url):
    """The models bound to a fresh, migrated database, connected."""
    database = nexus_db.connect(db_url)
    database.connect(reuse_if_open=True)
    yield database
    database.close()


@pytest.fixture
def fake_upstream():
    """The fake Anthropic API (tests/fake_upstream.py) in its own process, on a free port."""
    from tests.fake_upstream import start_fake_upstream
    with start_fake_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def claude_code():
    """Real Claude Code's `claude` (tests/claude_code.py): skipped when it is not installed,
    a failure under NEXUS_REQUIRE_ALL=1."""
    from tests.claude_code import require_claude_code
    return require_claude_code()
