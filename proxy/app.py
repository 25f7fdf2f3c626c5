"""The proxy's hot path: WSGI environ → checks → one upstream call → streamed answer.

Read top to bottom: `Proxy.__call__` routes; `relay` reads and checks the request,
authorises it, calls the upstream once and starts the response; `Relay` passes
the body on chunk by chunk as it arrives; `finish` runs once the response is
over (or the client left) and hands one record to the recorder. Nothing here
parses SSE, prices tokens or touches the database: the writer process does
(proxy/recorder.py, proxy/writer.py); pure helpers live in proxy/wire.py.
"""
import json
import logging
import socket
import time
import uuid

from gunicorn.http.errors import ParseException

from common.logs import event
from common.models import utcnow

from . import refusals
from .green import deadline, kill, spawn, wait_readable
from .refusals import Refusal
from .wire import (JSON_PATHS, REASONS, RESPONSE_HOP, check_json, check_target, client_headers,
                   error_body, host_domain, make_record, method_label, raw_target,
                   upstream_headers)

log = logging.getLogger("nexus.proxy")

CHUNK = 65536
DRAIN_SECONDS = 30.0
JSON_HEADERS = (("content-type", "application/json"),)


class Exchange:
    """What one request accumulates on its way through; becomes the record."""

    __slots__ = ("request_id", "start", "timestamp", "domain", "method", "path", "query",
                 "target", "headers", "body", "grant", "status", "response_headers", "chunks",
                 "captured", "first_byte", "error", "stream", "overhead_ms")

    def __init__(self, environ):
        self.start = time.perf_counter()
        self.timestamp = utcnow()
        self.request_id = str(uuid.uuid4())
        self.method = environ["REQUEST_METHOD"]
        self.target = raw_target(environ)
        self.path, _, self.query = self.target.partition("?")
        self.headers = client_headers(environ)
        self.domain = host_domain(self.headers.get("host") or environ.get("SERVER_NAME", ""))
        self.body = self.grant = self.status = self.first_byte = self.error = None
        self.response_headers = {}
        self.chunks = []
        self.captured = 0
        self.stream = False
        self.overhead_ms = 0.0


