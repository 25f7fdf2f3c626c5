"""Response headers that keep pages from running anything but our own scripts."""

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


def install(app):
    """Add the security headers to every response of `app`."""
    app.after_request(_add_headers)
