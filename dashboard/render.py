"""A stored request and response → a structure a template can show a person. Pure.

Tool calls are paired with their results (a tool_result follows its tool_use in the
next user message), thinking is marked for collapsing, images become data: URIs only
for raster types, and a streamed response is rebuilt from its SSE events (common.accumulator).
"""
import base64
import binascii
import json

from common.accumulator import message_from_sse

RASTER_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _pretty(value):
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(c.get("text", c) if isinstance(c, dict) else c) for c in content
                         if not (isinstance(c, dict) and c.get("type") == "image"))
    if isinstance(content, dict):
        return content.get("text") or _pretty(content)
    return "" if content is None else str(content)


def _image(block):
    source = block.get("source") or {}
    if source.get("type") == "base64" and source.get("media_type") in RASTER_TYPES:
        data = source.get("data") or ""
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return {"kind": "note", "text": "[image with invalid base64 data]"}
        return {"kind": "image", "src": f"data:{source['media_type']};base64,{data}"}
    return {"kind": "note", "text": f"[image: {source.get('type', '?')} {source.get('url', '')}]".strip()}


def _block(block, results):
    if isinstance(block, str):
        return {"kind": "text", "text": block}
    if not isinstance(block, dict):
        return {"kind": "text", "text": str(block)}
    kind = block.get("type")
    if kind == "text":
        return {"kind": "text", "text": block.get("text", "")}
    if kind in ("thinking", "redacted_thinking"):
        return {"kind": "thinking", "text": block.get("thinking") or "[redacted thinking]"}
    if kind in ("tool_use", "server_tool_use"):
        result = results.get(block.get("id"))
        return {"kind": "tool_use", "id": block.get("id"), "name": block.get("name"),
                "input": _pretty(block.get("input")), "result": result}
    if kind == "tool_result":
        return {"kind": "tool_result", "id": block.get("tool_use_id"),
                "text": _text_of(block.get("content")), "is_error": bool(block.get("is_error"))}
    if kind == "image":
        return _image(block)
    return {"kind": "other", "type": str(kind), "text": _pretty(block)}


def _results(messages):
    """tool_use_id → its result, from every tool_result block."""
    found = {}
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                found[block.get("tool_use_id")] = {"text": _text_of(block.get("content")),
                                                   "is_error": bool(block.get("is_error"))}
    return found


def _blocks(content, results, paired):
    content = [content] if isinstance(content, str) else (content or [])
    out = []
    for block in content:
        shown = _block(block, results)
        if shown["kind"] == "tool_result" and shown["id"] in paired:
            continue  # shown under its tool_use
        out.append(shown)
    return out


def conversation(request_body, response_message=None):
    """System prompt, messages and the response of one request, ready to show."""
    body = request_body if isinstance(request_body, dict) else {}
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    response_content = (response_message or {}).get("content") or []
    results = _results(messages)
    uses = {b.get("id") for m in messages for b in (m.get("content") if isinstance(m.get("content"), list) else [])
            if isinstance(b, dict) and b.get("type") == "tool_use"}
    paired = uses & set(results)
    system = body.get("system")
    return {
        "system": _text_of(system) if system else None,
        "messages": [{"role": m.get("role", "?"), "blocks": _blocks(m.get("content"), results, paired)}
                     for m in messages],
        "tools": [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)],
        "response": _blocks(response_content, {}, set()) if response_message else None,
        "params": {k: body[k] for k in ("model", "max_tokens", "temperature", "stream", "thinking")
                   if k in body},
    }


def response_message(response_body):
    """The assistant message of a stored response: JSON as is, SSE rebuilt, else None."""
    if isinstance(response_body, dict):
        return response_body if response_body.get("type") == "message" else None
    if isinstance(response_body, str) and response_body.lstrip().startswith(("event:", "data:")):
        return message_from_sse(response_body.encode("utf-8", "surrogateescape")).message
    return None


def pretty(value):
    """Indented JSON (or the text itself) for the raw view."""
    return value if isinstance(value, str) else _pretty(value)