class Proxy:
    """The WSGI application."""

    def __init__(self, config, upstream, authenticator, recorder, notifier=None,
                 metrics=None, ping=None):
        self.max_body = config.max_body_bytes
        self.body_timeout = config.body_timeout_ms / 1000
        self.capture_limit = max(config.max_body_bytes, 64 * 1024 * 1024)
        self.upstream = upstream
        self.auth = authenticator
        self.recorder = recorder
        self.notifier = notifier
        self.metrics = metrics
        self.ping = ping
        self.in_flight = 0

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path.startswith("/v1/"):
            return self.relay(environ, start_response)
        if path == "/health":
            return _json(start_response, 200, {"status": "ok"})
        if path == "/ready":
            return self.ready(start_response)
        if path == "/metrics" and self.metrics is not None:
            text = self.metrics.render(self._scrape_gauges()).encode()
            start_response("200 OK", [("content-type", "text/plain; version=0.0.4"),
                                      ("content-length", str(len(text)))])
            return [text]
        return _json(start_response, 404, {"type": "error", "error": {
            "type": "not_found_error", "message": f"{path} is not served here; use /v1/..."}})

    # -- the relay ------------------------------------------------------------------
    def relay(self, environ, start_response):
        """Forward one /v1/* request and start streaming the answer."""
        x = Exchange(environ)
        self.in_flight += 1
        reading = False
        try:
            check_target(x.path)
            # Who is asking comes before the body: a refused caller's body is never kept.
            x.grant = self.auth.authorize(x.domain, x.headers)
            reading = True
            x.body = self.read_body(environ)
            if x.method == "POST" and x.path in JSON_PATHS:
                check_json(x.body)
            headers = upstream_headers(x.headers, x.grant)
            sent = time.perf_counter()
            x.overhead_ms = (sent - x.start) * 1000
            response = self.upstream.send(x.method, x.target, x.body or None, headers)
        except Refusal as exc:
            if not reading:
                self.skip_body(environ, exc)
            return self.refuse(x, start_response, exc, environ)
        except Exception:  # a bug of ours: still Anthropic's shape, still recorded
            log.exception("proxy error", extra={"fields": {"request_id": x.request_id}})
            refusal = refusals.internal()
            if not reading:
                self.skip_body(environ, refusal)
            return self.refuse(x, start_response, refusal, environ)
        received = time.perf_counter()
        x.status = response.status
        out = []
        for name, value in response.headers.items():
            lower = name.lower()
            x.response_headers[lower] = value
            if lower not in RESPONSE_HOP:
                out.append((name, value))
        x.stream = x.response_headers.get("content-type", "").startswith("text/event-stream")
        x.overhead_ms += (time.perf_counter() - received) * 1000
        out.append(("x-nexus-request-id", x.request_id))
        out.append(("x-nexus-overhead-ms", f"{x.overhead_ms:.3f}"))
        body = Relay(self, x, response, environ.get("gunicorn.socket"))
        # The status line leaves with the first body write, so read the first chunk
        # before choosing it: an upstream that fails before any body byte gets a
        # 502/504 the client can read, not a connection closed with no answer.
        failure = body.read_first()
        if failure is not None:
            body.discard()
            return self.refuse(x, start_response, failure, environ)
        start_response(f"{response.status} {response.reason or REASONS.get(response.status, '')}", out)
        return body

    def read_body(self, environ):
        """The request body within NEXUS_BODY_TIMEOUT; 413 past NEXUS_MAX_BODY_BYTES (without
        reading it all), 408 when it stalls, 400 when its chunked framing is broken."""
        stream = environ["wsgi.input"]
        length = int(environ.get("CONTENT_LENGTH") or 0) or None
        if length is not None and length > self.max_body:
            raise self.too_large(stream, length)
        if length is None and environ.get("HTTP_TRANSFER_ENCODING") is None:
            return b""  # no body: no timer to arm
        try:
            with deadline(self.body_timeout, refusals.body_timeout(self.body_timeout)):
                body = self._read_body(stream, length)
        except (ParseException, ValueError, OSError) as exc:
            # A chunk size that is not hex, a chunk without its CRLF, a body cut short.
            raise refusals.bad_framing(type(exc).__name__) from None
        if body is None:  # a chunked body past the limit: the drain has its own deadline
            raise self.too_large(stream, None)
        return body

    def _read_body(self, stream, length):
        """The body's bytes; None for a chunked body longer than NEXUS_MAX_BODY_BYTES."""
        if length is not None:
            return stream.read(length)
        parts, total = [], 0
        while piece := stream.read(CHUNK):
            total += len(piece)
            if total > self.max_body:
                return None
            parts.append(piece)
        return b"".join(parts)

    def too_large(self, stream, length):
        """A 413 Refusal, after draining the rest of the body so the client reads the answer."""
        limit = max(self.capture_limit, 2 * self.max_body)
        if length is not None and length > limit:
            return refusals.too_large(self.max_body, close_after=True)
        return refusals.too_large(self.max_body, close_after=not self.drain(stream, limit))

    def skip_body(self, environ, refusal):
        """A request refused before its body was read: read past the body without keeping
        it, so that the client reads the answer; close the connection if that fails."""
        length = environ.get("CONTENT_LENGTH")
        chunked = environ.get("HTTP_TRANSFER_ENCODING") is not None
        if not (length and length != "0") and not chunked:
            return
        limit = max(self.capture_limit, 2 * self.max_body)
        try:
            too_long = bool(length) and int(length) > limit
        except ValueError:
            too_long = True
        if too_long or not self.drain(environ["wsgi.input"], limit):
            refusal.close_after = True

    def drain(self, stream, limit):
        """Read and drop up to `limit` bytes within DRAIN_SECONDS (or NEXUS_BODY_TIMEOUT if
        shorter); True if the body ended."""
        seconds = min(DRAIN_SECONDS, self.body_timeout)
        try:
            with deadline(seconds, TimeoutError()):
                return drain(stream, limit, seconds)
        except (TimeoutError, ParseException, ValueError, OSError):
            return False

    def refuse(self, x, start_response, refusal, environ):
        """Answer a refused or failed request in Anthropic's shape; it is recorded too."""
        body = error_body(refusal.error_type, refusal.message)
        x.status, x.error = refusal.status, refusal.error or refusal.message
        if x.grant is None:
            x.body = None  # a caller refused before being let in stores nothing of its own
        x.chunks, x.captured = [body], len(body)
        headers = [*JSON_HEADERS, ("content-length", str(len(body))), *refusal.headers,
                   ("x-nexus-request-id", x.request_id)]
        x.response_headers = {name: value for name, value in headers}
        start_response(f"{x.status} {REASONS.get(x.status, '')}", headers)
        sock = environ.get("gunicorn.socket") if refusal.close_after else None
        return Answered(self, x, body, sock)

    # -- after the answer ------------------------------------------------------------
    def finish(self, x):
        """Once per request, after the last byte or the disconnect: record, count, log."""
        self.in_flight -= 1
        now = time.perf_counter()
        record = make_record(x, now)
        self.recorder.put(record)
        if self.notifier is not None and x.grant is not None:
            self.notifier.submit(record, x.grant.slack_webhook, x.grant.slack_options)
        m = self.metrics
        if m is not None:
            m.inc("nexus_requests_total", f'method="{method_label(x.method)}",status="{x.status}"')
            m.observe("nexus_request_duration_seconds", now - x.start)
            m.observe("nexus_overhead_seconds", x.overhead_ms / 1000)
            if x.first_byte is not None:
                m.observe("nexus_first_byte_seconds", x.first_byte - x.start)
            if x.error == "client disconnected":
                m.inc("nexus_client_disconnects_total")
            elif x.status in (502, 504) and x.first_byte is None:
                m.inc("nexus_upstream_errors_total", f'status="{x.status}"')
        event(log, "request", request_id=x.request_id, method=x.method, path=x.path,
              domain=x.domain, status=x.status, duration_ms=record["duration_ms"],
              overhead_ms=round(x.overhead_ms, 3), error=x.error)

    def ready(self, start_response):
        """200 when the database answers; always the spool backlog."""
        files, size = self.recorder.spool.backlog()
        problem = self.ping() if self.ping else None
        body = {"status": "unavailable" if problem else "ready",
                "database": problem or "ok", "spool_files": files, "spool_bytes": size,
                "queue": len(self.recorder.queue)}
        return _json(start_response, 503 if problem else 200, body)

    def _scrape_gauges(self):
        return (("nexus_in_flight_requests", "", self.in_flight),
                ("nexus_recorder_queue_depth", "", len(self.recorder.queue)),
                ("nexus_spool_backlog_bytes", "", self.recorder.spool.backlog()[1]))


