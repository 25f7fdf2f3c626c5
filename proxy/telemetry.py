"""OpenTelemetry export of recorded requests, from the writer process (docs/opentelemetry.md).

`start(config)` returns `OFF` unless an OTLP endpoint is configured. Once a batch is
saved, `export(database, records)` reads the batch's rows back (links, cost and tokens
are only known once they are stored), turns each into a span and metric points
(`proxy.telemetry_spans`) and hands them to the OpenTelemetry SDK. The SDK sends them
from threads of its own: spans through a BatchSpanProcessor whose queue is bounded
(OTEL_BSP_MAX_QUEUE_SIZE, spans beyond it are dropped), metrics every
OTEL_METRIC_EXPORT_INTERVAL. So a slow or absent collector costs telemetry, never a
record, and never a request: the proxy's workers never see any of this (ADR 0129).
"""
import logging
import os
import sys
import time
import uuid

from common.logs import JsonFormatter, event

from . import telemetry_spans as spans

log = logging.getLogger("nexus.telemetry")

SHUTDOWN_WAIT_S = 3.0   # the worker waits for its writer; telemetry gets a short share of that
SDK_LOG_INTERVAL_S = 60.0
CHUNK = 500
DEFAULT_SERVICE = "claude-nexus"
# The conventions' advised buckets for gen_ai.client.token.usage and .operation.duration.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)


class _Off:
    """Telemetry switched off: nothing to do."""

    enabled = False

    def export(self, database, records):
        pass

    def close(self):
        pass


OFF = _Off()


def endpoints(config):
    """(traces URL or None, metrics URL or None) from the OTEL_* settings."""
    if config.otel_sdk_disabled:
        return None, None
    base = (config.otel_endpoint or "").rstrip("/")
    traces = config.otel_traces_endpoint or (base and f"{base}/v1/traces")
    metrics = config.otel_metrics_endpoint or (base and f"{base}/v1/metrics")
    return (traces if config.otel_traces_exporter == "otlp" and traces else None,
            metrics if config.otel_metrics_exporter == "otlp" and metrics else None)


def _shown(url):
    """A URL as it may be logged: without a user and password in it."""
    if not url:
        return url
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def start(config):
    """The writer's telemetry: `OFF`, or a `Telemetry` exporting to the configured collector."""
    traces, metrics = endpoints(config)
    if not traces and not metrics:
        return OFF
    try:
        telemetry = Telemetry(config, traces, metrics)
    except ImportError as exc:
        event(log, "OpenTelemetry export not started: the SDK is not installed "
              "(pip install 'claude-nexus[otel]')", logging.ERROR, reason=str(exc)[:300])
        return OFF
    except Exception as exc:  # a broken SDK install must not stop recording
        event(log, "OpenTelemetry export not started", logging.ERROR,
              reason=f"{type(exc).__name__}: {exc}"[:500])
        return OFF
    event(log, "OpenTelemetry export on", traces=_shown(traces), metrics=_shown(metrics))
    return telemetry


class _SparseLogs(logging.Filter):
    """Let one SDK log line through per interval: a collector that is down says so once a minute."""

    def __init__(self, interval):
        super().__init__()
        self.interval, self.next = interval, 0.0

    def filter(self, record):
        now = time.monotonic()
        if now < self.next:
            return False
        self.next = now + self.interval
        return True


def _quiet_sdk_logs():
    sdk_log = logging.getLogger("opentelemetry")
    if sdk_log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_SparseLogs(SDK_LOG_INTERVAL_S))
    sdk_log.addHandler(handler)
    sdk_log.propagate = False


class _PresetIds:
    """An IdGenerator that hands out the ids set just before a span is started."""

    def __init__(self):
        self.trace_id = self.span_id = None

    def generate_trace_id(self):
        return self.trace_id

    def generate_span_id(self):
        return self.span_id

    def is_trace_id_random(self):
        return False  # derived from the conversation id (W3C's "random" flag stays off)


