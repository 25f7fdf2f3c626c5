"""Claude Code sessions fed to the store land in the conversations and branches expected."""
import random

import pytest

from common import config as nexus_config
from common.models import ApiRequest, TaskInvocation
from common.pricing import load_prices
from common.recording.relink import relink
from common.recording.store import save_records
from tests import scenarios

CONFIG = nexus_config.load({})


def _sessions():
    return [scenarios.claude_code_day(seed=1),
            scenarios.claude_code_day(seed=2, user_id_form="old", header=False),
            *scenarios.parallel_strangers()]


def _records(sessions):
    return sorted((r for s in sessions for r in s.records), key=lambda r: r["timestamp"])


def _rows():
    return {r["request_id"]: r for r in ApiRequest.select().dicts()}


def _save_in_batches(database, records, sizes):
    start = 0
    for size in sizes:
        save_records(database, records[start:start + size], load_prices(), CONFIG)
        start += size
    assert start >= len(records)


def test_every_request_lands_in_its_conversation_and_branch(database):
    sessions = _sessions()
    records = _records(sessions)
    assert save_records(database, records, load_prices(), CONFIG) == len(records)
    assert scenarios.link_mismatches(_rows(), sessions) == []


def test_links_are_the_same_one_record_per_batch(database):
    sessions = _sessions()
    records = _records(sessions)
    _save_in_batches(database, records, [1] * len(records))
    assert scenarios.link_mismatches(_rows(), sessions) == []


def test_links_are_the_same_in_random_batches(database):
    sessions = _sessions()
    records = _records(sessions)
    rng = random.Random(5)
    _save_in_batches(database, records, [rng.randint(1, 9) for _ in records])
    assert scenarios.link_mismatches(_rows(), sessions) == []


def test_relink_reproduces_the_links(database):
    sessions = _sessions()
    save_records(database, _records(sessions), load_prices(), CONFIG)
    before = _rows()
    ApiRequest.update(conversation_id=None, branch_id=None, parent_request_id=None,
                      is_subtask=False, parent_task_request_id=None).execute()
    TaskInvocation.delete().execute()
    changed, linked, total = relink(database, CONFIG, batch_size=7)
    after = _rows()
    assert scenarios.link_mismatches(after, sessions) == []
    assert after == before
    assert changed == sum(1 for r in before.values() if r["conversation_id"])
    # every inference request is linked but the five that open a conversation (A, A, P, Q, R)
    assert (total, linked) == (sum(1 for r in before.values() if r["request_type"] == "inference"),
                               sum(1 for r in before.values() if r["parent_request_id"]))
    assert total - linked == 5


def test_relink_without_stored_bodies_keeps_the_hash_links(database):
    sessions = _sessions()
    save_records(database, _records(sessions), load_prices(), CONFIG.replace(capture_bodies="none"))
    before = _rows()
    assert relink(database, CONFIG)[0] == 0
    assert _rows() == before


def test_side_calls_and_quota_probes_are_typed_and_not_linked(database):
    day = scenarios.claude_code_day()
    save_records(database, day.records, load_prices(), CONFIG)
    rows = _rows()
    types = {label: rows[rid]["request_type"] for label, rid in day.ids.items()}
    assert types["quota"] == "quota"
    assert types["title"] == types["topic"] == "query_evaluation"
    assert {t for label, t in types.items() if label not in ("quota", "title", "topic")} == {"inference"}


def test_sessions_and_accounts_come_from_either_user_id_form(database):
    new, old = scenarios.claude_code_day(seed=1), scenarios.claude_code_day(seed=2, user_id_form="old",
                                                                            header=False)
    save_records(database, new.records + old.records, load_prices(), CONFIG)
    rows = _rows()
    for s in (new, old):
        assert {(rows[rid]["session_id"], rows[rid]["account_id"]) for rid in s.ids.values()} == {
            (s.session_id, s.account)}


def test_a_batch_takes_few_queries(database):
    """Linking is prefetched: the query count does not grow with the batch."""
    records = _records(_sessions())
    count = {"n": 0}
    real = database.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        count["n"] += 1
        return real(sql, params, *args, **kwargs)

    database.execute_sql = counting
    try:
        save_records(database, records, load_prices(), CONFIG)
    finally:
        del database.execute_sql
    assert len(records) == 50
    # 50 records: rows, links, pieces, recipes, both hourly tables, rate-limit samples and
    # the search index, each a statement or two per batch, not per record.
    assert count["n"] <= 24, count["n"]
    assert count["n"] >= 5  # the counter saw the queries


@pytest.mark.parametrize("tools", ["Task,Agent", "Task"])
def test_subtask_tool_names_come_from_configuration(database, tools):
    day = scenarios.claude_code_day()
    save_records(database, day.records, load_prices(), CONFIG.replace(subtask_tools=tools))
    t1 = _rows()[day.ids["T1"]]
    assert t1["is_subtask"] is (tools == "Task,Agent")


def _scramble(seed):
    """Overwrite every link with another row's values, as a bad import or an old linker
    might leave them: conversations, branches and parents all wrong, none empty."""
    rows = list(ApiRequest.select(ApiRequest.id, ApiRequest.request_id).order_by(ApiRequest.id).dicts())
    rng = random.Random(seed)
    ids = [r["request_id"] for r in rows]
    for row in rows:
        other = rng.choice(ids)
        ApiRequest.update(conversation_id=rng.choice(ids), branch_id=f"branch_{other[:8]}",
                          parent_request_id=rng.choice(ids), is_subtask=rng.random() < 0.5,
                          parent_task_request_id=rng.choice(ids)).where(
            ApiRequest.id == row["id"]).execute()


@pytest.mark.parametrize("batch_size", [1, 3, 7, 1000])
def test_relink_ignores_whatever_links_the_table_held(database, batch_size):
    """Relink gives the grouping fresh traffic gets, whatever the links were before."""
    sessions = _sessions()
    save_records(database, _records(sessions), load_prices(), CONFIG)
    before = _rows()
    _scramble(batch_size)
    relink(database, CONFIG, batch_size=batch_size)
    after = _rows()
    assert scenarios.link_mismatches(after, sessions) == []
    assert after == before
