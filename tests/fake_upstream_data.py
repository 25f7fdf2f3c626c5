"""What the fake Anthropic API answers: pure functions from a request to a message.

Written from the Messages API's wire format. Everything here is deterministic in the
request (and, for prompt caching, in the set of prefixes already cached), so that a
test can compare the message rebuilt from a stream with the non-streamed one.
"""
import base64
import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser

DEFAULT_MODEL = "claude-sonnet-4-6"
# (id, display name, release date). Tests should use ids the SDK does not warn about
# (it raises DeprecationWarning for claude-sonnet-4-5 and claude-opus-4-5).
MODELS = (
    ("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
)
TOOL_TRIGGER = "use tool"
REDACT_TRIGGER = "redact"


def _digest(*parts, size=24):
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:size]


def tokens_of(value):
    """A stand-in tokenizer: about four bytes of canonical JSON per token."""
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "cache_control"}
    raw = json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return len(raw) // 4 + 1


def _as_blocks(content):
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def prompt_blocks(request):
    """The prompt in cache order (tools, system, messages) as a flat list of blocks."""
    blocks = list(request.get("tools") or [])
    blocks += _as_blocks(request.get("system"))
    for message in request.get("messages") or []:
        blocks += _as_blocks(message.get("content"))
    return blocks


def prefix_key(blocks):
    """The identity of a cached prefix."""
    return _digest([{k: v for k, v in b.items() if k != "cache_control"} for b in blocks])


def input_usage(request, cache=None):
    """Input-side usage: cached prefixes end at blocks marked with cache_control.

    `cache` is a set of prefix keys already written (the server's memory); it is
    updated with the prefixes written now. Tokens between breakpoints are billed to
    the TTL of the breakpoint that closes them, as the API does.
    """
    blocks = prompt_blocks(request)
    total = sum(tokens_of(b) for b in blocks)
    marks = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    usage = {"input_tokens": total}
    if not marks:
        return usage
    cache = set() if cache is None else cache
    read_upto, written = -1, {"5m": 0, "1h": 0}
    for i in marks:
        if prefix_key(blocks[: i + 1]) in cache:
            read_upto = i
    previous = read_upto
    for i in marks:
        if i <= read_upto:
            continue
        ttl = "1h" if blocks[i]["cache_control"].get("ttl") == "1h" else "5m"
        written[ttl] += sum(tokens_of(b) for b in blocks[previous + 1: i + 1])
        cache.add(prefix_key(blocks[: i + 1]))
        previous = i
    read = sum(tokens_of(b) for b in blocks[: read_upto + 1])
    creation = written["5m"] + written["1h"]
    return {
        "input_tokens": total - read - creation,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": written["5m"],
                           "ephemeral_1h_input_tokens": written["1h"]},
    }


def last_user_text(request):
    """The text of the last user message (tool results shown as a marker)."""
    for message in reversed(request.get("messages") or []):
        if message.get("role") != "user":
            continue
        parts = []
        for block in _as_blocks(message.get("content")):
            if block.get("type") == "text":
                parts.append(block.get("text", ""))
            elif block.get("type") == "tool_result":
                parts.append("[tool result]")
        return " ".join(parts)
    return ""


def wants_tool(request, scenarios=()):
    """A tool call is made when tools exist and the user, tool_choice or scenario asks."""
    if not request.get("tools"):
        return False
    choice = (request.get("tool_choice") or {}).get("type")
    if choice == "none":
        return False
    return (choice in ("any", "tool") or "tool-use" in scenarios
            or TOOL_TRIGGER in last_user_text(request).lower())


def wants_thinking(request):
    thinking = request.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type", "disabled") != "disabled"


def _example_value(name, schema):
    kind = (schema or {}).get("type")
    if "enum" in (schema or {}):
        return schema["enum"][0]
    return {"string": f"value of {name}", "integer": 7, "number": 4.5, "boolean": True,
            "array": [], "object": {}}.get(kind, f"value of {name}")


def tool_input(tool):
    """A deterministic input that fits the tool's input_schema."""
    properties = (tool.get("input_schema") or {}).get("properties") or {}
    if not properties:
        return {"query": "fake upstream"}
    return {name: _example_value(name, schema) for name, schema in properties.items()}


def _pick_tool(request):
    choice = request.get("tool_choice") or {}
    tools = request["tools"]
    if choice.get("type") == "tool":
        for tool in tools:
            if tool.get("name") == choice.get("name"):
                return tool
    return tools[0]


