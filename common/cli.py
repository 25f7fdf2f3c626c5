"""The `nexus` admin command: argument parsing and dispatch only.

Each command is a function `(args, config) -> exit code` in the module that owns
its noun, imported only when that command runs.
"""
import argparse
import importlib
import logging
import sys

from . import config as nexus_config


def _no_args(p):
    pass


def _migrate(p):
    p.add_argument("--batch-size", type=int, default=500,
                   help="bodies converted to pieces per transaction")
    p.add_argument("--no-vacuum", action="store_true",
                   help="SQLite: do not rewrite an old file to give freed space back")


def _keys_create(p):
    p.add_argument("--name", default="", help="a label shown in lists")
    p.add_argument("--domain", help="limit the key to one domain (default: every domain)")
    p.add_argument("--rpm", type=int, help="requests per minute allowed")
    p.add_argument("--daily-budget", type=float, help="USD per UTC day allowed")


def _keys_revoke(p):
    p.add_argument("key_id", help="the key's public id, as `nexus keys list` shows it")


def _credentials_check(p):
    p.add_argument("domain", nargs="?", help="check only this domain")


def _retention(p):
    p.add_argument("--days", type=int, help="override NEXUS_RETENTION_DAYS")
    p.add_argument("--batch-size", type=int, default=5000)


def _relink(p):
    p.add_argument("--batch-size", type=int, default=1000)


def _reprice(p):
    p.add_argument("--since", help="only rows at or after this ISO date")


def _search_index(p):
    p.add_argument("--rebuild", action="store_true",
                   help="empty the index first, then index every stored piece and answer")
    p.add_argument("--batch-size", type=int, default=500)


def _export(p):
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--since", help="ISO date or datetime, inclusive")
    p.add_argument("--until", help="ISO date or datetime, exclusive")
    p.add_argument("--domain")
    p.add_argument("--output", "-o", default="-", help="file path, - for stdout")


def _alerts_check(p):
    p.add_argument("file", nargs="?", help="the rules file (default: NEXUS_ALERTS_FILE)")


# (command words, argument setup, "module:function", help)
COMMANDS = (
    (("migrate",), _migrate, "common.cli:cmd_migrate",
     "apply pending database migrations, then convert bodies stored before pieces"),
    (("keys", "create"), _keys_create, "common.keys:cmd_create", "make a client key (printed once)"),
    (("keys", "list"), _no_args, "common.keys:cmd_list", "list client keys (never the keys)"),
    (("keys", "revoke"), _keys_revoke, "common.keys:cmd_revoke", "revoke a client key"),
    (("credentials", "check"), _credentials_check, "common.credentials:cmd_check",
     "validate credential files and report token expiry"),
    (("retention",), _retention, "common.retention:cmd_retention",
     "delete rows older than NEXUS_RETENTION_DAYS, in batches, keeping aggregates"),
    (("relink",), _relink, "common.recording.relink:cmd_relink",
     "rebuild conversation links from stored bodies and report the linked share"),
    (("reprice",), _reprice, "common.recording.reprice:cmd_reprice", "recompute costs from stored usage"),
    (("export",), _export, "common.export:cmd_export", "write rows as CSV or JSON lines"),
    (("alerts", "check"), _alerts_check, "common.alerts.values:cmd_check",
     "validate the alert rules file and list its rules"),
    (("search-index",), _search_index, "common.recording.search_index:cmd_search_index",
     "index stored text the full-text search does not hold yet; --rebuild: all of it again"),
)


def build_parser():
    """The argparse parser for every command in COMMANDS."""
    parser = argparse.ArgumentParser(prog="nexus", description="Claude Nexus administration")
    groups = {(): parser.add_subparsers(dest="command", required=True, metavar="COMMAND")}
    parsers = {}
    for words, setup, target, help_text in COMMANDS:
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                parsers[prefix] = sub
                groups[prefix] = sub.add_subparsers(dest=f"sub{depth}", required=True, metavar="COMMAND")
        leaf = groups[words[:-1]].add_parser(words[-1], help=help_text, description=help_text)
        setup(leaf)
        leaf.set_defaults(target=target)
    return parser


def main(argv=None, environ=None):
    """Entry point of `nexus`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = nexus_config.load(environ)
    except nexus_config.ConfigError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 2
    module_name, func_name = args.target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return func(args, config) or 0


def cmd_migrate(args, config):
    """Apply pending migrations to DATABASE_URL, then convert legacy bodies in batches."""
    from .db import connect
    from .migrations import migrate
    from .recording import legacy

    database = connect(config.database_url)
    try:
        applied = migrate(database)
        print(f"applied migrations: {applied}" if applied else "database is up to date")
        if legacy.legacy_rows():
            converted, kept = legacy.convert(database, batch_size=args.batch_size, progress=lambda
                                             done, kept: print(f"bodies converted: {done}", end="\r"))
            if converted or kept:
                print(f"bodies converted to pieces: {converted}; kept as text: {kept}")
            if converted:
                _give_space_back(database, args.no_vacuum)
    finally:
        database.close()
    return 0


def _give_space_back(database, skip):
    """SQLite: give back the space the conversion emptied (a VACUUM, unless --no-vacuum)."""
    import peewee

    from .retention import reclaim
    real = getattr(database, "obj", None) or database
    if not isinstance(real, peewee.SqliteDatabase):
        return
    if skip:
        reclaim(database)  # what incremental auto-vacuum can give back without a rewrite
        print("SQLite: pages the conversion emptied stay in the file (--no-vacuum)")
        return
    # Bodies small enough to live inside table pages leave those pages half empty: only a
    # rewrite gives the space back. It also turns on incremental auto-vacuum for retention.
    print("SQLite: rewriting the file once to give the freed space back (VACUUM)")
    database.execute_sql("PRAGMA auto_vacuum = INCREMENTAL")
    database.execute_sql("VACUUM")


if __name__ == "__main__":
    sys.exit(main())