class Relay:
    """The response body iterator: each upstream chunk as it arrives; close() ends it."""

    __slots__ = ("proxy", "x", "response", "done", "cancelled", "closed", "watcher", "sock",
                 "first")

    def __init__(self, proxy, x, response, sock):
        self.proxy, self.x, self.response, self.sock = proxy, x, response, sock
        self.done = self.cancelled = self.closed = False
        self.first = None
        # Only streams wait long between chunks; a disconnect must end them at once.
        self.watcher = watch_disconnect(sock, self) if sock is not None and x.stream else None

    def read_first(self):
        """Read the first chunk ahead; a Refusal if the upstream failed before any byte."""
        try:
            chunk = self.response.read1(CHUNK)
        except Exception as exc:
            if self.cancelled:
                return None  # the client left first: close() records that
            lost = f"upstream connection lost before the first byte: {type(exc).__name__}"
            event(log, "upstream connection lost before the first byte", logging.WARNING,
                  request_id=self.x.request_id, reason=type(exc).__name__)
            if "timeout" in type(exc).__name__.lower():
                return refusals.upstream_timeout(error=lost)
            return refusals.upstream_closed(lost)
        if not chunk:
            self.done = not self.cancelled
        else:
            self.first = self._keep(chunk)
        return None

    def discard(self):
        """Drop a response that failed before its first byte (the caller answers instead)."""
        self.closed = True
        if self.watcher is not None:
            kill(self.watcher)
        self.response.close()
        self.response.release_conn()

    def __iter__(self):
        return self

    def __next__(self):
        first = self.first
        if first is not None:
            self.first = None
            return first
        if self.cancelled or self.done:
            raise StopIteration
        try:
            chunk = self.response.read1(CHUNK)
        except Exception as exc:
            if self.cancelled:
                raise StopIteration from None
            self.x.error = f"upstream connection lost: {type(exc).__name__}"
            abort_client(self.x, exc, self.sock)
            raise StopIteration from None
        if not chunk:
            self.done = not self.cancelled
            raise StopIteration
        return self._keep(chunk)

    def _keep(self, chunk):
        x = self.x
        if x.first_byte is None:
            x.first_byte = time.perf_counter()
        if x.captured < self.proxy.capture_limit:
            x.chunks.append(chunk)
            x.captured += len(chunk)
        return chunk

    def cancel(self):
        """The client left: stop reading, and wake a read blocked on the upstream."""
        self.cancelled = True
        interrupt(self.response)

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.watcher is not None:
            kill(self.watcher)
        if self.done:
            self.response.release_conn()
        else:
            if self.x.error is None:
                self.x.error = "client disconnected"
            self.response.close()
            self.response.release_conn()
        self.proxy.finish(self.x)


