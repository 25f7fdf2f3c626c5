"""Structured logs: one JSON object per line, one line per event.

Both services log through the standard `logging` module; `configure()` installs
a handler that writes each record as JSON to stderr. Fields of an event go in
`extra={"fields": {...}}`, or use `event()`, which does that for you. Secrets
never belong in fields: pass ids and hashes, never keys or tokens.
"""
import json
import logging
import sys
import time

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO,
          "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}
# One encoder for every line: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(default=str, ensure_ascii=False).encode
_second = [None, ""]  # the last whole second formatted, and its text


def _now(now=None):
    """UTC time as ISO 8601 with milliseconds, e.g. 2026-11-26T08:36:01.123+00:00."""
    now = time.time() if now is None else now
    whole = int(now)
    if whole != _second[0]:  # strftime once a second, not once a line
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second[0] = whole
    return f"{_second[1]}.{int((now - whole) * 1000):03d}+00:00"


class JsonFormatter(logging.Formatter):
    """Format a LogRecord as one line of JSON: time, level, logger, event, fields."""

    def format(self, record):
        line = {"time": _now(record.created), "level": record.levelname.lower(),
                "logger": record.name, "pid": record.process, "event": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line)


def configure(level="info", stream=None):
    """Send every log record of this process to `stream` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    # peewee logs every query with its parameters at debug: bodies and headers would reach
    # the log. Its queries are not worth that, at any level.
    logging.getLogger("peewee").setLevel(logging.INFO)
    return handler


def json_gunicorn_logger(base, lean=False):
    """gunicorn's Logger class `base`, writing its error log and every other logger as JSON.

    It keeps gunicorn's rule that the access log is on only with `--access-logfile`,
    and its lines become JSON too; levels follow `loglevel`. A factory, so that common/
    never imports gunicorn: each service's gunicorn_conf passes gunicorn's class in.
    `lean` also drops the record fields no JSON line shows (skip_unused_record_fields).
    """

    class JsonLogger(base):
        def setup(self, cfg):
            super().setup(cfg)
            # In the master before the fork (and again on a reload): workers inherit it.
            configure(cfg.loglevel.lower())
            if lean:
                skip_unused_record_fields()
            formatter = JsonFormatter()
            for handler in self.error_log.handlers + self.access_log.handlers:
                handler.setFormatter(formatter)

    return JsonLogger


def skip_unused_record_fields():
    """Don't compute what no JSON line shows: the caller's file and line, thread names.

    For a server's processes (the proxy calls it); it changes the `logging` module's
    globals, so a process whose other log formats name the caller should not.

    Finding the caller walks the stack on every record; it is the costliest part of a
    LogRecord (the logging HOWTO's "Optimization" section documents these switches).
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def use_locks(make_lock):
    """Guard every handler with a lock from `make_lock` (the proxy passes an OS-thread lock).

    The proxy logs from greenlets and from its writer, a real OS thread. A handler lock
    made after gevent's monkey-patching is gevent's, and a greenlet waiting on it while
    the OS thread holds it can miss its wake-up: the worker then never answers again.
    Handlers do not yield while holding the lock, so an OS lock blocks the hub for one
    write at most. (common/ does not import gevent: the caller picks the lock.)
    """
    loggers = [logging.getLogger()] + [item for item in logging.Logger.manager.loggerDict.values()
                                       if isinstance(item, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            handler.lock = make_lock()


def event(logger, name, level=logging.INFO, **fields):
    """Log the event `name` with `fields` as JSON keys (skipped cheaply when disabled)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})
