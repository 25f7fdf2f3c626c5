"""The tables both services share.

Timestamps are naive UTC datetimes throughout (`utcnow()`), so that SQLite's text
ordering and PostgreSQL's `timestamp` agree. Column names of `api_requests` are
fixed by the contract; scripts read them.
"""
import datetime

import peewee as pw

from .db import database


def utcnow():
    """The current time as a naive UTC datetime, the form every table stores."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class ApiRequest(BaseModel):
    """One row per request the proxy forwarded (or refused)."""

    id = pw.BigAutoField()
    request_id = pw.CharField(max_length=36, unique=True)
    domain = pw.CharField(max_length=255, default="")
    timestamp = pw.DateTimeField(default=utcnow)
    method = pw.CharField(max_length=16)
    path = pw.TextField()
    model = pw.CharField(max_length=128, null=True)
    request_type = pw.CharField(max_length=32, null=True)
    stream = pw.BooleanField(default=False)
    response_status = pw.IntegerField(null=True)
    input_tokens = pw.IntegerField(default=0)
    output_tokens = pw.IntegerField(default=0)
    cache_creation_input_tokens = pw.IntegerField(default=0)
    cache_read_input_tokens = pw.IntegerField(default=0)
    usage_data = pw.TextField(null=True)
    cost_usd = pw.DoubleField(null=True, default=0.0)  # null: the model has no known price
    duration_ms = pw.DoubleField(null=True)
    first_token_ms = pw.DoubleField(null=True)
    error = pw.TextField(null=True)
    account_id = pw.CharField(max_length=255, null=True)
    session_id = pw.CharField(max_length=255, null=True)
    conversation_id = pw.CharField(max_length=36, null=True)
    branch_id = pw.CharField(max_length=64, null=True)
    parent_request_id = pw.CharField(max_length=36, null=True)
    is_subtask = pw.BooleanField(default=False)
    parent_task_request_id = pw.CharField(max_length=36, null=True)
    message_count = pw.IntegerField(default=0)
    # Beyond the contract: what linking, the token page and audits need.
    current_message_hash = pw.CharField(max_length=64, null=True)
    parent_message_hash = pw.CharField(max_length=64, null=True)
    system_hash = pw.CharField(max_length=64, null=True)
    auth_hash = pw.CharField(max_length=64, null=True)  # sha256 of the credential, never the credential
    client_key_id = pw.CharField(max_length=64, null=True)
    upstream_request_id = pw.CharField(max_length=128, null=True)
    stop_reason = pw.CharField(max_length=64, null=True)
    ratelimit = pw.TextField(null=True)  # JSON of the upstream's anthropic-ratelimit-* headers
    # Grouping keys (docs/analytics.md, common/traits.py): derived when the row is written.
    project = pw.CharField(max_length=512, null=True)     # Claude Code's working directory
    git_branch = pw.CharField(max_length=255, null=True)
    developer = pw.CharField(max_length=255, null=True)   # client key name, account or device
    subagent = pw.CharField(max_length=128, null=True)    # the spawning Task call's subagent_type

    class Meta:
        table_name = "api_requests"
        indexes = (
            (("timestamp", "id"), False),
            (("domain", "timestamp"), False),
            (("model", "timestamp"), False),
            (("request_type", "timestamp"), False),
            (("response_status", "timestamp"), False),
            (("conversation_id", "timestamp"), False),
            (("account_id", "timestamp"), False),
            (("session_id", "timestamp"), False),
            (("domain", "current_message_hash"), False),
            (("parent_task_request_id",), False),
            (("project", "timestamp"), False),
            (("git_branch", "timestamp"), False),
            (("developer", "timestamp"), False),
            (("subagent", "timestamp"), False),
        )


# The columns of api_requests that the contract names for scripts, in its order:
# exports and the JSON API write exactly these.
CONTRACT_COLUMNS = ("request_id", "domain", "timestamp", "method", "path", "model",
                    "request_type", "stream", "response_status", "input_tokens", "output_tokens",
                    "cache_creation_input_tokens", "cache_read_input_tokens", "usage_data",
                    "cost_usd", "duration_ms", "first_token_ms", "error", "account_id",
                    "session_id", "conversation_id", "branch_id", "parent_request_id",
                    "is_subtask", "parent_task_request_id", "message_count")


class RequestBody(BaseModel):
    """A request's bodies and (redacted) headers, kept apart so that row scans stay small.

    The request body and headers are a recipe over `body_pieces` (common/recording/pieces.py,
    bodies.py); the response is kept whole, as the client received it. All are compressed
    blobs (common/recording/compression.py). The text columns hold rows written before
    pieces existed, until `nexus migrate` converts them.
    """

    request_id = pw.CharField(max_length=36, primary_key=True)
    request_body = pw.TextField(null=True)   # legacy: the body as text
    response_body = pw.TextField(null=True)  # legacy: the answer (a stream's rebuilt message)
    request_headers = pw.TextField(null=True)   # legacy: JSON (now a piece, by the recipe)
    response_headers = pw.TextField(null=True)  # legacy: JSON
    request_recipe = pw.BlobField(null=True)
    request_size = pw.IntegerField(null=True)    # bytes as the client sent them
    response_data = pw.BlobField(null=True)
    response_size = pw.IntegerField(null=True)   # bytes as the client received them
    response_headers_data = pw.BlobField(null=True)

    class Meta:
        table_name = "api_request_bodies"


class BodyPiece(BaseModel):
    """One element of request bodies (a system block, a tool, a message), stored once
    per domain under the sha256 of its bytes."""

    id = pw.BigAutoField()
    domain = pw.CharField(max_length=255)
    digest = pw.CharField(max_length=64)
    kind = pw.CharField(max_length=16)
    size = pw.IntegerField()                 # bytes before compression
    stored = pw.IntegerField()               # bytes of `data`
    data = pw.BlobField()
    first_request_id = pw.CharField(max_length=36)
    created_at = pw.DateTimeField()
    # The newest request using the piece (to within PIECE_TOUCH, common/recording/bodies.py):
    # retention deletes a piece once no request that remains can use it.
    last_seen = pw.DateTimeField()

    class Meta:
        table_name = "body_pieces"
        indexes = ((("domain", "digest"), True), (("last_seen",), False))


class BodyStorageDaily(BaseModel):
    """Per UTC day and domain: body bytes received and the bytes their storage added."""

    day = pw.DateField()
    domain = pw.CharField(max_length=255, default="")
    requests = pw.IntegerField(default=0)
    received_bytes = pw.BigIntegerField(default=0)
    stored_bytes = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "body_storage_daily"
        indexes = ((("day", "domain"), True),)


class TaskInvocation(BaseModel):
    """A Task/Agent tool call seen in a response: a sub-agent may follow it."""

    id = pw.BigAutoField()
    request_id = pw.CharField(max_length=36, index=True)
    domain = pw.CharField(max_length=255, default="")
    tool_use_id = pw.CharField(max_length=128)
    prompt_hash = pw.CharField(max_length=64)
    timestamp = pw.DateTimeField(default=utcnow)
    subagent_type = pw.CharField(max_length=128, null=True)  # the call's input.subagent_type

    class Meta:
        table_name = "task_invocations"
        indexes = ((("domain", "prompt_hash", "timestamp"), False),)


# The key of an hourly aggregate row: one row per hour and each combination of these.
HOURLY_KEY = ("hour", "domain", "model", "request_type", "account_id")
# The key of the grouping-key aggregates (/api/usage; docs/analytics.md, ADR 0110).
USAGE_KEY = ("hour", "domain", "model", "project", "git_branch", "developer", "subagent",
             "session_id")


def _log_bounds(last=600_000, ratio=1.1):
    """Whole-millisecond bounds, 1 ms apart up to 10 ms, then each about `ratio` times
    the last: a bucket's geometric middle is then within 5 % of any value in it (ADR 0140)."""
    bounds = [1]
    while bounds[-1] < last:
        bounds.append(max(int(bounds[-1] * ratio), bounds[-1] + 1))
    return tuple(bounds)


