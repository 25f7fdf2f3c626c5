"""Query parameters → validated filters. Pure: bad input raises BadParameter (a 400)."""
import datetime
import re
from dataclasses import dataclass, field

from common.models import utcnow


class BadParameter(ValueError):
    """A query parameter cannot be used; the message says which and why."""


REQUEST_TYPES = ("inference", "query_evaluation", "quota")
_RELATIVE = re.compile(r"^(\d{1,5})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_CURSOR = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?)~(\d{1,19})$")
MAX_ROW_ID = 2**63 - 1  # the largest id PostgreSQL's bigint (and SQLite's integer) holds
EARLIEST, LATEST = datetime.datetime(1970, 1, 1), datetime.datetime(2200, 1, 1)
_STATUS = re.compile(r"^([1-5])(xx|\d\d)$")
MAX_LIMIT = 500
# Request-list filters by grouping key (the /usage page links with these).
TRAIT_PARAMS = ("project", "branch", "developer", "session", "subagent")


MAX_ARG_CHARS = 2000


def check_args(args):
    """Refuse arguments no filter can use: NUL characters (PostgreSQL rejects them in any
    string) and values longer than MAX_ARG_CHARS."""
    for name, value in args.items(multi=True) if hasattr(args, "getlist") else args.items():
        if "\x00" in value or "\x00" in name:
            raise BadParameter(f"{name!r}: contains a NUL character")
        if len(value) > MAX_ARG_CHARS:
            raise BadParameter(f"{name}: longer than {MAX_ARG_CHARS} characters")


def parse_time(name, text, now=None):
    """An ISO date/datetime (naive UTC) or a relative age like `5h`, `7d`, `30m`."""
    if not text:
        return None
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        return (now or utcnow()) - datetime.timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if value.tzinfo:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise BadParameter(f"{name}: expected an ISO date or datetime, or an age like 24h or 7d; "
                           f"got {text!r}") from None
    return _in_range(name, value)


def _in_range(name, value):
    """Dates far from now overflow the arithmetic done with them (ranges, buckets)."""
    if not EARLIEST <= value <= LATEST:
        raise BadParameter(f"{name}: must be between {EARLIEST:%Y} and {LATEST:%Y}")
    return value


def parse_int(name, text, default, low, high):
    """An integer within [low, high], or `default` when absent."""
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadParameter(f"{name}: expected a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise BadParameter(f"{name}: must be between {low} and {high}, got {value}")
    return value


def parse_status(text):
    """`200`, `4xx`, `5xx` or `error` (any status >= 400) → (low, high) inclusive."""
    if not text:
        return None
    if text == "error":
        return (400, 599)
    match = _STATUS.match(text)
    if not match:
        raise BadParameter(f"status: expected a code like 200, a class like 4xx, or 'error'; "
                           f"got {text!r}")
    if match[2] == "xx":
        base = int(match[1]) * 100
        return (base, base + 99)
    return (int(text), int(text))


def parse_cursor(text):
    """The `before` cursor of keyset pagination: `<timestamp>~<id>`."""
    if not text:
        return None
    match = _CURSOR.match(text)
    if not match:
        raise BadParameter("before: not a cursor this dashboard made (expected <timestamp>~<id>)")
    try:
        timestamp = datetime.datetime.fromisoformat(match[1])
    except ValueError:
        raise BadParameter("before: not a cursor this dashboard made (bad timestamp)") from None
    if int(match[2]) > MAX_ROW_ID:
        raise BadParameter("before: not a cursor this dashboard made (id out of range)")
    return _in_range("before", timestamp), int(match[2])


def make_cursor(timestamp, row_id):
    """The cursor that continues after the row (`timestamp`, `row_id`)."""
    return f"{timestamp.isoformat(timespec='microseconds')}~{row_id}"


def _text(args, name, max_len=255):
    value = (args.get(name) or "").strip()
    if len(value) > max_len:
        raise BadParameter(f"{name}: at most {max_len} characters")
    return value or None


@dataclass(frozen=True)
class RequestFilter:
    """What the requests list, its export and /api/requests select."""

    domain: str | None = None
    model: str | None = None
    status: tuple | None = None
    request_type: str | None = None
    q: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    account_id: str | None = None
    # The grouping keys of /usage (docs/analytics.md), so that a group links to its rows.
    project: str | None = None
    branch: str | None = None
    developer: str | None = None
    session: str | None = None
    subagent: str | None = None
    before: tuple | None = None
    limit: int = 50
    raw: dict = field(default_factory=dict, compare=False)


def request_filter(args, default_limit=50, max_limit=MAX_LIMIT):
    """A RequestFilter from query arguments (a mapping of str → str)."""
    request_type = _text(args, "type")
    if request_type and request_type not in REQUEST_TYPES:
        raise BadParameter(f"type: expected one of {', '.join(REQUEST_TYPES)}, got {request_type!r}")
    since, until = parse_time("since", args.get("since")), parse_time("until", args.get("until"))
    if since and until and since >= until:
        raise BadParameter("since must be earlier than until")
    keep = ("domain", "model", "status", "type", "q", "since", "until", "account_id") + TRAIT_PARAMS
    return RequestFilter(
        domain=_text(args, "domain"), model=_text(args, "model"),
        status=parse_status(_text(args, "status", 8)), request_type=request_type,
        q=_text(args, "q", 200), since=since, until=until, account_id=_text(args, "account_id"),
        **{name: _text(args, name, 512) for name in TRAIT_PARAMS},
        before=parse_cursor(args.get("before")),
        limit=parse_int("limit", args.get("limit"), default_limit, 1, max_limit),
        raw={k: args[k] for k in keep if args.get(k)},
    )


@dataclass(frozen=True)
class Range:
    """A time range for the overview and /api/stats."""

    since: datetime.datetime
    until: datetime.datetime
    domain: str | None = None

    @property
    def hourly(self):
        """Charts use hourly points up to three days, daily points beyond."""
        return self.until - self.since <= datetime.timedelta(days=3)


def stats_range(args, now=None, default=datetime.timedelta(days=7)):
    """A Range from `since`, `until` (default: the last 7 days) and `domain`."""
    now = now or utcnow()
    until = parse_time("until", args.get("until"), now) or now
    since = parse_time("since", args.get("since"), now) or until - default
    if since >= until:
        raise BadParameter("since must be earlier than until")
    if until - since > datetime.timedelta(days=400):
        raise BadParameter("the range may span at most 400 days")
    return Range(since, until, _text(args, "domain"))
