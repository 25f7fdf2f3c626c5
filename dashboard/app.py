"""The dashboard's app factory: the only place its configuration is built."""
import datetime
import hashlib
import logging
import secrets

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider

from common import config as nexus_config
from common import db as nexus_db
from common.pricing import load_prices

from . import auth, errors, formatting, params, security
from .views import alerts, api, conversations, limits, overview, requests, search, tokens, usage

log = logging.getLogger("nexus.dashboard")


class JSONProvider(DefaultJSONProvider):
    """ISO 8601 datetimes (naive UTC) instead of Flask's HTTP dates."""

    sort_keys = False

    @staticmethod
    def default(o):
        if isinstance(o, (datetime.datetime, datetime.date)):
            return o.isoformat()
        return DefaultJSONProvider.default(o)


def _secret_key(config):
    if config.dashboard_secret_key:
        return config.dashboard_secret_key
    if config.dashboard_api_key:
        # Derived, so every worker and replica signs alike without another setting.
        return hashlib.sha256(b"claude-nexus-dashboard-session\0"
                              + config.dashboard_api_key.encode()).hexdigest()
    return secrets.token_hex(32)  # open mode has no login; sessions only carry CSRF tokens


def create_app(config=None):
    """Build the Flask app for `config` (a common.config.Config; default: the environment)."""
    config = config or nexus_config.load()
    app = Flask(__name__)
    app.json = JSONProvider(app)
    app.config.update(
        NEXUS=config, SECRET_KEY=_secret_key(config),
        SESSION_COOKIE_NAME="nexus_session", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=datetime.timedelta(hours=12),
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    database = nexus_db.connect(config.database_url)
    app.extensions["nexus_prices"] = load_prices(config.pricing_file)

    @app.teardown_appcontext
    def _close_database(exc):
        if not database.is_closed():
            database.close()

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/ready")
    def ready():
        problem = errors.database_problem(database)
        return jsonify(status="unavailable" if problem else "ready",
                       database=problem or "ok"), 503 if problem else 200

    for blueprint in (auth.bp, overview.bp, requests.bp, conversations.bp, tokens.bp, usage.bp,
                      limits.bp, alerts.bp, search.bp, api.bp):
        app.register_blueprint(blueprint)
    security.install(app)  # the Host check comes first: before any login or query
    auth.install(app)
    app.before_request(lambda: params.check_args(request.args))
    errors.install(app)
    formatting.install(app)
    return app
