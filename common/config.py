"""Configuration: one table of settings, read from the environment once.

Every setting has a name (the environment variable), a default and help text.
`load()` builds a `Config` from a mapping (the environment by default); tests
pass a plain dict. Nothing else in the project reads `os.environ`.
"""
import os
from dataclasses import dataclass
from types import MappingProxyType


def _bool(text):
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _choice(*choices):
    def parse(text):
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value
    return parse


def _optional(text):
    return text or None


def _key_values(text):
    """`key=value,key2=value2` (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES) as a dict.

    Values are percent-decoded, as the OpenTelemetry specification has it.
    """
    from urllib.parse import unquote
    pairs = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value pairs separated by commas, got {item.strip()!r}")
        pairs[unquote(key.strip())] = unquote(value.strip())
    return pairs


def _database_url(text):
    """A URL peewee can open: a typo is a configuration error at start-up, not an outage."""
    from playhouse.db_url import schemes
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme not in schemes:
        raise ValueError(f"unknown database scheme {scheme or text!r}; expected "
                         "sqlite:///path/to/file.db or postgresql://user@host/dbname")
    return text


@dataclass(frozen=True)
class Setting:
    name: str
    attr: str
    default: str | None
    parse: object
    help: str


def _s(name, attr, default, parse, help):
    return Setting(name, attr, default, parse, help)