def answer_text(request, min_length=0):
    """The assistant's text: an echo of the last user message, padded to `min_length`."""
    text = f"Fake answer to: {last_user_text(request)[:200]}"
    if len(text) < min_length:
        text += " ." * ((min_length - len(text) + 1) // 2)
    return text


def build_content(request, scenarios=(), min_text=0):
    """The content blocks of the answer."""
    seed = _digest(request.get("messages"), request.get("system"))
    content = []
    if wants_thinking(request):
        thought = f"Thinking about: {last_user_text(request)[:120]}"
        signature = base64.b64encode(hashlib.sha256(thought.encode()).digest() * 2).decode()
        content.append({"type": "thinking", "thinking": thought, "signature": signature})
        if REDACT_TRIGGER in last_user_text(request).lower():
            content.append({"type": "redacted_thinking", "data": "RVJBU0VE" + seed})
    content.append({"type": "text", "text": answer_text(request, min_text)})
    if wants_tool(request, scenarios):
        tool = _pick_tool(request)
        content.append({"type": "tool_use", "id": "toolu_01" + seed[:22],
                        "name": tool.get("name", "tool"), "input": tool_input(tool)})
    return content


def output_tokens(content):
    return sum(tokens_of(block) for block in content)


def build_message(request, scenarios=(), cache=None, min_text=0):
    """The non-streaming Messages API answer to `request` (a dict)."""
    content = build_content(request, scenarios, min_text)
    usage = input_usage(request, cache)
    usage["output_tokens"] = output_tokens(content)
    usage["service_tier"] = "standard"
    tool_called = any(b["type"] == "tool_use" for b in content)
    return {
        "id": "msg_01" + _digest({k: v for k, v in request.items() if k != "stream"})[:22],
        "type": "message",
        "role": "assistant",
        "model": request.get("model") or DEFAULT_MODEL,
        "content": content,
        "stop_reason": "tool_use" if tool_called else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def validate_messages_request(request):
    """The API's checks on a Messages request: None when valid, else a message."""
    if not isinstance(request, dict):
        return "body: Input should be an object"
    for field in ("model", "messages", "max_tokens"):
        if field not in request:
            return f"{field}: Field required"
    if not isinstance(request["messages"], list):
        return "messages: Input should be a valid list"
    return None


def count_tokens(request):
    """The /v1/messages/count_tokens answer."""
    return {"input_tokens": input_usage(request)["input_tokens"]}


def model_info(model_id):
    for mid, name, created in MODELS:
        if mid == model_id:
            return {"type": "model", "id": mid, "display_name": name, "created_at": created}
    return None


def model_list():
    data = [model_info(mid) for mid, _, _ in MODELS]
    return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}


def error_body(error_type, message, request_id=None):
    """Anthropic's error shape."""
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


ERRORS = {
    400: ("invalid_request_error", "Invalid request (fake upstream scenario)"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def split_text(text, pieces):
    """`text` cut into `pieces` near-equal parts (fewer when it is shorter)."""
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    parts, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        parts.append(text[start:end])
        start = end
    return parts


def _block_events(index, block, chunks):
    kind = block["type"]
    if kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"], chunks)]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": ""}
        deltas = [{"type": "thinking_delta", "thinking": p}
                  for p in split_text(block["thinking"], chunks)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        # The API opens a tool call with an empty partial_json, then the JSON in pieces.
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": p}
                   for p in split_text(json.dumps(block["input"]), chunks)]
    else:
        start, deltas = block, []
    yield "content_block_start", {"type": "content_block_start", "index": index,
                                  "content_block": start}
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                      "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def sse_events(message, chunks=3, delta_usage="output"):
    """The stream of (event name, data) the API sends for `message`.

    `delta_usage` is "output" (message_delta carries output_tokens only, as the API
    long did) or "full" (it repeats every count, as the API does now).
    """
    usage = message["usage"]
    start_usage = dict(usage, output_tokens=min(1, usage["output_tokens"]))
    head = dict(message, content=[], stop_reason=None, stop_sequence=None, usage=start_usage)
    yield "message_start", {"type": "message_start", "message": head}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block, chunks)
    if delta_usage == "full":
        final = {k: v for k, v in usage.items() if k != "service_tier"}
    else:
        final = {"output_tokens": usage["output_tokens"]}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": message["stop_reason"],
                                      "stop_sequence": message["stop_sequence"]},
                            "usage": final}
    yield "message_stop", {"type": "message_stop"}


def encode_event(name, data):
    """One SSE event as the API writes it: event line, data line, blank line."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode("utf-8")


def sse_bytes(message, chunks=3, delta_usage="output"):
    """The whole SSE body for `message`."""
    return b"".join(encode_event(n, d) for n, d in sse_events(message, chunks, delta_usage))


def iso_time(seconds_from_now):
    """An RFC 3339 UTC time, as the rate-limit reset headers give it."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def unified_headers(utilisation):
    status = "allowed" if utilisation < 0.8 else "allowed_warning"
    reset = str(int(time.time()) + 3600)
    return {
        "anthropic-ratelimit-unified-status": status,
        "anthropic-ratelimit-unified-reset": reset,
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
        "anthropic-ratelimit-unified-fallback-percentage": "0.5",
        "anthropic-ratelimit-unified-5h-status": status,
        "anthropic-ratelimit-unified-5h-reset": reset,
        "anthropic-ratelimit-unified-5h-utilization": f"{utilisation:.2f}",
        "anthropic-ratelimit-unified-7d-status": "allowed",
        "anthropic-ratelimit-unified-7d-reset": str(int(time.time()) + 86400 * 3),
        "anthropic-ratelimit-unified-7d-utilization": f"{utilisation / 4:.2f}",
    }


def batch_object(batch_id, count):
    return {"id": batch_id, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": count, "succeeded": 0, "errored": 0,
                               "canceled": 0, "expired": 0},
            "ended_at": None, "created_at": iso_time(0), "expires_at": iso_time(86400),
            "archived_at": None, "cancel_initiated_at": None, "results_url": None}


def batch_ended(batch, base):
    """Batches finish at once: any read after creation sees them ended."""
    counts = batch["request_counts"]
    total = sum(counts.values())
    return dict(batch, processing_status="ended", ended_at=batch["created_at"],
                request_counts=dict(counts, processing=0, succeeded=total),
                results_url=f"{base}/v1/messages/batches/{batch['id']}/results")


def multipart_file(content_type, body):
    """(filename, mime type, bytes) of the first file part of a multipart body."""
    if "multipart/form-data" not in content_type:
        return None, None, None
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        if part.get_filename() is not None or part.get_param("name", header="content-disposition") == "file":
            return part.get_filename(), part.get_content_type(), part.get_payload(decode=True)
    return None, None, None
