"""Message hashes with the cache: the same hashes as without it, within its bound.

The normalisation rules themselves are tested through `common.recording.linking` in test_linking.py.
"""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from common.recording import message_hashes
from tests import scenarios


def _user(*texts):
    return {"role": "user", "content": [{"type": "text", "text": t} for t in texts]}


def _raw_messages(messages):
    return [json.dumps(m) for m in messages]


def test_the_message_cache_gives_the_same_hashes_cold_and_warm():
    day = scenarios.claude_code_day()
    cache = message_hashes.MessageCache()
    for _ in range(2):  # the first pass fills the cache, the second reads it
        for record in day.records:
            messages = json.loads(record["request_body"]).get("messages") or []
            assert message_hashes.prefix_hashes(messages, _raw_messages(messages), cache) == \
                message_hashes.prefix_hashes(messages)
    assert len(cache) > 10


def test_a_cached_message_with_an_earlier_tool_id_loses_that_block():
    call = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "text"}
    resent = {"role": "user", "content": [result, {"type": "text", "text": "and now?"}]}
    first = [_user("go"), {"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]
    cache = message_hashes.MessageCache()
    message_hashes.prefix_hashes([resent], _raw_messages([resent]), cache)  # cached on its own, result kept
    messages = first + [{"role": "assistant", "content": "ok"}, resent]
    cached = message_hashes.prefix_hashes(messages, _raw_messages(messages), cache)
    assert cached == message_hashes.prefix_hashes(messages)
    assert cached[-1] == message_hashes.prefix_hashes(first + [{"role": "assistant", "content": "ok"},
                                                        _user("and now?")])[-1]


def test_the_message_cache_stays_within_its_bound():
    cache = message_hashes.MessageCache(max_bytes=20_000)
    for n in range(200):
        message = _user(f"message {n} " + "x" * 200)
        message_hashes.prefix_hashes([message], _raw_messages([message]), cache)
    assert 0 < len(cache) < 200 and cache.size <= 20_000
    newest = _user("message 199 " + "x" * 200)
    assert cache.get_many(_raw_messages([newest]))[0] is not None
    assert cache.get_many(_raw_messages([_user("message 0 " + "x" * 200)]))[0] is None


STORED = [  # hashes as rows stored since the first version: a changed definition breaks links
    {"role": "user", "content": "fix the test"},
    {"role": "assistant", "content": [{"type": "text", "text": "ok"}, {
        "type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "/a", "n": 1}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                  "content": "café \u2028"}]}]


def test_hashes_are_those_stored_databases_hold():
    expected = [None, "4d87b055f71555a8bdc6ae6708253f4ac9ea404d172e6256a1558537acb82e89",
                "7ff8d2d62dd6b2cd41bb213e9d3f0478ecd02b3e09c98da34b66dda840bd25a7",
                "1a64dec8ed512ddac8057ba7e1b0c6ec77707f6af0353e7af947070185fcc987"]
    cache = message_hashes.MessageCache()
    assert message_hashes.prefix_hashes(STORED) == expected
    for _ in range(2):
        assert message_hashes.prefix_hashes(STORED, _raw_messages(STORED), cache) == expected


_ids = st.sampled_from(["t1", "t2", "t3", ""])
_blocks = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.sampled_from(
        ["a", "", " <system-reminder>r</system-reminder> ", "é\r\n"])}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": _ids, "name": st.just("Read"),
                           "input": st.dictionaries(st.sampled_from("ab"), st.integers())}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": _ids,
                           "content": st.sampled_from(["r", "", None]),
                           "is_error": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": st.just("t")}))
_messages = st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                           "content": st.one_of(st.text(max_size=5),
                                                st.lists(_blocks, max_size=4))}),
    st.integers()), max_size=8)


@settings(max_examples=300, deadline=None)
@given(first=_messages, second=_messages)
def test_the_cache_never_changes_a_hash(first, second):
    """Messages met in one request, then in another list around other tool ids."""
    cache = message_hashes.MessageCache()
    for messages in (first, second, first + second, second + first):
        assert message_hashes.prefix_hashes(messages, _raw_messages(messages), cache) == \
            message_hashes.prefix_hashes(messages)
