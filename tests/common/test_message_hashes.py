"""Message hashes with the cache: the same hashes as without it, within its bound.

The normalisation rules themselves are tested through `common.linking` in test_linking.py.
"""
import json

from common import message_hashes
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
