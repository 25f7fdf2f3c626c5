"""The alert rules file (NEXUS_ALERTS_FILE): TOML `[[alert]]` tables → `Rule`s. Pure.

Every mistake is a `RulesError` whose message names the file and the line, so that a
bad file stops start-up with something a person can fix (docs/alerts.md).
"""
import datetime
import re
import tomllib
from dataclasses import dataclass
from urllib.parse import urlparse

# metric → what it sums over the window (values.py computes them).
METRICS = ("cost_usd", "requests", "errors", "error_rate", "input_tokens", "output_tokens",
           "five_hour_utilization", "seven_day_utilization")
# Utilization is the upstream's, per credential: those rules are always grouped by it.
UTILIZATION_METRICS = {"five_hour_utilization": "five_hour",
                       "seven_day_utilization": "seven_day"}
# group_by name → the api_requests column that holds it: the one place they are mapped.
GROUP_COLUMNS = {"project": "project", "branch": "git_branch", "developer": "developer",
                 "session": "session_id", "subagent": "subagent", "model": "model",
                 "domain": "domain"}
KEYS = ("name", "metric", "window", "above", "group_by", "notify")
REQUIRED = ("name", "metric", "window", "above", "notify")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
MAX_WINDOW = datetime.timedelta(days=31)
_HEADER = re.compile(r"^\s*\[\[\s*\"?alert\"?\s*\]\]")


class RulesError(ValueError):
    """The rules file cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    window: str                 # as written, e.g. "24h"
    seconds: int                # the window in seconds
    above: float
    notify: str                 # a URL; a credential for Slack: never logged or shown
    group_by: str | None = None
    line: int | None = None     # where its [[alert]] header is

    @property
    def column(self):
        """The api_requests column of group_by, or None."""
        return GROUP_COLUMNS.get(self.group_by) if self.group_by else None

    @property
    def duration(self):
        return datetime.timedelta(seconds=self.seconds)


def parse_window(text):
    """'5m', '1h', '24h', '7d', '30s' → seconds; ValueError otherwise."""
    match = _WINDOW.match(text) if isinstance(text, str) else None
    if not match or int(match[1]) == 0:
        raise ValueError(f"window {text!r} is not a duration such as \"5m\", \"1h\" or \"24h\"")
    seconds = int(match[1]) * _UNITS[match[2]]
    if seconds > MAX_WINDOW.total_seconds():
        raise ValueError(f"window {text!r} is longer than 31 days")
    return seconds


def notify_host(url):
    """The host a notify URL posts to: what pages and logs may show of it."""
    return urlparse(url).hostname or "?"


def parse(text, source="alerts file", columns=None):
    """The rules in TOML `text`. `columns`: the api_requests columns group_by may use
    (default: any in GROUP_COLUMNS)."""
    where = _Locator(text, source)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(exc, source) from None
    for key in document:
        if key != "alert":
            raise where.error(None, key, f"unknown key {key!r}: rules are [[alert]] tables")
    tables = document.get("alert", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise where.error(None, "alert", "alert must be [[alert]] tables")
    rules, names = [], set()
    for index, table in enumerate(tables):
        rule = _rule(table, index, where, columns)
        if rule.name in names:
            raise where.error(index, "name", f"a second alert is named {rule.name!r}: names "
                              "must be unique (an alert's state is kept under its name)")
        names.add(rule.name)
        rules.append(rule)
    return rules


def load(path, columns=None):
    """The rules of the file at `path`; [] when `path` is None (alerts are off)."""
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot read the alerts file: {exc}") from None
    return parse(text, source=path, columns=columns)


def _rule(table, index, where, columns):
    for key in table:
        if key not in KEYS:
            raise where.error(index, key, f"unknown key {key!r} (expected {', '.join(KEYS)})")
    for key in REQUIRED:
        if key not in table:
            raise where.error(index, None, f"this alert has no {key!r}")
    name, metric, window = table["name"], table["metric"], table["window"]
    if not isinstance(name, str) or not name.strip():
        raise where.error(index, "name", "name must be a non-empty string")
    if metric not in METRICS:
        raise where.error(index, "metric", f"metric {metric!r} is not one of {', '.join(METRICS)}")
    try:
        seconds = parse_window(window)
    except ValueError as exc:
        raise where.error(index, "window", str(exc)) from None
    above = table["above"]
    if isinstance(above, bool) or not isinstance(above, (int, float)):
        raise where.error(index, "above", f"above must be a number, not {above!r}")
    if metric in UTILIZATION_METRICS and not 0 <= above <= 1:
        raise where.error(index, "above", f"{metric} is a fraction from 0 to 1: write "
                          f"{above / 100:g} for {above:g} %")
    group_by = _group_by(table.get("group_by"), metric, index, where, columns)
    notify = table["notify"]
    if not isinstance(notify, str) or urlparse(notify).scheme not in ("http", "https") \
            or not urlparse(notify).hostname:
        raise where.error(index, "notify", "notify must be an http:// or https:// URL")
    return Rule(name.strip(), metric, window.strip(), seconds, float(above), notify,
                group_by, where.header_line(index))


def _group_by(value, metric, index, where, columns):
    if value is None:
        return None
    if metric in UTILIZATION_METRICS:
        raise where.error(index, "group_by", f"{metric} is always per credential (the "
                          "upstream's limit is the credential's): leave group_by out")
    if value not in GROUP_COLUMNS:
        raise where.error(index, "group_by", f"group_by {value!r} is not one of "
                          f"{', '.join(GROUP_COLUMNS)}")
    column = GROUP_COLUMNS[value]
    if columns is not None and column not in columns:
        raise where.error(index, "group_by", f"group_by {value!r} needs the api_requests "
                          f"column {column!r}, which this version's schema does not have")
    return value


def _syntax_error(exc, source):
    # tomllib ends its messages with "(at line N, column M)": put the line up front, as in
    # every other error of this file.
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if not match:
        return RulesError(f"{source}: {message}")
    return RulesError(f"{source}, line {match[1]}: {message[:match.start()]} "
                      f"(column {match[2]})")


class _Locator:
    """Finds the line of an [[alert]] table, or of a key inside it, in the file's text."""

    def __init__(self, text, source):
        self.source = source
        self.lines = text.splitlines()
        self.headers = [n for n, line in enumerate(self.lines) if _HEADER.match(line)]

    def header_line(self, index):
        return self.headers[index] + 1 if index is not None and index < len(self.headers) else None

    def key_line(self, index, key):
        if index is None:
            start, end = 0, self.headers[0] if self.headers else len(self.lines)
        elif index < len(self.headers):
            start = self.headers[index]
            end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines)
        else:
            return None
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=") if key else None
        for n in range(start, end):
            if pattern and pattern.match(self.lines[n]):
                return n + 1
        return self.header_line(index)

    def error(self, index, key, message):
        line = self.key_line(index, key)
        where = f"{self.source}, line {line}" if line else self.source
        return RulesError(f"{where}: {message}")