class Answered(list):
    """A one-chunk answer the proxy made itself; close() records it."""

    def __init__(self, proxy, x, body, sock=None):
        super().__init__((body,))
        self.proxy, self.x, self.sock = proxy, x, sock

    def close(self):
        if self.sock is not None:
            # The unread rest of an oversized body: end the connection after the answer.
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.proxy.finish(self.x)


def drain(stream, limit, seconds):
    """Read and discard up to `limit` bytes for up to `seconds`; True if the body ended."""
    deadline = time.monotonic() + seconds
    drained = 0
    while drained < limit and time.monotonic() < deadline:
        piece = stream.read(CHUNK)
        if not piece:
            return True
        drained += len(piece)
    return False


def _json(start_response, status, value):
    body = json.dumps(value).encode()
    start_response(f"{status} {REASONS.get(status, '')}",
                   [*JSON_HEADERS, ("content-length", str(len(body)))])
    return [body]


# -- the two places that touch sockets directly ---------------------------------------
def watch_disconnect(sock, relay):
    """A greenlet that cancels `relay` when the client closes its connection."""
    def watch():
        try:
            wait_readable(sock.fileno())
            if sock.recv(1, socket.MSG_PEEK):
                return  # the client sent more (a pipelined request), it is still there
        except OSError:
            pass
        relay.cancel()

    return spawn(watch)


def interrupt(response):
    """Shut the upstream socket so that a read blocked on it returns now."""
    try:
        response.shutdown()
    except (ValueError, RuntimeError, OSError):
        pass


def abort_client(x, exc, sock):
    """The upstream broke mid-body: break the client's connection too, so it sees the cut."""
    event(log, "upstream connection lost mid-response", logging.WARNING,
          request_id=x.request_id, reason=type(exc).__name__)
    if sock is None:
        raise exc
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