LATENCY_BUCKETS_MS = _log_bounds()


class HourlyUsage(BaseModel):
    """Per hour, domain, account, model and type: sums the charts read instead of raw rows.

    Latency and time-to-first-token are kept as histograms (one column per
    bucket, `*_le_<ms>` plus `*_inf`) because percentiles cannot be summed.
    """

    hour = pw.DateTimeField()
    domain = pw.CharField(max_length=255, default="")
    model = pw.CharField(max_length=128, default="")
    request_type = pw.CharField(max_length=32, default="")
    account_id = pw.CharField(max_length=255, default="")  # '' when the request had none
    requests = pw.IntegerField(default=0)
    errors = pw.IntegerField(default=0)
    input_tokens = pw.BigIntegerField(default=0)
    output_tokens = pw.BigIntegerField(default=0)
    cache_creation_input_tokens = pw.BigIntegerField(default=0)
    cache_read_input_tokens = pw.BigIntegerField(default=0)
    cost_usd = pw.DoubleField(default=0.0)  # the priced requests' cost
    unpriced = pw.IntegerField(default=0)  # requests whose cost_usd is null (model without a price)
    duration_ms_sum = pw.DoubleField(default=0.0)

    class Meta:
        table_name = "api_usage_hourly"
        indexes = ((HOURLY_KEY, True),)


