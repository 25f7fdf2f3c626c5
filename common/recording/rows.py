"""A record (the proxy's hand-off, docs/architecture.md) turned into row values: pure.

`derive()` reads the bodies once and returns the `api_requests` columns, the
`api_request_bodies` columns the capture policy keeps, and what linking needs
(`Features`). The links themselves need earlier rows; `common.recording.store` adds them.
"""
import datetime
import json
import re
from dataclasses import dataclass, field

from ..models import ApiRequest
from ..redact import redact_headers
from . import linking, message_hashes

USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                 "cache_read_input_tokens")
# A summariser's answer is remembered like a Task call, under this pseudo tool id,
# so that the compacted session that quotes it can find it (ADR 0021).
COMPACTION_TOOL_ID = "compaction"
# One per process: the writer process lives as long as its worker and sees the same
# conversations grow. 64 MB holds the history of about thirty 1 MB conversations.
MESSAGE_CACHE = message_hashes.MessageCache(max_bytes=64 * 2**20)
_COLUMN_LIMITS = {name: f.max_length for name, f in ApiRequest._meta.fields.items()
                  if getattr(f, "max_length", None)}


@dataclass
class Features:
    """What a request and its answer say about links to other requests."""

    hashes: list = field(default_factory=lambda: [None])  # prefix hashes of the messages
    prompt_hashes: list = field(default_factory=list)     # a sub-agent's first prompt
    continuation: str | None = None                       # a compacted session's summary
    invocations: list = field(default_factory=list)       # (tool_use_id, prompt_hash)


@dataclass
class Derived:
    row: dict
    body: dict | None
    features: Features


def parse_json(data):
    """A JSON value from bytes or text; None when it is not JSON."""
    if data is None or data == b"" or data == "":
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def parse_body(data):
    """(request body, raw JSON text of each message or None): `parse_json`'s body, and the
    text each of its messages was parsed from, which keys the message cache.

    The top-level object is walked with the json module's own scanner, so the values
    are those `json.loads` gives; anything unusual falls back to `parse_json`.
    """
    if isinstance(data, bytearray):
        data = bytes(data)
    if not isinstance(data, (bytes, str)) or not data:
        return parse_json(data), None
    try:
        return _walk(data.decode(json.detect_encoding(data), "surrogatepass")
                     if isinstance(data, bytes) else data)
    except Exception:  # not JSON, or a shape the walk leaves to json.loads
        return parse_json(data), None


def _walk(s):
    index = _SPACE.match(s, 0).end()
    if s[index:index + 1] != "{":
        raise ValueError("not an object")
    body, raw = {}, None
    index = _SPACE.match(s, index + 1).end()
    end = index + 1 if s[index:index + 1] == "}" else None
    while end is None:
        if s[index:index + 1] != '"':
            raise ValueError("expected a key")
        key, index = json.decoder.scanstring(s, index + 1)
        index = _SPACE.match(s, index).end()
        if s[index:index + 1] != ":":
            raise ValueError("expected a colon")
        index = _SPACE.match(s, index + 1).end()
        if key == "messages" and s[index:index + 1] == "[":
            body[key], raw, index = _array(s, index)
        else:
            body[key], index = _DECODER.scan_once(s, index)
            raw = None if key == "messages" else raw
        index = _SPACE.match(s, index).end()
        if s[index:index + 1] == "}":
            end = index + 1
        elif s[index:index + 1] == ",":
            index = _SPACE.match(s, index + 1).end()
        else:
            raise ValueError("expected a comma")
    if _SPACE.match(s, end).end() != len(s):
        raise ValueError("extra data")
    return body, raw


def _array(s, index):
    values, spans = [], []
    index = _SPACE.match(s, index + 1).end()
    if s[index:index + 1] == "]":
        return values, spans, index + 1
    while True:
        value, end = _DECODER.scan_once(s, index)
        values.append(value)
        spans.append(s[index:end])
        index = _SPACE.match(s, end).end()
        if s[index:index + 1] == "]":
            return values, spans, index + 1
        if s[index:index + 1] != ",":
            raise ValueError("expected a comma")
        index = _SPACE.match(s, index + 1).end()


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
    """(assistant message or None, usage dict or None, error text or None, stored body text)."""
    raw = record.get("response_body")
    raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    if record.get("stream"):
        from ..accumulator import message_from_sse
        acc = message_from_sse(bytes(raw or b""))
        message = acc.message if isinstance(acc.message, dict) and acc.message else None
        error = _error_text(acc.error)
        shown = message or ({"type": "error", "error": acc.error} if acc.error else None)
        stored = json.dumps(shown) if shown else None
        return message, acc.usage or (message or {}).get("usage"), error, text(stored)
    data = parse_json(raw)
    if isinstance(data, dict) and data.get("type") == "message":
        return data, data.get("usage"), None, text(raw)
    if isinstance(data, dict) and data.get("type") == "error":
        return None, None, _error_text(data.get("error")), text(raw)
    return None, None, None, text(raw)


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


def features(body, message, config, raw=None):
    """Linking inputs from a parsed request body and the rebuilt assistant message.

    `raw` (from `parse_body`) lets the hashes reuse messages met in earlier requests.
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return Features()
    found = Features(hashes=message_hashes.prefix_hashes(body["messages"], raw, MESSAGE_CACHE),
                     prompt_hashes=linking.first_prompt_hashes(body),
                     continuation=linking.continuation_summary(body))
    if message:
        found.invocations = linking.task_invocations(message, config.subtask_tool_names)
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
    body, raw = parse_body(record.get("request_body"))
    body = body if isinstance(body, dict) else None
    message, usage, stream_error, stored_response = response_message(record)
    kind = linking.request_type(record.get("path"), body, headers)
    messages_call = linking.path_type(record.get("path")) is None and body is not None
    found = features(body, message, config, raw) if messages_call else Features()
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
        "system_hash": linking.system_hash(body.get("system")) if messages_call else None,
        "auth_hash": record.get("auth_hash"),
        "client_key_id": record.get("client_key_id"),
        "upstream_request_id": record.get("upstream_request_id"),
        "stop_reason": _str((message or {}).get("stop_reason"), 64),
        "ratelimit": ratelimit_json(record.get("response_headers")),
        "conversation_id": None, "branch_id": None, "parent_request_id": None,
        "is_subtask": False, "parent_task_request_id": None,
    }
    fit_columns(row)
    stored = None
    if keeps_bodies(config.capture_bodies, row["response_status"], error):
        stored = {
            "request_id": row["request_id"],
            "request_body": text(record.get("request_body")),
            "response_body": stored_response,
            "request_headers": json.dumps(redact_headers(record.get("request_headers") or {})),
            "response_headers": json.dumps(redact_headers(record.get("response_headers") or {})),
        }
    return Derived(row, stored, found)
