"""bench.seed: the synthetic traffic has the shape the dashboard and its benchmark need."""
import datetime
import random

import peewee as pw

from bench import seed as bench_seed
from bench import synthetic
from common.models import ApiRequest, HourlyUsage, RequestBody


def test_seeded_traffic_looks_like_claude_code(database):
    count = bench_seed.seed(database, 1500, days=4, seed_value=3, body_fraction=0.1)
    bench_seed.rebuild_aggregates(database)
    rows = ApiRequest.select()
    assert count == rows.count() == 1500
    assert rows.where(ApiRequest.branch_id != "main").count() > 0       # rewinds
    assert rows.where(ApiRequest.is_subtask == True).count() > 0        # noqa: E712
    assert rows.where(ApiRequest.request_type == "query_evaluation").count() > 0
    assert rows.where(ApiRequest.response_status >= 400).count() > 0
    assert rows.where(ApiRequest.cache_read_input_tokens > 0).count() > 0
    assert rows.where(ApiRequest.ratelimit.is_null(False)).count() > 0
    assert 0 < RequestBody.select().count() < 1500
    assert HourlyUsage.select(pw.fn.SUM(HourlyUsage.requests)).scalar() == 1500
    parents = {r.parent_request_id for r in rows.where(ApiRequest.parent_request_id.is_null(False))}
    known = {r.request_id for r in ApiRequest.select(ApiRequest.request_id)}
    assert parents <= known  # every link points at a stored request


def test_same_seed_same_traffic():
    day = datetime.date(2026, 1, 5)
    first, _ = synthetic.day_of_traffic(random.Random(9), day, 200)
    again, _ = synthetic.day_of_traffic(random.Random(9), day, 200)
    assert [r["request_id"] for r in first] == [r["request_id"] for r in again]
    assert [r["timestamp"] for r in first] == sorted(r["timestamp"] for r in first)