def histogram_columns(prefix):
    """Column names of one histogram, in bucket order, `+inf` last."""
    return [f"{prefix}_le_{b}" for b in LATENCY_BUCKETS_MS] + [f"{prefix}_inf"]


for _col in histogram_columns("latency") + histogram_columns("ttft"):
    HourlyUsage._meta.add_field(_col, pw.IntegerField(default=0))


DAILY_KEY = ("day",) + HOURLY_KEY[1:]


class DailyUsage(BaseModel):
    """api_usage_hourly summed per UTC day (ADR 0093): what charts of more than three days
    read, so that a month is some 30 rows per key, not 720. The writer adds to it in the
    same transaction as the hours; `aggregates.rebuild` recomputes it from the hours."""

    day = pw.DateTimeField()  # midnight, UTC

    class Meta:
        table_name = "api_usage_daily"
        indexes = ((DAILY_KEY, True),)


for _name in HOURLY_KEY[1:] + ("requests", "errors", "input_tokens", "output_tokens",
                               "cache_creation_input_tokens", "cache_read_input_tokens",
                               "cost_usd", "unpriced", "duration_ms_sum"):
    _like = HourlyUsage._meta.fields[_name]
    _field = (pw.CharField(max_length=_like.max_length, default="") if isinstance(_like, pw.CharField)
              else type(_like)(default=_like.default))
    DailyUsage._meta.add_field(_name, _field)
for _col in histogram_columns("latency") + histogram_columns("ttft"):
    DailyUsage._meta.add_field(_col, pw.IntegerField(default=0))


class HourlyUsageByKey(BaseModel):
    """Per hour, domain, model and grouping key: the sums /api/usage reads (ADR 0110).

    Apart from HourlyUsage so that the overview and token pages scan hours, not hours
    times sessions; the model stays in the key because cache savings need its prices.
    '' stands for a request without the trait (docs/analytics.md).
    """

    hour = pw.DateTimeField()
    domain = pw.CharField(max_length=255, default="")
    model = pw.CharField(max_length=128, default="")
    project = pw.CharField(max_length=512, default="")
    git_branch = pw.CharField(max_length=255, default="")
    developer = pw.CharField(max_length=255, default="")
    subagent = pw.CharField(max_length=128, default="")
    session_id = pw.CharField(max_length=255, default="")
    requests = pw.IntegerField(default=0)
    input_tokens = pw.BigIntegerField(default=0)
    output_tokens = pw.BigIntegerField(default=0)
    cache_creation_input_tokens = pw.BigIntegerField(default=0)
    cache_read_input_tokens = pw.BigIntegerField(default=0)
    cost_usd = pw.DoubleField(default=0.0)

    class Meta:
        table_name = "api_usage_hourly_keys"
        indexes = ((USAGE_KEY, True),)


