"""The one place where exceptions become responses: an error page, or JSON for scripts.

A database that is down or not migrated is a 503 that says so (and `/ready` reports
it), not a 500: the dashboard is fine, what it reads from is not.
"""
import logging

import peewee
from flask import jsonify, render_template
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

from common.migrations import MIGRATIONS, current_version

from .auth import wants_json
from .params import BadParameter

log = logging.getLogger("nexus.dashboard")


def _respond(status, title, message):
    if wants_json():
        return jsonify(error={"type": title.lower().replace(" ", "_"), "message": message}), status
    return render_template("errors/error.html", status=status, title=title, message=message), status


def _http(exc):
    return _respond(exc.code, exc.name, exc.description)


def _bad_parameter(exc):
    return _respond(400, "Bad Request", str(exc))


DATABASE_ERRORS = (peewee.DatabaseError, peewee.InterfaceError, MaxConnectionsExceeded)


def _cause(exc):
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def database_problem(database):
    """None when the database answers and is migrated, else what is wrong with it."""
    try:
        with database.connection_context():
            version = current_version(database)
    except Exception as exc:  # any failure is the answer
        return f"unreachable: {_cause(exc)}"
    if version < len(MIGRATIONS):
        return (f"not migrated: schema version {version} of {len(MIGRATIONS)}; "
                "run `nexus migrate` (or start the proxy, which migrates)")
    return None


def _database_down(exc):
    log.error("database error: %s", _cause(exc))
    return _respond(503, "Service Unavailable",
                    f"The database is unavailable or not migrated ({_cause(exc)}). "
                    "See /ready; `nexus migrate` applies pending migrations.")


def _unexpected(exc):
    if isinstance(exc, HTTPException):
        return _http(exc)
    if isinstance(exc, DATABASE_ERRORS):
        return _database_down(exc)
    log.exception("unhandled error")
    return _respond(500, "Internal Server Error", "Something went wrong; the log has the details.")


def install(app):
    """Register the handlers on `app`."""
    app.register_error_handler(BadParameter, _bad_parameter)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _unexpected)