SETTINGS = (
    _s("DATABASE_URL", "database_url", "sqlite:///data/nexus.db", _database_url,
       "Any peewee db_url. SQLite paths are relative to the working directory; "
       "use postgresql://user@host/db in production."),
    _s("CLAUDE_API_BASE_URL", "upstream_url", "https://api.anthropic.com", str,
       "The upstream Anthropic API."),
    _s("CLAUDE_API_TIMEOUT", "upstream_timeout_ms", "600000", int,
       "Upstream read timeout in milliseconds (also the wait for response headers)."),
    _s("NEXUS_CONNECT_TIMEOUT", "connect_timeout_ms", "10000", int,
       "Upstream connect timeout in milliseconds."),
    _s("HOST", "host", "0.0.0.0", str, "Listen address."),
    _s("PORT", "port", None, _optional,
       "Listen port; unset means 3000 for the proxy and 3001 for the dashboard."),
    _s("CREDENTIALS_DIR", "credentials_dir", "credentials", str,
       "Directory of <domain>.credentials.json files (Claude Nexus format and names: for "
       "localhost and IP hosts <host>:<port>.credentials.json first, then without the port)."),
    _s("ENABLE_CLIENT_AUTH", "client_auth", "false", _bool,
       "true: every /v1/* call needs a client key (Authorization: Bearer or x-api-key)."),
    _s("DASHBOARD_API_KEY", "dashboard_api_key", None, _optional,
       "The dashboard's login key. Unset: the dashboard serves loopback only, with a banner."),
    _s("DASHBOARD_ALLOWED_HOSTS", "dashboard_allowed_hosts", "", str,
       "Comma-separated host names the dashboard answers to besides localhost, 127.0.0.1 and "
       "[::1] (the Host header; a page on another name cannot read it by DNS rebinding). "
       "With DASHBOARD_API_KEY set and this empty, any host name is served."),
    _s("DASHBOARD_SECRET_KEY", "dashboard_secret_key", None, _optional,
       "Signs dashboard sessions. Unset: derived from DASHBOARD_API_KEY."),
    _s("STORAGE_ENABLED", "storage_enabled", "true", _bool, "Record requests."),
    _s("NEXUS_CAPTURE_BODIES", "capture_bodies", "all", _choice("all", "errors", "none"),
       "Which request and response bodies to store: all, errors or none."),
    _s("NEXUS_MAX_BODY_BYTES", "max_body_bytes", "33554432", int,
       "Request bodies larger than this get 413."),
    _s("NEXUS_BODY_TIMEOUT", "body_timeout_ms", "60000", int,
       "Milliseconds a client has to send its whole request body; a body that stalls gets "
       "408 and its connection is closed, so it cannot hold the worker."),
    _s("NEXUS_RETENTION_DAYS", "retention_days", "0", int,
       "Rows older than this many days are pruned by `nexus retention`; 0 keeps all."),
    _s("NEXUS_SPOOL_DIR", "spool_dir", "data/spool", str,
       "Where records wait while the database is unreachable."),
    _s("NEXUS_QUEUE_SIZE", "queue_size", "10000", int,
       "Records held in memory before the writer spools the overflow to disk."),
    _s("NEXUS_QUEUE_BYTES", "queue_bytes", "67108864", int,
       "Bytes of records each worker, and each worker's writer process, holds in memory "
       "before spooling the overflow to disk."),
    _s("NEXUS_BATCH_SIZE", "batch_size", "200", int,
       "Most records the writer inserts in one transaction."),
    _s("NEXUS_PRICING_FILE", "pricing_file", None, _optional,
       "A JSON file of model prices that overrides the built-in table."),
    _s("NEXUS_SUBTASK_TOOLS", "subtask_tools", "Task,Agent", str,
       "Comma-separated tool names whose calls spawn sub-agent tasks."),
    _s("NEXUS_UPSTREAM_RETRIES", "upstream_retries", "0", int,
       "Retries for 529/overloaded and connection errors before any byte reached the "
       "client; 0 disables."),
    _s("NEXUS_POOL_SIZE", "pool_size", "0", int,
       "Upstream keep-alive connections kept per worker; 0: as many as the worker's "
       "connections (gunicorn's worker_connections, 2000)."),
    _s("NEXUS_LOG_LEVEL", "log_level", "info", _choice("debug", "info", "warning", "error"),
       "Log level of the JSON logs."),
    _s("SLACK_WEBHOOK_URL", "slack_webhook_url", None, _optional,
       "Incoming-webhook URL for notifications; a domain's credential file may add its own."),
    _s("NEXUS_ALERTS_FILE", "alerts_file", None, _optional,
       "A TOML file of [[alert]] rules: name, metric, window, above, optional group_by, "
       "notify (a URL). Unset: no alerts. A bad file stops start-up (docs/alerts.md)."),
    _s("NEXUS_ALERTS_INTERVAL", "alerts_interval", "30", float,
       "Seconds between evaluations of the alert rules (in each writer process; the "
       "database makes each crossing post once)."),
    _s("NEXUS_OAUTH_TOKEN_URL", "oauth_token_url", "https://console.anthropic.com/v1/oauth/token",
       str, "Where OAuth credential files' tokens are refreshed."),
    _s("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_endpoint", None, _optional,
       "OpenTelemetry export (docs/opentelemetry.md): the collector's OTLP/HTTP base URL, "
       "e.g. http://collector:4318; spans go to /v1/traces and metrics to /v1/metrics "
       "under it. Unset (and no per-signal endpoint): no export."),
    _s("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel_traces_endpoint", None, _optional,
       "The full URL spans are posted to, instead of the base URL's /v1/traces."),
    _s("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "otel_metrics_endpoint", None, _optional,
       "The full URL metrics are posted to, instead of the base URL's /v1/metrics."),
    _s("OTEL_EXPORTER_OTLP_PROTOCOL", "otel_protocol", "http/protobuf", _choice("http/protobuf"),
       "The OTLP transport; only http/protobuf is supported (a collector's port 4318)."),
    _s("OTEL_EXPORTER_OTLP_HEADERS", "otel_headers", None, _key_values,
       "Headers sent with every export, key=value pairs separated by commas "
       "(e.g. x-honeycomb-team=KEY); values percent-encoded."),
    _s("OTEL_EXPORTER_OTLP_COMPRESSION", "otel_compression", "none", _choice("none", "gzip"),
       "gzip: compress what is exported."),
    _s("OTEL_EXPORTER_OTLP_TIMEOUT", "otel_timeout_ms", "10000", int,
       "Milliseconds one export may take, retries included; a slow collector delays only "
       "the export thread, never a request or a record."),
    _s("OTEL_SERVICE_NAME", "otel_service_name", None, _optional,
       "The service.name resource attribute of what is exported; unset: the one in "
       "OTEL_RESOURCE_ATTRIBUTES, else claude-nexus."),
    _s("OTEL_RESOURCE_ATTRIBUTES", "otel_resource_attributes", None, _key_values,
       "More resource attributes, key=value pairs separated by commas "
       "(e.g. deployment.environment=prod)."),
    _s("OTEL_SDK_DISABLED", "otel_sdk_disabled", "false", _bool,
       "true: no export even with an endpoint set."),
    _s("OTEL_TRACES_EXPORTER", "otel_traces_exporter", "otlp", _choice("otlp", "none"),
       "none: export no spans (metrics only)."),
    _s("OTEL_METRICS_EXPORTER", "otel_metrics_exporter", "otlp", _choice("otlp", "none"),
       "none: export no metrics (spans only)."),
    _s("OTEL_METRIC_EXPORT_INTERVAL", "otel_metric_interval_ms", "60000", int,
       "Milliseconds between two metric exports."),
    _s("OTEL_BSP_SCHEDULE_DELAY", "otel_bsp_delay_ms", "5000", int,
       "Longest wait, in milliseconds, before finished spans are sent."),
    _s("OTEL_BSP_MAX_QUEUE_SIZE", "otel_bsp_queue", "2048", int,
       "Spans held per writer process while the collector is slow or away; beyond "
       "this they are dropped (the records are not)."),
    _s("CLAUDE_OAUTH_CLIENT_ID", "oauth_client_id", "9d1c250a-e61b-44d9-88ed-5944d1962f5e", str,
       "The OAuth client id sent with refreshes (Claude Code's public client id by default)."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class ConfigError(ValueError):
    """A setting's value cannot be used."""


class Config:
    """Settings as attributes, immutable once built."""

    def __init__(self, values):
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, attr):
        try:
            return self._values[attr]
        except KeyError:
            raise AttributeError(attr) from None

    def __setattr__(self, attr, value):
        raise AttributeError("Config is immutable; use replace()")

    def replace(self, **changes):
        """A copy with some attributes changed."""
        unknown = set(changes) - set(self._values)
        if unknown:
            raise AttributeError(f"unknown settings: {sorted(unknown)}")
        return Config({**self._values, **changes})

    def as_dict(self):
        return dict(self._values)

    @property
    def subtask_tool_names(self):
        return tuple(t.strip() for t in self.subtask_tools.split(",") if t.strip())


def load(environ=None):
    """Build a Config from `environ` (default: os.environ); unknown keys are ignored."""
    environ = os.environ if environ is None else environ
    values = {}
    for setting in SETTINGS:
        raw = environ.get(setting.name, setting.default)
        if raw is None:
            values[setting.attr] = None
            continue
        try:
            values[setting.attr] = setting.parse(str(raw))
        except ValueError as exc:
            raise ConfigError(f"{setting.name}: {exc}") from None
    return Config(values)


def setting(name):
    """The Setting called `name`."""
    return _BY_NAME[name]


def reference_markdown():
    """The configuration reference (docs/configuration.md) rendered from SETTINGS."""
    lines = [
        "# Configuration reference",
        "",
        "Every setting is an environment variable, read once at start-up by",
        "`common/config.py`. This page is generated from that table",
        "(`python -m common.config > docs/configuration.md`); a test fails when they differ.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for s in SETTINGS:
        default = "unset" if s.default is None else f"`{s.default}`"
        lines.append(f"| `{s.name}` | {default} | {s.help} |")
    lines += [
        "",
        "`WEB_CONCURRENCY` and `GUNICORN_CMD_ARGS` are gunicorn's own: `nexus-proxy` and",
        "`nexus-dashboard` honour them exactly as gunicorn does (worker count, extra flags).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