class RateLimitSample(BaseModel):
    """The upstream's unified subscription-window headers per credential, as the writer saw
    them: a new row when a value changes, else the newest row's `last_seen` moves on.

    `key` is the account id where known, else `sha256:` and the start of `auth_hash`
    (never the credential). The writer keeps a bounded recent history per key
    (common/recording/ratelimit_samples.py), so /api/limits and the alerts read this small
    table instead of scanning api_requests. Utilizations are the 0-1 fractions the API sends.
    """

    id = pw.BigAutoField()
    key = pw.CharField(max_length=255)
    timestamp = pw.DateTimeField()   # when these values were first seen
    last_seen = pw.DateTimeField()   # the newest response that carried them
    request_id = pw.CharField(max_length=36)  # that response's row
    auth_hash = pw.CharField(max_length=64, null=True)
    status = pw.CharField(max_length=32, null=True)
    representative_claim = pw.CharField(max_length=32, null=True)
    five_hour_utilization = pw.DoubleField(null=True)
    five_hour_resets_at = pw.DateTimeField(null=True)
    five_hour_status = pw.CharField(max_length=32, null=True)
    seven_day_utilization = pw.DoubleField(null=True)
    seven_day_resets_at = pw.DateTimeField(null=True)
    seven_day_status = pw.CharField(max_length=32, null=True)
    headers = pw.TextField(null=True)  # JSON: the whole unified family, as last received

    class Meta:
        table_name = "ratelimit_samples"
        indexes = ((("key", "timestamp"), False), (("auth_hash",), False))


class ClientKey(BaseModel):
    """A client key made by `nexus keys create`; only its hash is stored."""

    key_id = pw.CharField(max_length=64, primary_key=True)  # public, shown in lists and logs
    name = pw.CharField(max_length=255, default="")
    domain = pw.CharField(max_length=255, null=True)  # None: valid for every domain
    key_hash = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow)
    revoked_at = pw.DateTimeField(null=True)
    requests_per_minute = pw.IntegerField(null=True)
    daily_budget_usd = pw.DoubleField(null=True)

    class Meta:
        table_name = "client_keys"


class UsageWindow(BaseModel):
    """Requests and spend per key per window, shared by every worker and replica."""

    key_id = pw.CharField(max_length=64)
    window = pw.CharField(max_length=16)  # "minute" or "day"
    window_start = pw.DateTimeField()
    requests = pw.IntegerField(default=0)
    cost_usd = pw.DoubleField(default=0.0)

    class Meta:
        table_name = "usage_windows"
        indexes = ((("key_id", "window", "window_start"), True),)


class CredentialLease(BaseModel):
    """Who is refreshing a domain's OAuth token, so that only one replica does."""

    domain = pw.CharField(max_length=255, primary_key=True)
    holder = pw.CharField(max_length=128)
    expires_at = pw.DateTimeField()

    class Meta:
        table_name = "credential_leases"


class RevokedSession(BaseModel):
    """A dashboard session ended by logout: its cookie is refused until it would expire."""

    session_id = pw.CharField(max_length=64, primary_key=True)
    expires_at = pw.DateTimeField(index=True)

    class Meta:
        table_name = "dashboard_revoked_sessions"


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "nexus_schema_version"


# The tables of the first schema; `_initial_schema` creates these and later migrations
# add the others (LATER_MODELS), so that an old database and a new one end up alike.
ALL_MODELS = (ApiRequest, RequestBody, TaskInvocation, HourlyUsage, ClientKey,
              UsageWindow, CredentialLease)
LATER_MODELS = (BodyPiece, BodyStorageDaily, RateLimitSample, RevokedSession, HourlyUsageByKey,
                DailyUsage)


class SearchEntry(BaseModel):
    """One piece of text the search finds (docs/search.md): a user message piece or an
    answer, its text compressed for the snippet. Its words are indexed beside it: in the
    FTS5 table `search_fts` on SQLite, in the `tsv` column (GIN) on PostgreSQL.

    `id` orders entries by time: the request's timestamp in microseconds times SLOTS
    plus a slot (common/recording/search_index.py), so newest first is id order."""

    id = pw.BigIntegerField(primary_key=True)
    domain = pw.CharField(max_length=255, default="")
    request_id = pw.CharField(max_length=36, index=True)   # the request that first carried it
    piece_id = pw.BigIntegerField(null=True, index=True)   # None: the request's answer
    data = pw.BlobField()

    class Meta:
        table_name = "search_entries"
