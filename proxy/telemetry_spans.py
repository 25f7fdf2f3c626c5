"""A recorded request as OpenTelemetry data: ids, span attributes, metric points. Pure.

The span of a request follows the GenAI semantic conventions (`gen_ai.*`) and adds
ours (`nexus.*`); docs/opentelemetry.md lists them. Ids are derived, never random,
so that a conversation is one trace however many writer processes export it and
whenever its requests arrive (ADR 0128):

- trace id: the conversation id's 128 bits (a UUID: the request id of the request
  that opened the conversation), so a trace is found by its conversation id without
  dashes; a request outside any conversation is a trace of its own;
- span id: the first 64 bits of the request id;
- parent: the request whose Task/Agent call spawned a sub-agent, for the sub-agent's
  requests; the conversation's first request for the others; none for that one.
"""
import datetime
import hashlib
import uuid

_EPOCH = datetime.datetime(1970, 1, 1)
PROVIDER = "anthropic"
CHAT_PATHS = ("/v1/messages",)
# Traits another part of the recorder adds as api_requests columns: exported where present.
TRAITS = ("project", "git_branch", "developer", "subagent")
_ID_COLUMNS = ("request_id", "session_id", "conversation_id", "branch_id", "parent_request_id",
               "parent_task_request_id", "request_type", "domain", "account_id",
               "client_key_id", "upstream_request_id")
# The api_requests columns a span is made of (with the traits, where the table has them).
COLUMNS = _ID_COLUMNS + ("timestamp", "duration_ms", "first_token_ms", "model", "path", "method",
                         "stream", "response_status", "error", "stop_reason", "input_tokens",
                         "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                         "cost_usd", "is_subtask", "message_count")


def _id_bits(text, bits):
    """`bits` bits of an id: the UUID's own leading bits, else of its sha256; never 0."""
    try:
        value = uuid.UUID(str(text)).int >> (128 - bits)
    except ValueError:
        digest = hashlib.sha256(str(text).encode("utf-8", "replace")).digest()
        value = int.from_bytes(digest[:bits // 8], "big")
    return value or 1


def trace_id(row):
    """The trace of a request: its conversation's, else its own."""
    return _id_bits(row.get("conversation_id") or row["request_id"], 128)


def span_id(request_id):
    """The span id of the request `request_id`."""
    return _id_bits(request_id, 64)


def parent_span_id(row):
    """The span this request's span hangs under, or None for a trace's first request."""
    if row.get("parent_task_request_id"):
        return span_id(row["parent_task_request_id"])
    opener = row.get("conversation_id")
    if opener and opener != row["request_id"]:
        return span_id(opener)
    return None


def operation(row):
    """`gen_ai.operation.name`: chat for a Messages call, else the endpoint's request type."""
    path = (row.get("path") or "").split("?")[0].rstrip("/")
    if path in CHAT_PATHS:
        return "chat"
    return row.get("request_type") or "other"


def span_name(row):
    """`{operation} {model}`, as the conventions name an inference span."""
    model = row.get("model")
    return f"{operation(row)} {model}" if model else operation(row)


def times_ns(row):
    """(start, end) in nanoseconds since the epoch: arrival, and arrival plus duration."""
    arrived = row["timestamp"]
    if isinstance(arrived, str):
        arrived = datetime.datetime.fromisoformat(arrived)
    if arrived.tzinfo is not None:
        arrived = arrived.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    start = (arrived - _EPOCH) // datetime.timedelta(microseconds=1) * 1000
    return start, start + int((row.get("duration_ms") or 0.0) * 1_000_000)


def error_type(row):
    """`error.type`: the status code of a failed answer, `_OTHER` for the proxy's own error."""
    status = row.get("response_status")
    if status is not None and status >= 400:
        return str(status)
    if status is None or row.get("error"):
        return "_OTHER"
    return None


def tokens(row):
    """Anthropic's usage split: uncached input, output, cache reads, cache writes."""
    return {"input": row.get("input_tokens") or 0, "output": row.get("output_tokens") or 0,
            "cache_read": row.get("cache_read_input_tokens") or 0,
            "cache_creation": row.get("cache_creation_input_tokens") or 0}


def span_attributes(row):
    """The span's attributes: the conventions' first, then ours; no None values."""
    used = tokens(row)
    ok = error_type(row) is None
    attrs = {
        "gen_ai.operation.name": operation(row),
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.system": PROVIDER,  # the conventions' older name, still what many backends read
        "gen_ai.request.model": row.get("model"),
        "gen_ai.response.model": row.get("model") if ok else None,
        "gen_ai.response.finish_reasons": [row["stop_reason"]] if row.get("stop_reason") else None,
        # The conventions count every input token; Anthropic's input_tokens leaves out the cache.
        "gen_ai.usage.input_tokens": used["input"] + used["cache_read"] + used["cache_creation"],
        "gen_ai.usage.output_tokens": used["output"],
        "gen_ai.usage.cache_read.input_tokens": used["cache_read"],
        "gen_ai.usage.cache_creation.input_tokens": used["cache_creation"],
        "gen_ai.conversation.id": row.get("conversation_id"),
        "session.id": row.get("session_id"),
        "http.request.method": row.get("method"),
        "url.path": row.get("path"),
        "http.response.status_code": row.get("response_status"),
        "error.type": error_type(row),
        "nexus.cost_usd": row.get("cost_usd"),  # absent for an unpriced model, never a made-up 0
        "nexus.usage.input_tokens": used["input"],
        "nexus.stream": bool(row.get("stream")),
        "nexus.is_subtask": bool(row.get("is_subtask")),
        "nexus.message_count": row.get("message_count"),
        "nexus.first_token_ms": row.get("first_token_ms"),
        "nexus.duration_ms": row.get("duration_ms"),
    }
    attrs.update({f"nexus.{name}": row.get(name) for name in _ID_COLUMNS + TRAITS})
    return {key: value for key, value in attrs.items() if value is not None and value != ""}


def batch_sums(rows):
    """Counter sums of rows, per metric attribute set: {(attrs tuple): {name: amount}}.

    Adding a batch's sums once is what the SDK would sum anyway, at a fraction of the cost.
    """
    sums = {}
    for row in rows:
        key = tuple(sorted(metric_attributes(row).items()))
        total = sums.setdefault(key, {"requests": 0, "cost": 0.0, "priced": 0,
                                      **dict.fromkeys(tokens(row), 0)})
        total["requests"] += 1
        for kind, count in tokens(row).items():
            total[kind] += count
        if row.get("cost_usd") is not None:
            total["cost"] += row["cost_usd"]
            total["priced"] += 1
    return sums


def metric_attributes(row):
    """Attributes of the metric points: low-cardinality ones only (no ids)."""
    attrs = {
        "gen_ai.operation.name": operation(row),
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": row.get("model"),
        "error.type": error_type(row),
        "nexus.domain": row.get("domain"),
        "nexus.request_type": row.get("request_type"),
    }
    attrs.update({f"nexus.{name}": row.get(name) for name in ("project", "developer")})
    return {key: value for key, value in attrs.items() if value is not None and value != ""}
