"""The proxy's gunicorn worker: gevent's, answering bad request lines alike on every gunicorn.

gunicorn 27 refuses a request target with a byte outside visible ASCII (a NUL, a
control character) with 400, and an over-long request line with 414. Older
gunicorns, such as the one nixpkgs has, pass such a target to the application and
answer an over-long line with 400. This worker does what gunicorn 27 does on any
version, so the Docker and the Nix images answer hostile input the same
(docs/adr/0080-hostile-input-three-answers.md). Nothing else is changed here.
"""
import re

from gunicorn import util
from gunicorn.http.errors import InvalidRequestLine, LimitRequestLine
from gunicorn.workers.ggevent import GeventWorker

# RFC 9112 section 3.2: a request target is visible ASCII only (gunicorn 27's check).
_TARGET_INVALID = re.compile(r"[^\x21-\x7e]")


class Worker(GeventWorker):
    """`worker_class` of proxy.gunicorn_conf."""

    def handle_request(self, listener_name, req, sock, addr):
        if _TARGET_INVALID.search(req.uri):
            raise InvalidRequestLine(req.uri)  # answered by handle_error: 400, then close
        return super().handle_request(listener_name, req, sock, addr)

    def handle_error(self, req, client, addr, exc):
        if not isinstance(exc, LimitRequestLine):
            return super().handle_error(req, client, addr, exc)
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_error(client, 414, "URI Too Long", str(exc))
        except Exception:  # the client may be gone already
            self.log.debug("Failed to send error message.")
        return None
