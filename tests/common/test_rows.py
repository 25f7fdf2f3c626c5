"""Row values from a record: pure helpers."""
import datetime

from common import rows


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
