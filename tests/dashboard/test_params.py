"""Query parameters: what the filters accept, and the messages of what they refuse."""
import datetime

import pytest

from dashboard.params import (BadParameter, make_cursor, parse_cursor, parse_status, parse_time,
                              request_filter, stats_range)

NOW = datetime.datetime(2026, 1, 31, 12, 0, 0)


def test_times_accept_iso_dates_datetimes_and_ages():
    assert parse_time("since", "2026-01-02", NOW) == datetime.datetime(2026, 1, 2)
    assert parse_time("since", "2026-01-02T03:04:05Z", NOW) == datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert parse_time("since", "2026-01-02T03:04:05+02:00", NOW) == datetime.datetime(2026, 1, 2, 1, 4, 5)
    assert parse_time("since", "5h", NOW) == NOW - datetime.timedelta(hours=5)
    assert parse_time("since", "7d", NOW) == NOW - datetime.timedelta(days=7)
    assert parse_time("since", "", NOW) is None


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "5y", "-3d", "1e9h"])
def test_bad_times_name_the_parameter(text):
    with pytest.raises(BadParameter, match="since"):
        parse_time("since", text, NOW)


def test_status_codes_and_classes():
    assert parse_status("200") == (200, 200)
    assert parse_status("4xx") == (400, 499)
    assert parse_status("error") == (400, 599)
    for bad in ("abc", "600", "2x", "20"):
        with pytest.raises(BadParameter, match="status"):
            parse_status(bad)


def test_cursor_round_trip_and_tampering():
    ts = datetime.datetime(2026, 1, 2, 3, 4, 5, 678)
    assert parse_cursor(make_cursor(ts, 42)) == (ts, 42)
    for bad in ("42", "2026-01-02~x", "<script>", "2026-01-02T03:04:05~1;DROP"):
        with pytest.raises(BadParameter, match="before"):
            parse_cursor(bad)


def test_filter_limits_and_types():
    flt = request_filter({"domain": "a.example", "type": "quota", "limit": "10", "q": "x"})
    assert (flt.domain, flt.request_type, flt.limit, flt.q) == ("a.example", "quota", 10, "x")
    assert flt.raw == {"domain": "a.example", "type": "quota", "q": "x"}
    for args, name in (({"limit": "0"}, "limit"), ({"limit": "5000"}, "limit"),
                       ({"limit": "ten"}, "limit"), ({"type": "chat"}, "type"),
                       ({"q": "x" * 201}, "q"),
                       ({"since": "2026-01-02", "until": "2026-01-01"}, "since")):
        with pytest.raises(BadParameter, match=name):
            request_filter(args)


def test_stats_range_defaults_to_a_week_and_picks_granularity():
    rng = stats_range({}, now=NOW)
    assert (rng.since, rng.until, rng.hourly) == (NOW - datetime.timedelta(days=7), NOW, False)
    assert stats_range({"since": "24h"}, now=NOW).hourly
    with pytest.raises(BadParameter):
        stats_range({"since": "2020-01-01"}, now=NOW)
