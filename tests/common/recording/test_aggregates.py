"""Hourly aggregates: atomic increments, a rebuild that agrees, percentiles from buckets."""
import datetime
import math
import random

import pytest

from common.models import LATENCY_BUCKETS_MS, ApiRequest, DailyUsage, HourlyUsage, histogram_columns
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
    column = aggregates.bucket_column
    assert getattr(nine, column("latency", 800)) == 1 and getattr(nine, column("latency", 3000)) == 1
    assert getattr(nine, column("latency", 3000)) != getattr(nine, column("latency", 2500)) == 0
    assert getattr(nine, column("ttft", 90)) == 2 and getattr(nine, column("ttft", 400)) == 1
    assert rows[(10, "claude-sonnet-4-5")].errors == 1
    assert getattr(rows[(9, "")], column("latency", 200000.0)) == 1
    assert rows[(9, "")].latency_inf == 0 and rows[(9, "")].request_type == "models"


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


def test_batches_that_touch_different_columns_sum_like_one(database):
    """A batch updates only the columns it adds to; the others of an existing hour keep
    what earlier batches put there."""
    ApiRequest.insert_many(_rows()).execute()
    for row in _rows():
        aggregates.add([row])
    aggregates.add([_row(6, cost_usd=None, duration_ms=None, first_token_ms=None)])
    ApiRequest.insert_many([_row(6, cost_usd=None, duration_ms=None, first_token_ms=None)]).execute()
    per_batch = _table()
    HourlyUsage.delete().execute()
    aggregates.rebuild(database)
    assert _table() == per_batch
    assert sum(r.unpriced for r in HourlyUsage.select()) == 1


def _days_from_hours():
    days = {}
    for r in HourlyUsage.select().dicts():
        key = (r["hour"].date(), r["domain"], r["model"], r["request_type"], r["account_id"])
        sums = days.setdefault(key, dict.fromkeys(aggregates.SUM_COLUMNS, 0))
        for c in aggregates.SUM_COLUMNS:
            sums[c] += r[c]
    return days


def _days():
    return {(r["day"].date(), r["domain"], r["model"], r["request_type"], r["account_id"]):
            {c: r[c] for c in aggregates.SUM_COLUMNS} for r in DailyUsage.select().dicts()}


def test_each_day_holds_the_sums_of_its_hours(database):
    """The writer adds to the day with the hour; a rebuild makes the days from the hours."""
    late = [_row(10 + n, minutes=60 * 20 + 90 * n, duration_ms=40.0 * (n + 1)) for n in range(4)]
    for batch in (_rows()[:2], _rows()[2:], late[:1], late[1:]):
        aggregates.add(batch)
    by_hours = _days_from_hours()
    assert len({key[0] for key in by_hours}) == 2  # the late rows run into the next day
    assert _days() == by_hours
    DailyUsage.delete().execute()
    aggregates.rebuild_days(database, since=T0 + datetime.timedelta(days=1, hours=3))
    assert _days() == {k: v for k, v in by_hours.items() if k[0] > T0.date()}
    aggregates.rebuild_days(database)
    assert _days() == by_hours


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


def _exact(values, q):
    """The nearest-rank q-quantile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _estimate(values, q, prefix="latency"):
    counts = [0] * len(histogram_columns(prefix))
    for value in values:
        counts[histogram_columns(prefix).index(aggregates.bucket_column(prefix, value))] += 1
    return aggregates.percentile_from_histogram(counts, q)


def test_percentiles_of_the_reported_traffic_match_the_data(database):
    """30 requests at ~34 ms and 10 at ~280 ms: the old buckets said p50 67 and p95 450."""
    rng = random.Random(4)
    fast = [rng.uniform(33.0, 35.0) for _ in range(30)]
    slow = [rng.uniform(276.0, 284.0) for _ in range(10)]
    rows = [_row(n, minutes=n % 40, duration_ms=d, first_token_ms=d / 2)
            for n, d in enumerate(fast + slow)]
    ApiRequest.insert_many(rows).execute()
    aggregates.rebuild(database)
    summed = {c: sum(getattr(r, c) for r in HourlyUsage.select())
              for c in histogram_columns("latency") + histogram_columns("ttft")}
    for prefix, values in (("latency", fast + slow), ("ttft", [d / 2 for d in fast + slow])):
        counts = aggregates.histogram(summed, prefix)
        for q in (0.5, 0.95):
            got = aggregates.percentile_from_histogram(counts, q)
            assert got == pytest.approx(_exact(values, q), rel=0.05), (prefix, q)


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_are_within_five_percent_whatever_the_spread(seed):
    rng = random.Random(seed)
    values = [rng.lognormvariate(rng.uniform(3, 9), rng.uniform(0.1, 2)) for _ in range(2000)]
    values = [min(max(v, 10.01), 600_000.0) for v in values]
    for q in (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
        assert _estimate(values, q) == pytest.approx(_exact(values, q), rel=0.05)


def test_percentile_edges():
    counts = [0] * len(histogram_columns("latency"))
    assert aggregates.percentile_from_histogram(counts, 0.5) is None
    counts[-1] = 9
    assert aggregates.percentile_from_histogram(counts, 0.99) == float(LATENCY_BUCKETS_MS[-1])
    with pytest.raises(ValueError):
        aggregates.percentile_from_histogram(counts, 95)


def test_histogram_reads_a_row_in_bucket_order():
    row = {"latency_le_1": 2, "latency_inf": 1}
    counts = aggregates.histogram(row, "latency")
    assert counts[0] == 2 and counts[-1] == 1 and sum(counts) == 3
