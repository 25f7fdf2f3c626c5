"""`nexus-proxy`: apply pending migrations, then run the proxy under gunicorn.

A bad alerts file (NEXUS_ALERTS_FILE) stops start-up with the line that is wrong.
gunicorn runs in this process (common.serving), so the proxy starts however the
interpreter was (Nix's wrappers add the dependencies inside the entry script only).

Migrations take a database-wide lock, so several proxies starting at once is
safe. If the database is unreachable the proxy starts anyway: it serves and
spools records, and its writer applies the migrations once the database is back.
"""
import logging
import sys

from common import config as nexus_config
from common import logs
from common import serving

log = logging.getLogger("nexus.proxy.cli")


CONFIG_MODULE = "proxy.gunicorn_conf"
APP = "proxy.wsgi:app"


def gunicorn_argv(extra=()):
    """The arguments gunicorn runs the proxy with (extra arguments before the app)."""
    return serving.gunicorn_args(CONFIG_MODULE, APP, extra)


def migrate_or_warn(config):
    """Apply pending migrations; on failure log why and carry on."""
    from common.db import open_database
    from common.migrations import migrate

    try:
        database = open_database(config.database_url)
        applied = migrate(database)
        database.close()
    except Exception as exc:  # the proxy must come up even when the database is down
        logs.event(log, "migrations not applied: database unreachable, records will be spooled",
                   logging.ERROR, reason=f"{type(exc).__name__}: {str(exc).strip()[:300]}")
        return False
    if applied:
        logs.event(log, "migrations applied", versions=applied)
    return True


def check_alerts(config):
    """Why NEXUS_ALERTS_FILE cannot be used (naming the line), or None when it can."""
    from common.alerts.rules import RulesError
    from common.alerts.values import load_rules

    try:
        load_rules(config.alerts_file)
    except RulesError as exc:
        return str(exc)
    return None


def main(argv=None, environ=None):
    """Entry point of `nexus-proxy`; arguments are passed on to gunicorn."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = nexus_config.load(environ)
    except nexus_config.ConfigError as exc:
        print(f"nexus-proxy: {exc}", file=sys.stderr)
        return 2
    error = check_alerts(config)
    if error:
        print(f"nexus-proxy: {error}", file=sys.stderr)
        return 2
    logs.configure(config.log_level)
    migrate_or_warn(config)
    serving.run("nexus-proxy", CONFIG_MODULE, APP, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
