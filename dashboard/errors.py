"""The one place where exceptions become responses: an error page, or JSON for scripts."""
import logging

from flask import jsonify, render_template
from werkzeug.exceptions import HTTPException

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


def _unexpected(exc):
    if isinstance(exc, HTTPException):
        return _http(exc)
    log.exception("unhandled error")
    return _respond(500, "Internal Server Error", "Something went wrong; the log has the details.")


def install(app):
    """Register the handlers on `app`."""
    app.register_error_handler(BadParameter, _bad_parameter)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _unexpected)
