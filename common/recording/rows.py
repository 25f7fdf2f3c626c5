"""A record (the proxy's hand-off, docs/architecture.md) turned into row values: pure.

`derive()` reads the bodies once and returns the `api_requests` columns, the bodies
the capture policy keeps (cut into pieces, `common.recording.pieces`), and what
linking needs (`Features`). The links themselves need earlier rows, and the pieces
their ids; `common.recording.store` adds both.
"""
import datetime
import json
from dataclasses import dataclass, field

from .. import traits
from ..models import ApiRequest
from . import linking, message_hashes, pieces
from .bodies import Body

USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                 "cache_read_input_tokens")
# A summariser's answer is remembered like a Task call, under this pseudo tool id,
# so that the compacted session that quotes it can find it (ADR 0021).
COMPACTION_TOOL_ID = "compaction"
# One per process: the writer process lives as long as its worker and sees the same
# conversations grow. 64 MB holds the history of about thirty 1 MB conversations.
MESSAGE_CACHE = message_hashes.MessageCache(max_bytes=32 * 2**20)
# The elements of bodies met before, so that a resent history is matched, not parsed.
ELEMENT_CACHE = pieces.ElementCache(max_bytes=48 * 2**20)
_SYSTEM_HASHES = {}  # system blocks as sent -> linking.system_hash (bounded below)
_SYSTEM_TRAITS = {}  # system blocks as sent -> traits.system_traits (bounded below)
_COLUMN_LIMITS = {name: f.max_length for name, f in ApiRequest._meta.fields.items()
                  if getattr(f, "max_length", None)}


@dataclass
class Features:
    """What a request and its answer say about links to other requests."""

    hashes: list = field(default_factory=lambda: [None])  # prefix hashes of the messages
    prompt_hashes: list = field(default_factory=list)     # a sub-agent's first prompt
    continuation: str | None = None                       # a compacted session's summary
    invocations: list = field(default_factory=list)       # (tool_use_id, prompt_hash)
    subagent_types: dict = field(default_factory=dict)    # tool_use_id -> subagent_type
    opening: bool = False                                  # no assistant turn yet: a thread's first request


@dataclass
class Derived:
    row: dict
    body: Body | None
    features: Features


def parse_json(data):
    """A JSON value from bytes or text; None when it is not JSON."""
    if data is None or data == b"" or data == "":
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested past Python's stack
        return None


def split_request(data):
    """The request body cut into pieces (`pieces.split_body`); None when there is none."""
    if data is None:
        return None
    if not data:
        return pieces.SplitBody(None, [])
    return pieces.split_body(data, ELEMENT_CACHE)


def _remembered(cache, key, compute, system):
    """`compute(system)`, kept in `cache` under `key`; the cache is emptied at 1,024
    entries, so a writer meeting many system prompts holds a bounded few."""
    found = cache.get(key)
    if found is None:
        if len(cache) >= 1024:
            cache.clear()
        found = cache[key] = compute(system)
    return found


def system_hash(system):
    """`linking.system_hash`, remembered for the system blocks Claude Code resends."""
    if not isinstance(system, pieces.Elements):
        return linking.system_hash(system)
    return _remembered(_SYSTEM_HASHES, tuple(system.texts), linking.system_hash, system)


def request_traits(body):
    """`traits.body_traits`, the system prompt's part remembered for the system blocks
    Claude Code resends (parsing them again cost as much as splitting the body)."""
    system = body.get("system") if isinstance(body, dict) else None
    if not isinstance(system, pieces.Elements):
        return traits.body_traits(body)
    found = _remembered(_SYSTEM_TRAITS, tuple(system.texts), traits.system_traits, system)
    return traits.body_traits(body, found)


def text(data):
    """Bytes as storable text: UTF-8 with errors replaced, and no NUL (PostgreSQL refuses it)."""
    if data is None:
        return None
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data).decode("utf-8", "replace")
    return data.replace("\x00", "\ufffd")


def timestamp(value):
    """A naive UTC datetime from a datetime or an ISO string."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def response_message(record):
    """(assistant message or None, usage dict or None, error text or None)."""
    raw = record.get("response_body")
    raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    if record.get("stream"):
        from ..accumulator import message_from_sse
        acc = message_from_sse(bytes(raw or b""))
        message = acc.message if isinstance(acc.message, dict) and acc.message else None
        return message, acc.usage or (message or {}).get("usage"), _error_text(acc.error)
    data = parse_json(raw)
    if isinstance(data, dict) and data.get("type") == "message":
        return data, data.get("usage"), None
    if isinstance(data, dict) and data.get("type") == "error":
        return None, None, _error_text(data.get("error"))
    return None, None, None


def shown_response(data):
    """What a stream's events amount to: the rebuilt message, or its error event."""
    from ..accumulator import message_from_sse
    acc = message_from_sse(bytes(data or b""))
    if isinstance(acc.message, dict) and acc.message:
        return acc.message
    return {"type": "error", "error": acc.error} if acc.error else None


def _error_text(error):
    if not error:
        return None
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('message', '')}".strip()
    return str(error)


def usage_columns(usage):
    """The four token counts of a usage object, 0 when absent."""
    usage = usage if isinstance(usage, dict) else {}
    return {name: _count(usage.get(name)) for name in USAGE_COLUMNS}


