"""Response headers that keep pages from running anything but our own scripts, and the
Host allow-list that keeps other web pages from reading ours by DNS rebinding."""
from flask import abort, current_app, request

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
OPEN_PATHS = frozenset({"/health", "/ready"})  # probes may name the pod by its address

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",       # no inline script, no eval: templates carry no <script> body or on*
    "style-src 'self'",
    "img-src 'self' data:",    # data: for images inside stored requests
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
))

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _add_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    # Pages show request data: never let a shared cache or the back button keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def host_name(host):
    """The Host header's name, lower-cased, without its port."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_hosts(config):
    """The host names served: loopback and DASHBOARD_ALLOWED_HOSTS; None serves any name
    (a dashboard with a login key and no list)."""
    listed = {host_name(h) for h in config.dashboard_allowed_hosts.split(",") if h.strip()}
    if config.dashboard_api_key and not listed:
        return None
    return LOOPBACK_HOSTS | listed


def _check_host():
    allowed = current_app.extensions["nexus_allowed_hosts"]
    if allowed is None or request.path in OPEN_PATHS:
        return None
    if host_name(request.host) not in allowed:
        abort(421, description="This dashboard does not answer to that host name; add it to "
                               "DASHBOARD_ALLOWED_HOSTS to serve it.")
    return None


def install(app):
    """Check the Host of every request of `app`; add the security headers to its responses."""
    app.extensions["nexus_allowed_hosts"] = allowed_hosts(app.config["NEXUS"])
    app.before_request(_check_host)
    app.after_request(_add_headers)