class Telemetry:
    """The SDK's providers for one writer process, and what turns rows into their data."""

    enabled = True

    def __init__(self, config, traces_url, metrics_url):
        from opentelemetry.sdk.resources import Resource

        _quiet_sdk_logs()
        self.timeout_s = max(0.1, config.otel_timeout_ms / 1000)
        self.headers = dict(config.otel_headers or {})
        # Each writer process counts on its own: two processes' metrics must not merge.
        instance = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        attributes = {"service.instance.id": instance, **(config.otel_resource_attributes or {})}
        # OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES (the spec's rule)
        attributes["service.name"] = (config.otel_service_name
                                      or attributes.get("service.name") or DEFAULT_SERVICE)
        self.resource = Resource.create(attributes)
        self.tracer = self.tracer_provider = self.meter_provider = None
        self.ids = _PresetIds()
        self._next_error_log = 0.0
        if traces_url:
            self._start_traces(config, traces_url)
        if metrics_url:
            self._start_metrics(config, metrics_url)

    def _exporter_options(self, config):
        from opentelemetry.exporter.otlp.proto.http import Compression

        gzip = config.otel_compression == "gzip"
        return {"headers": self.headers, "timeout": self.timeout_s,
                "compression": Compression.Gzip if gzip else Compression.NoCompression}

    def _start_traces(self, config, url):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider, sampling
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = OTLPSpanExporter(endpoint=url, **self._exporter_options(config))
        self.tracer_provider = TracerProvider(
            resource=self.resource, sampler=sampling.ALWAYS_ON, id_generator=self.ids,
            shutdown_on_exit=False)
        queue = max(1, config.otel_bsp_queue)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            exporter, max_queue_size=queue, max_export_batch_size=min(512, queue),
            schedule_delay_millis=max(1, config.otel_bsp_delay_ms),
            export_timeout_millis=config.otel_timeout_ms))
        self.tracer = self.tracer_provider.get_tracer("claude-nexus")

    def _start_metrics(self, config, url):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

        exporter = OTLPMetricExporter(endpoint=url, **self._exporter_options(config))
        reader = PeriodicExportingMetricReader(
            exporter, export_interval_millis=max(1, config.otel_metric_interval_ms),
            export_timeout_millis=config.otel_timeout_ms)
        views = [View(instrument_name="gen_ai.client.token.usage",
                      aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS)),
                 View(instrument_name="gen_ai.client.operation.duration",
                      aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS))]
        self.meter_provider = MeterProvider(resource=self.resource, metric_readers=[reader],
                                            views=views, shutdown_on_exit=False)
        meter = self.meter_provider.get_meter("claude-nexus")
        self.requests = meter.create_counter(
            "nexus.recorded.requests", unit="{request}", description="Requests recorded")
        self.tokens = meter.create_counter(
            "nexus.recorded.tokens", unit="{token}",
            description="Tokens by nexus.token.type: input (uncached), output, cache_read, "
                        "cache_creation")
        self.cost = meter.create_counter(
            "nexus.recorded.cost", unit="USD", description="Cost of the priced requests")
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per request")
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Request duration")

    def export(self, database, records):
        """Spans and metric points for the records of a saved batch; never raises."""
        try:
            rows = list(self._rows(database, [r["request_id"] for r in records]))
            if self.tracer is not None:
                for row in rows:
                    self._span(row)
            if self.meter_provider is not None:
                self._measure(rows)
        except Exception as exc:  # telemetry is lost, the records are saved already
            now = time.monotonic()
            if now >= self._next_error_log:
                self._next_error_log = now + SDK_LOG_INTERVAL_S
                event(log, "OpenTelemetry export skipped a batch", logging.WARNING,
                      reason=f"{type(exc).__name__}: {exc}"[:500])

    @staticmethod
    def _rows(database, request_ids):
        from common.models import ApiRequest

        fields = ApiRequest._meta.fields
        columns = [fields[name] for name in spans.COLUMNS + spans.TRAITS if name in fields]
        database.connect(reuse_if_open=True)
        for start in range(0, len(request_ids), CHUNK):
            chunk = request_ids[start:start + CHUNK]
            yield from (ApiRequest.select(*columns)
                        .where(ApiRequest.request_id.in_(chunk)).dicts())

    def _span(self, row):
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self.ids.trace_id, self.ids.span_id = spans.trace_id(row), spans.span_id(row["request_id"])
        parent, context = spans.parent_span_id(row), Context()
        if parent is not None:
            context = trace.set_span_in_context(trace.NonRecordingSpan(SpanContext(
                self.ids.trace_id, parent, is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED))), context)
        start_ns, end_ns = spans.times_ns(row)
        span = self.tracer.start_span(spans.span_name(row), context=context, kind=SpanKind.CLIENT,
                                      attributes=spans.span_attributes(row), start_time=start_ns)
        if spans.error_type(row):
            span.set_status(Status(StatusCode.ERROR, (row.get("error") or "")[:200] or None))
        span.end(end_time=end_ns)

    def _measure(self, rows):
        for key, total in spans.batch_sums(rows).items():
            attrs = dict(key)
            self.requests.add(total["requests"], attrs)
            for kind in ("input", "output", "cache_read", "cache_creation"):
                if total[kind]:
                    self.tokens.add(total[kind], {**attrs, "nexus.token.type": kind})
            if total["priced"]:
                self.cost.add(total["cost"], attrs)
        for row in rows:  # distributions need each request's own value
            attrs, used = spans.metric_attributes(row), spans.tokens(row)
            self.token_usage.record(used["input"] + used["cache_read"] + used["cache_creation"],
                                    {**attrs, "gen_ai.token.type": "input"})
            self.token_usage.record(used["output"], {**attrs, "gen_ai.token.type": "output"})
            self.duration.record((row.get("duration_ms") or 0.0) / 1000, attrs)

    def close(self, wait=SHUTDOWN_WAIT_S):
        """Send what is queued, for at most `wait` seconds (a collector that is away gets none)."""
        import threading

        def shutdown():
            for provider in (self.tracer_provider, self.meter_provider):
                if provider is not None:
                    try:
                        provider.shutdown()
                    except Exception:
                        pass

        # The SDK's shutdown waits for an export in flight; the writer must still end in time.
        thread = threading.Thread(target=shutdown, name="otel-shutdown", daemon=True)
        thread.start()
        thread.join(wait)
