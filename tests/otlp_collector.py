"""A real OTLP/HTTP endpoint for tests: receives /v1/traces and /v1/metrics, decodes them.

    with running_collector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        ...
        spans = collector.wait_for_spans(3)

It speaks the protocol as a collector does (protobuf request bodies, gzip or not, a
protobuf answer), decoding with `opentelemetry-proto`, so what the proxy sends is
checked on the wire and not inside the SDK.
"""
import contextlib
import gzip
import http.server
import threading
import time
import zlib

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest, ExportMetricsServiceResponse)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

SIGNALS = {"/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
           "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse)}


def _value(any_value):
    """An AnyValue as a plain Python value."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def attributes(key_values):
    """A repeated KeyValue as a dict."""
    return {kv.key: _value(kv.value) for kv in key_values}


def _spans(request):
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {"trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                       "parent_span_id": span.parent_span_id.hex() or None, "name": span.name,
                       "kind": span.kind, "start_ns": span.start_time_unix_nano,
                       "end_ns": span.end_time_unix_nano, "status": span.status.code,
                       "attributes": attributes(span.attributes), "resource": resource}


def _points(request):
    for resource_metrics in request.resource_metrics:
        resource = attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                data = getattr(metric, metric.WhichOneof("data"))
                for point in data.data_points:
                    value = (point.sum if metric.WhichOneof("data") == "histogram"
                             else getattr(point, point.WhichOneof("value")))
                    yield {"name": metric.name, "unit": metric.unit, "value": value,
                           "count": getattr(point, "count", None),
                           "time_ns": point.time_unix_nano,
                           "attributes": attributes(point.attributes), "resource": resource}


class Collector:
    """What the endpoint received: `spans()`, `metric_points()`, request `headers`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # (path, decoded request, headers)
        self.url = None

    def add(self, path, request, headers):
        with self.lock:
            self.requests.append((path, request, headers))

    def _of(self, path):
        with self.lock:
            return [(request, headers) for p, request, headers in self.requests if p == path]

    def spans(self):
        return [s for request, _ in self._of("/v1/traces") for s in _spans(request)]

    def metric_points(self):
        return [p for request, _ in self._of("/v1/metrics") for p in _points(request)]

    def headers(self, path):
        return [headers for _, headers in self._of(path)]

    def wait_for_spans(self, count, timeout=20):
        """The spans received, once there are at least `count` (else an AssertionError)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.spans()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.spans())} spans received, expected {count}")

    def latest_points(self):
        """The points of each sender's latest metric export (cumulative: its totals so far).

        Senders are told apart by their `service.instance.id`.
        """
        latest = {}
        for request, _ in self._of("/v1/metrics"):
            points = list(_points(request))
            if points:
                latest[points[0]["resource"].get("service.instance.id")] = points
        return [p for points in latest.values() for p in points]

    def wait_for_metrics(self, predicate, timeout=20):
        """`latest_points()`, once `predicate` holds for them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            points = self.latest_points()
            if points and predicate(points):
                return points
            time.sleep(0.05)
        raise AssertionError("no metric export matched")


def _handler(collector):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            kinds = SIGNALS.get(self.path)
            if kinds is None or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_error(404 if kinds is None else 415)
                return
            request = kinds[0]()
            request.ParseFromString(body)
            collector.add(self.path, request, {k.lower(): v for k, v in self.headers.items()})
            answer = kinds[1]().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def running_collector():
    """An OTLP/HTTP endpoint on a free loopback port, in a thread of this process."""
    collector = Collector()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(collector))
    server.daemon_threads = True
    collector.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
