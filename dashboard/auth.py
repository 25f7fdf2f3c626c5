"""Login with DASHBOARD_API_KEY, signed sessions, the X-Dashboard-Key header, CSRF.

The session holds a keyed fingerprint of the key, never the key, so changing
DASHBOARD_API_KEY logs everyone out, and a random session id, which logout
records in `dashboard_revoked_sessions`, so that a cookie copied before the logout
is refused afterwards. Failed logins and wrong X-Dashboard-Key headers are counted
per client address; past the limit both answer 429 until the window has passed.
"""
import collections
import hashlib
import hmac
import secrets
import threading
import time
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, g, jsonify, redirect, render_template, request,
                   session, url_for)

from common.models import RevokedSession, utcnow

bp = Blueprint("auth", __name__)

OPEN_ENDPOINTS = frozenset({"auth.login", "health", "ready"})
LOGIN_LIMIT, LOGIN_WINDOW_S = 10, 300
_failures = collections.defaultdict(collections.deque)
_failures_lock = threading.Lock()


def _api_key():
    return current_app.config["NEXUS"].dashboard_api_key


def _fingerprint(key):
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"login:" + key.encode(), hashlib.sha256).hexdigest()


def _key_matches(candidate):
    key = _api_key()
    return bool(candidate) and hmac.compare_digest(candidate.encode(), key.encode())


def csrf_token():
    """This session's CSRF token, made on first use."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def wants_json():
    """True for API paths and `?format=json`: such callers get JSON, also for errors."""
    return request.path.startswith("/api/") or request.args.get("format") == "json"


def _guard():
    g.open_mode = _api_key() is None
    g.via_header = False
    if g.open_mode or request.endpoint in OPEN_ENDPOINTS:
        return None
    header = request.headers.get("X-Dashboard-Key")
    if header is not None:
        address, now = request.remote_addr or "?", time.monotonic()
        if _throttled(address, now):
            return _too_many()
        if _key_matches(header):
            g.via_header = True
            return None
        _record_failure(address, now)
        return _unauthorised("invalid X-Dashboard-Key")
    if session.get("auth") == _fingerprint(_api_key()) and not _revoked(session.get("sid")):
        return None
    return _unauthorised("log in first")


def _too_many():
    body = jsonify(error={"type": "rate_limit_error",
                          "message": "too many wrong keys from this address; wait a few minutes"})
    return body, 429, {"Retry-After": str(LOGIN_WINDOW_S)}


def _revoked(session_id):
    """True for a session logout ended, and for one without an id (made before ids were)."""
    if not session_id:
        return True
    return RevokedSession.get_or_none(RevokedSession.session_id == session_id) is not None


def _revoke(session_id):
    """Refuse `session_id` from now on; forget revocations older than any live session."""
    now = utcnow()
    lifetime = current_app.permanent_session_lifetime
    (RevokedSession.insert(session_id=session_id, expires_at=now + lifetime)
     .on_conflict_ignore().execute())
    RevokedSession.delete().where(RevokedSession.expires_at < now).execute()


def _unauthorised(message):
    if wants_json():
        body = jsonify(error={"type": "authentication_error", "message": message})
        return body, 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _check_csrf():
    if request.method in ("GET", "HEAD", "OPTIONS") or g.get("via_header"):
        return None
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="The form has expired or did not come from this dashboard "
                               "(missing or wrong CSRF token). Reload the page and try again.")
    return None


def _safe_next(target):
    if target and any(ord(c) < 0x20 or c == "\x7f" or c == "\\" for c in target):
        return url_for("overview.index")  # CR/LF would split the Location header
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not (target or "").startswith("/") or target.startswith("//"):
        return url_for("overview.index")
    return target


def _throttled(address, now):
    with _failures_lock:
        recent = _failures[address]
        while recent and recent[0] < now - LOGIN_WINDOW_S:
            recent.popleft()
        return len(recent) >= LOGIN_LIMIT


def _record_failure(address, now):
    with _failures_lock:
        _failures[address].append(now)


@bp.route("/login", methods=("GET", "POST"))
def login():
    """The login form; on the right key, a fresh signed session."""
    if _api_key() is None:
        return redirect(url_for("overview.index"))
    target = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("auth/login.html", next=target, error=None)
    address, now = request.remote_addr or "?", time.monotonic()
    if _throttled(address, now):
        return render_template("auth/login.html", next=target,
                               error="Too many failed attempts; wait a few minutes."), 429
    if not _key_matches(request.form.get("key", "")):
        _record_failure(address, now)
        return render_template("auth/login.html", next=target, error="Wrong key."), 401
    session.clear()  # a new session on login: no fixation
    session.permanent = True
    session["auth"] = _fingerprint(_api_key())
    session["sid"] = secrets.token_urlsafe(24)
    csrf_token()
    return redirect(target)


@bp.route("/logout", methods=("GET", "POST"))
def logout():
    """GET: a button (a link must not log out); POST: end the session."""
    if request.method == "GET":
        return render_template("auth/logout.html")
    if session.get("sid"):
        _revoke(session["sid"])
    session.clear()
    return redirect(url_for("auth.login") if _api_key() else url_for("overview.index"))


def install(app):
    """Run the guard and the CSRF check before every request of `app`."""
    app.before_request(_guard)
    app.before_request(_check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
