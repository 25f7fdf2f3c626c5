"""Multi-row INSERTs built once: the values peewee would store, conflicts as peewee handles them."""
import datetime

from common.models import HOURLY_KEY, ApiRequest, HourlyUsage, TaskInvocation
from common.recording import bulk

T0 = datetime.datetime(2026, 11, 20, 9, 15, 30, 123456)


def _row(n, **extra):
    row = {"request_id": f"00000000-0000-4000-8000-{n:012d}", "domain": "a.example",
           "timestamp": T0 + datetime.timedelta(seconds=n), "method": "POST", "path": "/v1/messages",
           "model": "claude-sonnet-4-5", "request_type": "inference", "stream": n % 2 == 0,
           "response_status": 200, "input_tokens": n, "output_tokens": 5,
           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
           "usage_data": '{"input_tokens": 1}', "cost_usd": 0.25 * n, "duration_ms": 12.5,
           "first_token_ms": None, "error": None, "account_id": None, "session_id": "s",
           "conversation_id": None, "branch_id": None, "parent_request_id": None,
           "is_subtask": False, "parent_task_request_id": None, "message_count": 3,
           "current_message_hash": "ab" * 32, "parent_message_hash": None, "system_hash": None,
           "auth_hash": None, "client_key_id": None, "upstream_request_id": "req_1",
           "stop_reason": "end_turn", "ratelimit": None}
    row.update(extra)
    return row


def _stored():
    return {r["request_id"]: {k: v for k, v in r.items() if k != "id"}
            for r in ApiRequest.select().dicts()}


def test_rows_are_stored_as_peewee_stores_them(database):
    rows = [_row(n) for n in range(1, 6)]
    ApiRequest.insert_many(rows[:2]).execute()
    by_peewee = _stored()
    ApiRequest.delete().execute()
    bulk.insert(database, ApiRequest, rows, chunk=2)
    by_bulk = _stored()
    assert len(by_bulk) == 5
    assert {k: by_bulk[k] for k in by_peewee} == by_peewee
    assert by_bulk[rows[4]["request_id"]]["timestamp"] == T0 + datetime.timedelta(seconds=5)


def test_ignore_skips_existing_keys_and_postgresql_returns_what_it_inserted(database):
    bulk.insert(database, ApiRequest, [_row(1)])
    inserted = bulk.insert(database, ApiRequest, [_row(1, model="other"), _row(2)], ignore=True,
                           returning="request_id")
    if bulk.is_postgres(database):
        assert inserted == {_row(2)["request_id"]}
    else:
        assert inserted is None
    assert _stored()[_row(1)["request_id"]]["model"] == "claude-sonnet-4-5"
    assert len(_stored()) == 2


def test_upsert_adds_the_summed_columns(database):
    hour = datetime.datetime(2026, 11, 20, 9)
    key = {**dict.fromkeys(HOURLY_KEY, ""), "hour": hour, "domain": "a", "model": "m",
           "request_type": "inference"}
    for _ in range(3):
        bulk.insert(database, HourlyUsage, [dict(key, requests=2, cost_usd=0.5)],
                    upsert=(tuple(key), ("requests", "cost_usd")))
    row = HourlyUsage.get()
    assert (row.requests, row.cost_usd, row.hour) == (6, 1.5, hour)


def test_the_statement_is_built_once_per_shape(database):
    bulk.insert_sql.cache_clear()
    tasks = [{"request_id": f"r{n}", "domain": "a", "tool_use_id": f"t{n}", "prompt_hash": "h",
              "timestamp": T0} for n in range(10)]
    for start in range(0, 10, 2):
        bulk.insert(database, TaskInvocation, tasks[start:start + 2])
    info = bulk.insert_sql.cache_info()
    assert (info.misses, info.hits) == (1, 4)
    assert TaskInvocation.select().count() == 10
    assert bulk.insert(database, TaskInvocation, []) is None