def _count(value):
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and 0 <= value < 2**31 else 0


def fit_columns(row):
    """Clip text to its column's length, in place: the Host, method, session and account
    come from the client, and PostgreSQL refuses a longer value (SQLite does not), which
    would set the whole record aside as rejected."""
    for name, limit in _COLUMN_LIMITS.items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            row[name] = value[:limit]
    return row


def _str(value, limit):
    return value[:limit] if isinstance(value, str) and value else None


def ratelimit_json(headers):
    """The upstream's rate-limit headers as JSON, or None when there are none."""
    picked = {k: v for k, v in (headers or {}).items()
              if k.startswith("anthropic-ratelimit-") or k == "retry-after"}
    return json.dumps(picked, sort_keys=True) if picked else None


def features(body, message, config):
    """Linking inputs from a parsed request body and the rebuilt assistant message.

    When the messages are a split array (`pieces.Elements`), the hashes reuse the
    messages met in earlier requests.
    """
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, pieces.ARRAY_TYPES):
        return Features()
    raw = messages.texts if isinstance(messages, pieces.Elements) else None
    found = Features(hashes=message_hashes.prefix_hashes(messages, raw, MESSAGE_CACHE),
                     prompt_hashes=linking.first_prompt_hashes(body),
                     continuation=linking.continuation_summary(body),
                     opening=linking.is_opening(messages))
    if message:
        found.invocations = linking.task_invocations(message, config.subtask_tool_names)
        found.subagent_types = traits.subagent_types(message, config.subtask_tool_names)
        if linking.is_summary_request(body):
            fingerprint = linking.summary_fingerprint(linking.response_text(message))
            if fingerprint:
                found.invocations.append((COMPACTION_TOOL_ID, fingerprint))
    return found


def keeps_bodies(policy, status, error):
    """Whether NEXUS_CAPTURE_BODIES keeps this request's bodies."""
    if policy == "all":
        return True
    return policy == "errors" and bool(error or (status or 0) >= 400)


def derive(record, prices, config):
    """Row values, stored bodies and linking features of one record."""
    headers = dict(record.get("request_headers") or {})
    if record.get("session_header"):
        headers.setdefault("x-claude-code-session-id", record["session_header"])
    split = split_request(record.get("request_body"))
    body = split.fields if split is not None and isinstance(split.fields, dict) else None
    message, usage, stream_error = response_message(record)
    kind = linking.request_type(record.get("path"), body, headers)
    messages_call = linking.path_type(record.get("path")) is None and body is not None
    found = features(body, message, config) if messages_call else Features()
    session, account = linking.session_and_account(headers, body)
    model = _str((message or {}).get("model"), 128) or _str((body or {}).get("model"), 128)
    usage = usage if isinstance(usage, dict) else None
    error = record.get("error") or stream_error
    hashes = found.hashes
    row = {
        "request_id": record["request_id"],
        "domain": record.get("domain") or "",
        "timestamp": timestamp(record["timestamp"]),
        "method": record.get("method") or "",
        "path": record.get("path") or "",
        "model": model,
        "request_type": kind,
        "stream": bool(record.get("stream")),
        "response_status": record.get("response_status"),
        **usage_columns(usage),
        "usage_data": json.dumps(usage, sort_keys=True) if usage else None,
        "cost_usd": prices.cost(model, usage) if usage and model else 0.0,
        "duration_ms": record.get("duration_ms"),
        "first_token_ms": record.get("first_token_ms"),
        "error": error,
        "account_id": record.get("account_id") or account,
        "session_id": session,
        "message_count": len(linking.messages_of(body)) if messages_call else 0,
        "current_message_hash": hashes[-1],
        "parent_message_hash": hashes[-3] if len(hashes) >= 4 else None,
        "system_hash": system_hash(body.get("system")) if messages_call else None,
        "auth_hash": record.get("auth_hash"),
        "client_key_id": record.get("client_key_id"),
        "upstream_request_id": record.get("upstream_request_id"),
        "stop_reason": _str((message or {}).get("stop_reason"), 64),
        "ratelimit": ratelimit_json(record.get("response_headers")),
        "conversation_id": None, "branch_id": None, "parent_request_id": None,
        "is_subtask": False, "parent_task_request_id": None,
        # The grouping keys (docs/analytics.md); `subagent` comes with the links, and a
        # client key's name replaces the developer in the store (it needs the database).
        **request_traits(body), "subagent": None,
    }
    fit_columns(row)
    stored = None
    if keeps_bodies(config.capture_bodies, row["response_status"], error):
        stored = kept_body(row, record, split)
        stored.answer = message  # for the search index (common/recording/search_index.py)
    return Derived(row, stored, found)


def kept_body(row, record, split):
    """The bodies and headers to store. Headers arrive redacted (`proxy.wire.make_record`)."""
    data, response = record.get("request_body"), record.get("response_body")
    return Body(row["request_id"], row["domain"], row["timestamp"], split,
                len(data or b""), bytes(response) if response is not None else None,
                dict(record.get("request_headers") or {}), dict(record.get("response_headers") or {}))


def whole(record):
    """A record's body as one piece, unread: for a record that derivation cannot read."""
    data = record.get("request_body")
    if data is None:
        return None
    data = bytes(data)
    return pieces.SplitBody(None, [], pieces.Piece(data, "body")) if data else pieces.SplitBody(None, [])
