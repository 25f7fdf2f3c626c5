"""Bodies cut into pieces and put back together: byte for byte, and each piece once."""
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.recording import pieces
from tests.scenarios import claude_code_day


class Store:
    """Pieces by id, as the database would hold them."""

    def __init__(self):
        self.ids, self.data = {}, {}

    def put(self, split):
        new = 0
        for piece in split.pieces():
            if piece.digest not in self.ids:
                self.ids[piece.digest] = len(self.ids) + 1
                self.data[self.ids[piece.digest]] = piece.data
                new += len(piece.data)
        return pieces.recipe(split, self.ids), new

    def round_trip(self, data, cache=None):
        split = pieces.split_body(data, cache)
        recipe, new = self.put(split)
        # The recipe is stored as JSON: what comes back is what was stored.
        recipe = json.loads(json.dumps(recipe))
        return pieces.assemble(recipe, self.data), split, new


def claude_code_bodies():
    return [r["request_body"] for r in claude_code_day(seed=3).records if r.get("request_body")]


ODD = [
    b'{"a":1}',
    b' { "messages" : [ {"role":"user","content":"h\\u00e9"} , 2 ] } \n',
    '{"system":"caf\u00e9","messages":[]}'.encode(),
    b'\xef\xbb\xbf{"messages":[1]}',
    b"not json", b"\xff\xfe{}", b"[1,2]", b'{"messages":[1}', b'{"messages": [1,]}',
    b'{"messages": [1]} extra', b'{"messages": {"a": 1}}', b'{"messages": [1], "messages": 2}',
    b'{"messages":[{"a":1,"cache_control":{"type":"ephemeral"}},'
    b'{"cache_control":{"type":"ephemeral"},"b":2}]}',
    '{"messages":["\u00e9'.encode() + "\u20ac".encode() * 3000 + b'"]}',
    b'{"messages":[{"a":"\xff"}]}',
    b'{"z": 1, "a": 2, "messages": [{"content": "\\ud83d\\ude00 \\"quoted\\" \\\\"}]}',
    b'{"n": 1e400, "messages": [0.1, -0, 1E5]}',
    b'{"messages":[' + b"[" * 5000 + b"]" * 5000 + b"]}",
]


@pytest.mark.parametrize("data", ODD)
def test_odd_bodies_come_back_byte_for_byte(data):
    out, _, _ = Store().round_trip(data, pieces.ElementCache())
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_body_that_is_not_a_json_object_is_one_piece():
    split = pieces.split_body(b"\x00\x01 binary")
    assert split.fields is None
    assert [p.kind for p in split.pieces()] == ["body"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "type", "text", "messages", "system", "tools",
                         "cache_control", "model", "id"]), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.sampled_from(["messages", "model", "system", "tools", "x"]),
                            json_values),
       indent=st.sampled_from([None, 1]), ascii_only=st.booleans())
def test_any_json_body_round_trips_and_parses_as_json_loads(body, indent, ascii_only):
    data = json.dumps(body, indent=indent, ensure_ascii=ascii_only).encode()
    store, cache = Store(), pieces.ElementCache()
    for _ in range(2):  # the second time from the cache
        out, split, _ = store.round_trip(data, cache)
        assert out == data
        fields = {k: list(v) if isinstance(v, pieces.Elements) else v
                  for k, v in split.fields.items()}
        assert fields == json.loads(data)
        for key, value in split.fields.items():
            if isinstance(value, pieces.Elements):
                assert [json.loads(text) for text in value.texts] == json.loads(data)[key]


def test_claude_code_traffic_round_trips_and_stores_each_element_once():
    store, cache = Store(), pieces.ElementCache()
    sent = stored = 0
    for data in claude_code_bodies():
        out, split, new = store.round_trip(data, cache)
        assert out == data
        sent += len(data)
        stored += new
    # The history is resent every turn; it is stored once (a short session: 25 requests).
    assert stored < sent * 0.15


def test_a_long_conversation_is_stored_in_a_twentieth_of_what_it_sent():
    store, cache = Store(), pieces.ElementCache()
    system = [{"type": "text", "text": "You are Claude Code." * 50},
              {"type": "text", "text": "Instructions. " * 2000, "cache_control": {"type": "ephemeral"}}]
    tools = [{"name": f"T{i}", "description": "does things " * 300,
              "input_schema": {"type": "object"}} for i in range(20)]
    messages, sent, stored = [], 0, 0
    for turn in range(60):
        for m in messages:
            for block in m["content"]:
                block.pop("cache_control", None)
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{turn}", "content": f"output {turn} " * 200,
             "cache_control": {"type": "ephemeral"}}]})
        data = json.dumps({"model": "m", "system": system, "tools": tools, "messages": messages,
                           "max_tokens": 100, "stream": True}).encode()
        out, _, new = store.round_trip(data, cache)
        assert out == data
        sent += len(data)
        stored += new
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"step {turn}"},
            {"type": "tool_use", "id": f"toolu_{turn + 1}", "name": "Bash", "input": {"c": "ls"}}]})
    assert stored < sent * 0.05


def test_a_moved_cache_breakpoint_costs_no_new_piece():
    history = [{"role": "user", "content": [{"type": "text", "text": "x" * 5000}]},
               {"role": "assistant", "content": [{"type": "text", "text": "y" * 5000}]}]
    marked = json.loads(json.dumps(history))
    marked[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    turn = [*history, {"role": "user", "content": [{"type": "text", "text": "next",
                                                     "cache_control": {"type": "ephemeral"}}]}]
    store, cache = Store(), pieces.ElementCache()
    store.round_trip(json.dumps({"model": "m", "messages": marked}).encode(), cache)
    out, split, new = store.round_trip(json.dumps({"model": "m", "messages": turn}).encode(), cache)
    assert out == json.dumps({"model": "m", "messages": turn}).encode()
    assert new < 200  # only the newest message: the previous one is the same piece


def test_cached_and_uncached_splits_agree():
    for data in claude_code_bodies()[:30]:
        plain = pieces.split_body(data)
        cached = pieces.split_body(data, pieces.ElementCache())
        again = pieces.split_body(data, cache := pieces.ElementCache()) and pieces.split_body(data, cache)
        digests = [[p.digest for p in s.pieces()] for s in (plain, cached, again)]
        assert digests[0] == digests[1] == digests[2]


def test_the_cache_stays_within_its_bound():
    cache = pieces.ElementCache(max_bytes=50_000)
    for data in claude_code_bodies():
        pieces.split_body(data, cache)
    assert cache.size <= 50_000
    # Evicted elements are still matched correctly (parsed again), not mismatched.
    store = Store()
    for data in claude_code_bodies()[:20]:
        assert store.round_trip(data, cache)[0] == data


def test_cuts_put_back_exactly_what_was_removed():
    text = b'{"type":"text","text":"a","cache_control":{"type":"ephemeral","ttl":"1h"}}'
    cuts, kept = pieces.cut_cache_control(text)
    assert kept == b'{"type":"text","text":"a"}'
    assert cuts == ((len(kept) - 1, ',"cache_control":{"type":"ephemeral","ttl":"1h"}'),)
    first = b'{"cache_control": {"type": "ephemeral"}, "a": 1}'
    cuts, kept = pieces.cut_cache_control(first)
    assert kept == b'{"a": 1}'
    # Inside a string it is text, not a member: nothing is cut.
    quoted = b'{"text": "\\"cache_control\\": {}"}'
    assert pieces.cut_cache_control(quoted) == ((), quoted)
