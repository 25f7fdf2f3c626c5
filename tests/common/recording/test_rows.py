"""Row values from a record: pure helpers."""
import datetime
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from common import config as nexus_config
from common.pricing import load_prices
from common.recording import rows

CONFIG = nexus_config.load({})


def test_body_capture_policy():
    assert rows.keeps_bodies("all", 200, None)
    assert not rows.keeps_bodies("errors", 200, None)
    assert rows.keeps_bodies("errors", 429, None)
    assert rows.keeps_bodies("errors", 200, "client disconnected")
    assert not rows.keeps_bodies("none", 500, "boom")


def test_usage_columns_default_to_zero():
    assert rows.usage_columns({"input_tokens": 5, "output_tokens": None}) == {
        "input_tokens": 5, "output_tokens": 0, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0}
    assert rows.usage_columns(None)["input_tokens"] == 0


def test_ratelimit_keeps_only_rate_limit_headers():
    headers = {"anthropic-ratelimit-requests-remaining": "49", "retry-after": "3",
               "request-id": "req_1", "content-type": "application/json"}
    assert rows.ratelimit_json(headers) == (
        '{"anthropic-ratelimit-requests-remaining": "49", "retry-after": "3"}')
    assert rows.ratelimit_json({"request-id": "x"}) is None


def test_text_replaces_bad_bytes_and_nul():
    assert rows.text(b"a\x00b\xff") == "a\ufffdb\ufffd"
    assert rows.text(None) is None


def test_timestamps_become_naive_utc():
    aware = datetime.datetime(2026, 1, 1, 10, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert rows.timestamp(aware) == datetime.datetime(2026, 1, 1, 8, 0)
    assert rows.timestamp("2026-01-01T08:00:00") == datetime.datetime(2026, 1, 1, 8, 0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "type", "text", "messages", "system", "tools",
                         "model", "input", "prompt", "id", "tool_use_id", "metadata",
                         "user_id", "max_tokens"]), inner, max_size=5),
    max_leaves=30)


messages = st.fixed_dictionaries({"type": st.just("message"), "model": json_values,
                                   "content": json_values, "usage": json_values,
                                   "stop_reason": json_values})


@settings(max_examples=300, deadline=None)
@given(body=json_values, answer=json_values | messages)
def test_any_json_body_derives_without_error(body, answer):
    record = {"request_id": "00000000-0000-4000-8000-000000000001",
              "timestamp": datetime.datetime(2026, 1, 1), "domain": "a", "method": "POST",
              "path": "/v1/messages", "request_headers": {}, "response_headers": {},
              "request_body": json.dumps(body).encode(), "response_status": 200,
              "response_body": json.dumps(answer).encode(), "stream": False}
    row = rows.derive(record, load_prices(), CONFIG).row
    assert row["request_id"] == record["request_id"]
    assert row["model"] is None or isinstance(row["model"], str)
    assert row["stop_reason"] is None or isinstance(row["stop_reason"], str)
    assert all(isinstance(row[c], int) for c in rows.USAGE_COLUMNS)
    # null when the model has no price (issue 14: unpriced, not free)
    assert row["cost_usd"] is None or isinstance(row["cost_usd"], float)
