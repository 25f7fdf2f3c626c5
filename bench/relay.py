"""The bare relay: the floor for a Python proxy on this machine (no recording, no parsing).

    gunicorn -k gevent -w 1 'bench.relay:create_app()'   # CLAUDE_API_BASE_URL names the upstream
"""
import urllib3

from common.config import load

HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                 "proxy-connection", "host", "content-length"})
HOP_OUT = HOP - {"content-length"}  # a known length lets gunicorn skip chunked framing


def create_app(config=None):
    """A WSGI app that relays every request to the upstream over one urllib3 pool."""
    pool = urllib3.connection_from_url((config or load()).upstream_url, maxsize=1000,
                                       block=False, retries=False)

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_") and k[5:].replace("_", "-").lower() not in HOP}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        url = environ["PATH_INFO"] + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
        upstream = pool.urlopen(environ["REQUEST_METHOD"], url, headers=headers,
                                body=environ["wsgi.input"].read(length) if length else None,
                                preload_content=False, decode_content=False, redirect=False)
        start_response(f"{upstream.status} {upstream.reason}",
                       [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_OUT])
        return _relay(upstream)

    return app


def _relay(upstream):
    try:
        yield from upstream.stream(65536)
    finally:
        upstream.release_conn()
