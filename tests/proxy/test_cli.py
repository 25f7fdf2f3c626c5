"""`nexus-proxy`: migrations first (or a clear warning), then gunicorn with our config."""
import io
import json
import logging

from common import config as nexus_config
from common import logs
from common.db import open_database
from common.migrations import current_version, MIGRATIONS
from proxy import cli
from tests.proxy.conftest import free_port


def test_gunicorn_is_run_with_the_proxy_config_and_extra_arguments():
    argv = cli.gunicorn_argv(["--workers", "3"])
    assert argv == ["-c", "python:proxy.gunicorn_conf", "--workers", "3", "proxy.wsgi:app"]


def test_pending_migrations_are_applied(db_url):
    fresh = open_database(db_url)
    with fresh.connection_context():
        fresh.execute_sql("DROP TABLE nexus_schema_version")
    assert cli.migrate_or_warn(nexus_config.load({"DATABASE_URL": db_url}))
    with fresh.connection_context():
        assert current_version(fresh) == len(MIGRATIONS)


def test_an_unreachable_database_is_a_warning_not_a_failure():
    stream = io.StringIO()
    handler = logs.configure("info", stream)
    try:
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/nexus"
        assert cli.migrate_or_warn(nexus_config.load({"DATABASE_URL": url})) is False
    finally:
        logging.getLogger().removeHandler(handler)
    [line] = [json.loads(x) for x in stream.getvalue().splitlines() if "migrations" in x]
    assert line["level"] == "error" and "spooled" in line["event"] and line["reason"]
