"""bench.seed: the synthetic traffic has the shape the dashboard and its benchmark need."""
import datetime
import random

import peewee as pw

from bench import seed as bench_seed
from bench import synthetic
from common import config as nexus_config
from common.models import ApiRequest, HourlyUsage, RequestBody, TaskInvocation
from common.pricing import load_prices
from common.recording.relink import relink
from common.recording.reprice import reprice

CHECKED = ("request_id", "model", "request_type", "account_id", "session_id", "conversation_id",
           "branch_id", "parent_request_id", "is_subtask", "parent_task_request_id",
           "message_count", "current_message_hash", "parent_message_hash", "system_hash",
           "cost_usd", "usage_data", "input_tokens", "cache_creation_input_tokens")


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


def _snapshot():
    return {r[0]: r for r in ApiRequest.select(*[getattr(ApiRequest, c) for c in CHECKED]).tuples()}


def test_relink_and_reprice_change_nothing_in_seeded_traffic(database):
    """The seeder stores what the recorder would: relinking from the stored bodies (or,
    for rows stored without bodies, from their hashes) and repricing from usage_data
    with the built-in prices must reproduce every link and cost exactly."""
    bench_seed.seed(database, 2000, days=3, seed_value=5, body_fraction=0.3)
    bench_seed.rebuild_aggregates(database)
    before, tasks = _snapshot(), TaskInvocation.select().count()
    hours = sorted(HourlyUsage.select(HourlyUsage.hour, HourlyUsage.cost_usd).tuples())
    changed, linked, inference = relink(database, nexus_config.load({}))
    assert changed == 0
    assert reprice(database, load_prices()) == 0
    assert _snapshot() == before
    assert TaskInvocation.select().count() == tasks > 0
    assert sorted(HourlyUsage.select(HourlyUsage.hour, HourlyUsage.cost_usd).tuples()) == hours
    assert 0.8 < linked / inference < 1  # the first request of each conversation has no parent
    usage = [r for r in before.values() if r[CHECKED.index("cache_creation_input_tokens")]]
    assert any('"ephemeral_1h_input_tokens"' in r[CHECKED.index("usage_data")] for r in usage)


def test_same_seed_same_traffic():
    day = datetime.date(2026, 1, 5)
    first = synthetic.day_of_records(random.Random(9), day, 200)
    again = synthetic.day_of_records(random.Random(9), day, 200)
    assert [r["request_id"] for r in first] == [r["request_id"] for r in again]
    assert [r["timestamp"] for r in first] == sorted(r["timestamp"] for r in first)


def test_days_derived_in_worker_processes_are_the_same_rows():
    settings = {"NEXUS_SUBTASK_TOOLS": "Task,Agent", "NEXUS_CAPTURE_BODIES": "all"}
    end = datetime.datetime(2026, 1, 7, 12)
    jobs = [(4, n, datetime.date(2026, 1, 5 + n), 150, end, 0.2, load_prices(), settings, False)
            for n in range(3)]
    inline = [rows for rows, _, _ in bench_seed._results(jobs, 1)]
    parallel = [rows for rows, _, _ in bench_seed._results(jobs, 2)]
    assert parallel == inline and sum(map(len, inline)) > 300


def test_relink_after_scrambling_reproduces_the_seeded_grouping(database):
    """Every link overwritten (bench.relink_check), relink in odd batches gives them all back."""
    from bench import relink_check
    bench_seed.seed(database, 1200, days=3, seed_value=7, body_fraction=1.0)
    before = relink_check.links(database)
    relink_check.scramble(database, seed=2)
    assert relink_check.links(database) != before
    relink(database, nexus_config.load({}), batch_size=97)
    assert relink_check.links(database) == before
