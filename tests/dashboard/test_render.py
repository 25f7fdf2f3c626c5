"""Rendering a stored request for a person: tool pairing, thinking, images, SSE."""
import json

from dashboard import render

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _request():
    return {"model": "claude-sonnet-4-5", "system": [{"type": "text", "text": "Be brief."}],
            "tools": [{"name": "Read"}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look at this"},
                                             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                                             {"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2Zz4="}}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm"},
                                                  {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a.py"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "print(1)"}]},
                                             {"type": "tool_result", "tool_use_id": "t9", "content": "orphan", "is_error": True}]},
            ]}


def test_tool_results_are_shown_under_their_calls():
    view = render.conversation(_request())
    call = view["messages"][1]["blocks"][1]
    assert call["kind"] == "tool_use" and call["result"] == {"text": "print(1)", "is_error": False}
    last = view["messages"][2]["blocks"]
    assert [b["kind"] for b in last] == ["tool_result"]  # the paired one moved, the orphan stays
    assert last[0]["id"] == "t9" and last[0]["is_error"]


def test_system_thinking_images_and_tools():
    view = render.conversation(_request())
    assert view["system"] == "Be brief." and view["tools"] == ["Read"]
    assert view["messages"][1]["blocks"][0] == {"kind": "thinking", "text": "hmm"}
    png, svg = view["messages"][0]["blocks"][1:]
    assert png["src"] == f"data:image/png;base64,{PNG}"
    assert svg["kind"] == "note"  # SVG can carry script: never rendered as an image


def test_streamed_response_is_rebuilt():
    events = [("message_start", {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [], "model": "x", "usage": {"input_tokens": 5}}}),
              ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
              ("message_stop", {"type": "message_stop"})]
    sse = "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events)
    message = render.response_message(sse)
    assert message["content"][0]["text"] == "Hello"
    view = render.conversation({"messages": []}, message)
    assert view["response"] == [{"kind": "text", "text": "Hello"}]


def test_odd_bodies_do_not_break_rendering():
    assert render.conversation(None)["messages"] == []
    assert render.conversation("not json")["system"] is None
    view = render.conversation({"messages": [{"role": "user", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}, {"type": "mystery"}, 7]}]})
    assert [b["kind"] for b in view["messages"][0]["blocks"]] == ["tool_use", "other", "text"]
    assert render.response_message({"type": "error"}) is None
    assert render.response_message("plain text") is None
