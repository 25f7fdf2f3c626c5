"""Structured logs: one JSON object per line, one line per event.

Both services log through the standard `logging` module; `configure()` installs
a handler that writes each record as JSON to stderr. Fields of an event go in
`extra={"fields": {...}}`, or use `event()`, which does that for you. Secrets
never belong in fields: pass ids and hashes, never keys or tokens.
"""
import datetime
import json
import logging
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO,
          "warning": logging.WARNING, "error": logging.ERROR}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """Format a LogRecord as one line of JSON: time, level, logger, event, fields."""

    def format(self, record):
        line = {"time": _now(), "level": record.levelname.lower(),
                "logger": record.name, "pid": record.process, "event": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level="info", stream=None):
    """Send every log record of this process to `stream` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    return handler


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


def gunicorn_logconfig(level="info"):
    """A logging dictConfig that makes gunicorn's own logs JSON lines too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }
