"""The message rebuilt from a stream equals the non-streamed one, however it is cut."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from common.accumulator import MessageAccumulator, merge_usage, message_from_sse
from common.sse import SSEParser
from tests import fake_upstream_data as fake

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)
_cache = st.sampled_from([None, {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"},
                          {"type": "ephemeral", "ttl": "5m"}])
_tool = st.builds(lambda name, props: {
    "name": name, "description": "d",
    "input_schema": {"type": "object", "properties": {
        p: {"type": t} for p, t in props.items()}}},
    st.sampled_from(["get_weather", "Task", "Agent", "Bash"]),
    st.dictionaries(st.sampled_from(["city", "n", "flag", "ratio", "items"]),
                    st.sampled_from(["string", "integer", "boolean", "number", "array"]),
                    max_size=4))


def _block(text, cache):
    block = {"type": "text", "text": text}
    if cache:
        block["cache_control"] = cache
    return block


@st.composite
def requests(draw):
    """Random Messages requests: text, tools, thinking, cache breakpoints."""
    turns = draw(st.integers(min_value=0, max_value=2))
    messages = []
    for _ in range(turns):
        messages.append({"role": "user", "content": [_block(draw(_text), draw(_cache))]})
        messages.append({"role": "assistant", "content": draw(_text)})
    last = draw(_text) + draw(st.sampled_from(["", " use tool", " redact", " use tool redact"]))
    messages.append({"role": "user", "content": last})
    request = {"model": draw(st.sampled_from(["claude-sonnet-4-6", "claude-haiku-4-5"])),
               "max_tokens": 1024, "messages": messages}
    if draw(st.booleans()):
        request["system"] = [_block(draw(_text), draw(_cache))]
    if draw(st.booleans()):
        request["tools"] = draw(st.lists(_tool, min_size=1, max_size=2))
    if draw(st.booleans()):
        request["thinking"] = draw(st.sampled_from([
            {"type": "enabled", "budget_tokens": 2048}, {"type": "adaptive"}]))
    return request


def _accumulate(data, cuts):
    parser, accumulator, start = SSEParser(), MessageAccumulator(), 0
    for cut in sorted(set(c for c in cuts if c <= len(data))) + [len(data)]:
        for event in parser.feed(data[start:cut]):
            accumulator.feed(event.event, json.loads(event.data))
        start = cut
    return accumulator


@settings(max_examples=200, deadline=None)
@given(request=requests(), chunks=st.integers(min_value=1, max_value=12),
       delta_usage=st.sampled_from(["output", "full"]),
       cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=40))
def test_rebuilt_message_equals_the_non_streamed_one(request, chunks, delta_usage, cuts):
    message = fake.build_message(request, cache=set())
    data = fake.sse_bytes(message, chunks=chunks, delta_usage=delta_usage)
    accumulator = _accumulate(data, cuts)
    assert accumulator.complete and accumulator.error is None
    assert accumulator.message == message
    assert accumulator.usage == message["usage"]
    assert message_from_sse(data).message == message


def test_tool_input_is_parsed_from_concatenated_partial_json():
    request = {"model": "m", "max_tokens": 1, "tools": [{"name": "t", "input_schema": {}}],
               "messages": [{"role": "user", "content": "use tool"}]}
    message = fake.build_message(request)
    data = fake.sse_bytes(message, chunks=9)
    assert data.count(b"input_json_delta") == 10  # the empty opener and nine pieces
    [tool] = [b for b in message_from_sse(data).message["content"] if b["type"] == "tool_use"]
    assert tool["input"] == {"query": "fake upstream"}


def test_thinking_keeps_its_signature():
    request = {"model": "m", "max_tokens": 1, "thinking": {"type": "enabled", "budget_tokens": 1},
               "messages": [{"role": "user", "content": "redact this"}]}
    rebuilt = message_from_sse(fake.sse_bytes(fake.build_message(request))).message
    kinds = [b["type"] for b in rebuilt["content"]]
    assert kinds == ["thinking", "redacted_thinking", "text"]
    assert rebuilt["content"][0]["signature"] == fake.build_message(request)["content"][0]["signature"]


def test_truncated_stream_keeps_partial_message_and_usage_so_far():
    request = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hello"}]}
    message = fake.build_message(request)
    data = fake.sse_bytes(message, chunks=4)
    cut = data.rindex(b"event: content_block_delta")  # the last text piece never arrives
    result = message_from_sse(data[:cut])
    assert not result.complete
    assert message["content"][0]["text"].startswith(result.message["content"][0]["text"])
    assert 0 < len(result.message["content"][0]["text"]) < len(message["content"][0]["text"])
    assert result.usage["input_tokens"] == message["usage"]["input_tokens"]
    assert result.usage["output_tokens"] == 1  # message_start's count: the delta never came
    assert result.message["stop_reason"] is None


def test_truncated_tool_input_keeps_the_start_input():
    accumulator = MessageAccumulator()
    accumulator.feed("message_start", {"type": "message_start", "message": {
        "id": "m", "content": [], "usage": {"input_tokens": 5}}})
    accumulator.feed("content_block_start", {"type": "content_block_start", "index": 0,
        "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}}})
    accumulator.feed("content_block_delta", {"type": "content_block_delta", "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'}})
    assert accumulator.message["content"][0]["input"] == {}


def test_error_event_is_reported_with_what_came_before():
    data = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"x",'
            b'"content":[],"usage":{"input_tokens":9,"output_tokens":1}}}\n\n'
            b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
            b'"message":"Overloaded"}}\n\n')
    result = message_from_sse(data)
    assert result.error == {"type": "overloaded_error", "message": "Overloaded"}
    assert result.usage == {"input_tokens": 9, "output_tokens": 1}
    assert not result.complete


def test_no_stream_at_all_gives_nothing_without_raising():
    result = message_from_sse(b"not an event stream")
    assert result == (None, {}, None, False)
    accumulator = MessageAccumulator()
    accumulator.feed("content_block_delta", {"type": "content_block_delta"})  # malformed
    accumulator.feed("weird", ["not", "a", "dict"])
    assert accumulator.message is None


def test_merge_usage_overrides_only_present_fields():
    start = {"input_tokens": 100, "cache_read_input_tokens": 50, "output_tokens": 1,
             "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}}
    assert merge_usage(start, {"output_tokens": 300}) == dict(start, output_tokens=300)


def test_merge_usage_merges_nested_and_skips_nulls():
    start = {"input_tokens": 100, "cache_creation": {"ephemeral_5m_input_tokens": 10,
                                                     "ephemeral_1h_input_tokens": 20}}
    update = {"input_tokens": None, "cache_creation": {"ephemeral_1h_input_tokens": 25},
              "server_tool_use": {"web_search_requests": 2}}
    assert merge_usage(start, update) == {
        "input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 25},
        "server_tool_use": {"web_search_requests": 2}}
    assert start["cache_creation"]["ephemeral_1h_input_tokens"] == 20  # inputs not mutated


def test_merge_usage_of_nothing():
    assert merge_usage(None, None) == {}
    assert merge_usage({}, {"output_tokens": 3}) == {"output_tokens": 3}


def test_usage_from_several_message_deltas_keeps_the_last_values():
    accumulator = MessageAccumulator()
    accumulator.feed("message_start", {"type": "message_start", "message": {
        "id": "m", "content": [], "usage": {"input_tokens": 10, "output_tokens": 1}}})
    accumulator.feed("message_delta", {"type": "message_delta", "delta": {},
                                       "usage": {"output_tokens": 40}})
    accumulator.feed("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "max_tokens"},
                                       "usage": {"output_tokens": 80, "input_tokens": 12}})
    assert accumulator.usage == {"input_tokens": 12, "output_tokens": 80}
    assert accumulator.message["stop_reason"] == "max_tokens"
