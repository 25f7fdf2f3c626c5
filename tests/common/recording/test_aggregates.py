"""Hourly aggregates: atomic increments, a rebuild that agrees, percentiles from buckets."""
import datetime

import pytest

from common.models import ApiRequest, HourlyUsage, histogram_columns
from common.recording import aggregates
from common.retention import prune

T0 = datetime.datetime(2026, 11, 20, 9, 15)


def _row(n, minutes=0, **extra):
    row = {"request_id": f"00000000-0000-4000-8000-{n:012d}", "timestamp": T0 + datetime.timedelta(minutes=minutes),
           "domain": "a.example", "method": "POST", "path": "/v1/messages", "model": "claude-sonnet-4-5",
           "request_type": "inference", "response_status": 200, "input_tokens": 10, "output_tokens": 5,
           "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000, "cost_usd": 0.5,
           "duration_ms": 800.0, "first_token_ms": 90.0, "error": None}
    row.update(extra)
    return row


def _rows():
    return [_row(1), _row(2, duration_ms=3000.0, first_token_ms=400.0), _row(3, minutes=50, response_status=529),
            _row(4, model=None, request_type="models", duration_ms=200000.0, first_token_ms=None),
            _row(5, minutes=5, error="client disconnected", duration_ms=None)]


def _table():
    columns = ["hour", "domain", "model", "request_type", *aggregates.SUM_COLUMNS]
    return sorted(tuple(str(r[c]) if c == "hour" else r[c] for c in columns)
                  for r in HourlyUsage.select().dicts())


def test_add_counts_requests_tokens_errors_and_buckets(database):
    aggregates.add(_rows()[:3])
    aggregates.add(_rows()[3:])
    rows = {(r.hour.hour, r.model): r for r in HourlyUsage.select()}
    nine = rows[(9, "claude-sonnet-4-5")]
    assert (nine.requests, nine.errors, nine.input_tokens, nine.cache_read_input_tokens) == (3, 1, 30, 3000)
    assert nine.cost_usd == pytest.approx(1.5)
    assert nine.latency_le_1000 == 1 and nine.latency_le_5000 == 1 and nine.latency_le_2500 == 0
    assert nine.ttft_le_100 == 2 and nine.ttft_le_500 == 1
    assert rows[(10, "claude-sonnet-4-5")].errors == 1
    assert rows[(9, "")].latency_inf == 1 and rows[(9, "")].request_type == "models"


def test_increments_add_up_across_batches(database):
    for _ in range(3):
        aggregates.add([_row(1)])
    row = HourlyUsage.get()
    assert (row.requests, row.input_tokens, row.duration_ms_sum) == (3, 30, 2400.0)


def test_rebuild_agrees_with_the_increments(database):
    ApiRequest.insert_many(_rows()).execute()
    aggregates.add(_rows())
    incremental = _table()
    HourlyUsage.delete().execute()
    aggregates.rebuild(database)
    assert _table() == incremental


def test_rebuild_keeps_hours_that_retention_thinned(database):
    rows = _rows()
    ApiRequest.insert_many(rows).execute()
    aggregates.add(rows)
    before = _table()
    prune(database, T0 + datetime.timedelta(minutes=1))  # the 9:15 rows go, 9:20 stays
    aggregates.rebuild(database)
    assert _table() == before


def test_rebuild_since_an_hour_only_touches_later_hours(database):
    ApiRequest.insert_many(_rows()).execute()
    aggregates.add(_rows())
    HourlyUsage.update(requests=99).where(HourlyUsage.hour < datetime.datetime(2026, 11, 20, 10)).execute()
    aggregates.rebuild(database, since=datetime.datetime(2026, 11, 20, 10, 30))
    assert sorted(r.requests for r in HourlyUsage.select()) == [1, 99, 99]


def test_percentiles_interpolate_inside_buckets():
    counts = [0] * len(histogram_columns("latency"))
    counts[0] = 50   # ≤ 100 ms
    counts[3] = 50   # 500-1000 ms
    assert aggregates.percentile_from_histogram(counts, 0.5) == pytest.approx(100.0)
    assert aggregates.percentile_from_histogram(counts, 0.75) == pytest.approx(750.0)
    assert aggregates.percentile_from_histogram(counts, 0.25) == pytest.approx(50.0)
    counts[-1] = 900
    assert aggregates.percentile_from_histogram(counts, 0.99) == 120000.0
    assert aggregates.percentile_from_histogram([0] * len(counts), 0.5) is None
    with pytest.raises(ValueError):
        aggregates.percentile_from_histogram(counts, 95)


def test_histogram_reads_a_row_in_bucket_order():
    row = {"latency_le_100": 2, "latency_inf": 1}
    counts = aggregates.histogram(row, "latency")
    assert counts[0] == 2 and counts[-1] == 1 and sum(counts) == 3
