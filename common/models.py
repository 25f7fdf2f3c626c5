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
    cost_usd = pw.DoubleField(default=0.0)
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

    class Meta:
        table_name = "task_invocations"
        indexes = ((("domain", "prompt_hash", "timestamp"), False),)


LATENCY_BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000)


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
    cost_usd = pw.DoubleField(default=0.0)
    duration_ms_sum = pw.DoubleField(default=0.0)

    class Meta:
        table_name = "api_usage_hourly"
        indexes = ((("hour", "domain", "model", "request_type", "account_id"), True),)


def histogram_columns(prefix):
    """Column names of one histogram, in bucket order, `+inf` last."""
    return [f"{prefix}_le_{b}" for b in LATENCY_BUCKETS_MS] + [f"{prefix}_inf"]


for _col in histogram_columns("latency") + histogram_columns("ttft"):
    HourlyUsage._meta.add_field(_col, pw.IntegerField(default=0))


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


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "nexus_schema_version"


# The tables of the first schema; `_initial_schema` creates these and later migrations
# add the others (LATER_MODELS), so that an old database and a new one end up alike.
ALL_MODELS = (ApiRequest, RequestBody, TaskInvocation, HourlyUsage, ClientKey,
              UsageWindow, CredentialLease)
LATER_MODELS = (BodyPiece, BodyStorageDaily)


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
